// The fallback transport (docs/PROTOCOL.md, "Fallback transport"): for
// clients that cannot open a WebSocket (a proxy blocks it). The same frames
// travel down as Server-Sent Events and up as numbered HTTP POSTs.
//
// It uses fetch only (streamed response bodies for the events), so it runs
// unchanged in browsers and in Node 20+, with no EventSource polyfill.
// A dropped event stream is resumed with Last-Event-ID; a POST that fails on
// the network is retried with the same number (the server applies it once).
// When the session cannot be resumed (410, or the server stays unreachable)
// the transport closes with 1006 and the client reconnects as after any drop.

import type { TransportEvents, TransportFactory } from './transport.js';

/** The part of fetch used here (globalThis.fetch in browsers and Node 20+). */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

export interface FallbackOptions {
  /** default globalThis.fetch */
  fetch?: FetchLike;
  /** Network failures in a row (stream reattach or one POST) before the transport gives up (default 4). */
  maxRetries?: number;
  /** First retry delay in ms, doubled per failure (default 250). */
  retryMs?: number;
}

/** The HTTP base of the fallback routes for a WebSocket URL: ws(s)://h/p/v1/ws?q → http(s)://h/p/v1/rt?q. */
export function fallbackURL(wsURL: string): string {
  const u = new URL(wsURL);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  u.pathname = u.pathname.replace(/\/v1\/ws\/?$/, '/v1/rt');
  return u.toString();
}

const MAX_POST_BYTES = 512 << 10; // frames are joined into one POST up to this size

/** A transport over the /v1/rt routes; url is the WebSocket URL (or the /v1/rt URL itself). */
export function fallbackTransport(o: FallbackOptions = {}): TransportFactory {
  return (url, ev) => new Fallback(url, ev, o).handle;
}

interface Session {
  events: string;
  frames: string;
  del: string;
}

class Fallback {
  readonly handle;
  private readonly fetch: FetchLike;
  private readonly maxRetries: number;
  private readonly retryMs: number;
  private done = false;
  private opened = false;
  private sess: Session | null = null;
  private readonly abort = new AbortController();
  private lastId = 0;
  private queue: Uint8Array[] = [];
  private posting = false;
  private postSeq = 1;

  constructor(
    url: string,
    private readonly ev: TransportEvents,
    o: FallbackOptions,
  ) {
    const f = o.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) throw new Error('collabd: no fetch for the fallback transport');
    this.fetch = f.bind(globalThis);
    this.maxRetries = o.maxRetries ?? 4;
    this.retryMs = o.retryMs ?? 250;
    this.handle = {
      name: 'fallback',
      send: (frame: Uint8Array) => this.send(frame),
      close: () => this.close(),
    };
    void this.start(url.includes('/v1/rt') ? url : fallbackURL(url));
  }

  private finish(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.abort.abort();
    this.ev.onclose(code, reason);
  }

  private close(): void {
    if (this.done) return;
    this.done = true;
    this.abort.abort();
    const s = this.sess;
    if (s) this.fetch(s.del, { method: 'DELETE', keepalive: true }).catch(() => {});
  }

  private send(frame: Uint8Array): void {
    if (this.done || !this.opened) return;
    this.queue.push(frame);
    if (!this.posting) void this.pump();
  }

  private wait(attempt: number): Promise<void> {
    return new Promise((res) => setTimeout(res, this.retryMs * 2 ** attempt));
  }

  /** Creates the session, then keeps its event stream attached. */
  private async start(base: string): Promise<void> {
    let r: Response;
    try {
      r = await this.fetch(base, { method: 'POST', signal: this.abort.signal });
    } catch {
      this.finish(1006, 'fallback: server unreachable');
      return;
    }
    if (this.done) return;
    if (r.status !== 201) {
      this.finish(await errorCode(r), `fallback: session refused (${r.status})`);
      return;
    }
    let j: { events?: string; frames?: string; session?: string; key?: string };
    try {
      j = (await r.json()) as typeof j;
    } catch {
      this.finish(1006, 'fallback: bad session answer');
      return;
    }
    if (!j.events || !j.frames || !j.session || !j.key) {
      this.finish(1006, 'fallback: bad session answer');
      return;
    }
    const at = (p: string): string => new URL(p, base).toString();
    this.sess = { events: at(j.events), frames: at(j.frames), del: at(`${new URL(base).pathname}/${j.session}?key=${j.key}`) };
    await this.stream();
  }

  /** Reads the event stream, reattaching after drops (Last-Event-ID) until the transport ends. */
  private async stream(): Promise<void> {
    let fails = 0;
    while (!this.done) {
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (this.lastId > 0) headers['Last-Event-ID'] = String(this.lastId);
      let r: Response | null = null;
      try {
        r = await this.fetch(this.sess!.events, { headers, signal: this.abort.signal, cache: 'no-store' });
      } catch {
        r = null;
      }
      if (this.done) return;
      if (r && r.status === 410) {
        this.finish(1006, 'fallback: session lost');
        return;
      }
      if (r && r.ok && r.body) {
        if (!this.opened) {
          this.opened = true;
          this.ev.onopen();
        }
        const got = await this.read(r.body);
        if (this.done) return;
        if (got) fails = 0;
      } else if (r && r.status !== 503 && r.status !== 502 && r.status !== 504) {
        this.finish(await errorCode(r), `fallback: events refused (${r.status})`);
        return;
      }
      if (++fails > this.maxRetries) {
        this.finish(1006, 'fallback: event stream lost');
        return;
      }
      await this.wait(fails - 1);
    }
  }

  /** Parses one SSE response; true if at least one event arrived. */
  private async read(body: ReadableStream<Uint8Array>): Promise<boolean> {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let got = false;
    let id = '';
    let event = '';
    let data: string[] = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.done) break;
        buf += dec.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (data.length > 0 || event !== '') {
              got = true;
              if (!this.dispatch(event, data.join('\n'), id)) return got;
            }
            id = event = '';
            data = [];
            continue;
          }
          if (line.startsWith(':')) continue; // heartbeat
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (field === 'id') id = val;
          else if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
        }
      }
    } catch {
      // the stream dropped: the caller reattaches
    } finally {
      reader.cancel().catch(() => {});
    }
    return got;
  }

  /** Handles one event; false once the transport ended. */
  private dispatch(event: string, data: string, id: string): boolean {
    if (this.done) return false;
    if (event === 'close') {
      let code = 1006;
      let reason = '';
      try {
        const j = JSON.parse(data) as { code?: number; reason?: string };
        code = j.code || 1006;
        reason = j.reason ?? '';
      } catch {
        // keep 1006
      }
      this.finish(code, reason);
      return false;
    }
    if (id !== '') {
      const n = Number(id);
      if (Number.isSafeInteger(n)) {
        if (n <= this.lastId) return true; // already seen (a resumed stream overlaps)
        this.lastId = n;
      }
    }
    let frame: Uint8Array;
    try {
      frame = fromBase64(data);
    } catch {
      this.finish(1006, 'fallback: bad event data');
      return false;
    }
    this.ev.onmessage(frame);
    return !this.done;
  }

  /** Sends the queued frames, one numbered POST at a time, retrying network failures with the same number. */
  private async pump(): Promise<void> {
    this.posting = true;
    try {
      while (!this.done && this.queue.length > 0) {
        let n = 0;
        let size = 0;
        while (n < this.queue.length && (n === 0 || size + this.queue[n]!.length + 4 <= MAX_POST_BYTES)) size += this.queue[n++]!.length + 4;
        const body = new Uint8Array(size);
        const dv = new DataView(body.buffer);
        let off = 0;
        for (const f of this.queue.splice(0, n)) {
          dv.setUint32(off, f.length);
          body.set(f, off + 4);
          off += f.length + 4;
        }
        const url = `${this.sess!.frames}&seq=${this.postSeq}`;
        for (let attempt = 0; ; attempt++) {
          let r: Response | null = null;
          try {
            r = await this.fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' }, signal: this.abort.signal });
          } catch {
            r = null;
          }
          if (this.done) return;
          if (r && (r.status === 204 || r.status === 200)) {
            r.body?.cancel().catch(() => {});
            break;
          }
          if (r && r.status !== 502 && r.status !== 503 && r.status !== 504) {
            // 410: the session is gone; 409/4xx: out of step. Either way, start over.
            this.finish(r.status === 410 || r.status === 409 ? 1006 : await errorCode(r), `fallback: POST refused (${r.status})`);
            return;
          }
          if (attempt >= this.maxRetries) {
            this.finish(1006, 'fallback: POST failed');
            return;
          }
          await this.wait(attempt);
          if (this.done) return;
        }
        this.postSeq++;
      }
    } finally {
      this.posting = false;
    }
  }
}

/**
 * The protocol code of an HTTP error answer when it is terminal for the
 * client (e.g. 4502 for a refused origin); 1006 otherwise, so the client
 * retries as after a drop.
 */
async function errorCode(r: Response): Promise<number> {
  try {
    const j = (await r.json()) as { code?: number };
    if (typeof j.code === 'number' && j.code >= 4000 && j.code <= 4999) return j.code;
  } catch {
    // not JSON
  }
  return 1006;
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
