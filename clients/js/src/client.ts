// The network client (Go: clients/go/client.go): one connection to a collabd
// server, many documents on it, repaired in the background after drops with
// exponential backoff and full jitter. Everything runs on the JS event loop:
// no locks, callbacks in the order frames arrive.

import { type BackoffOptions, Code, ServerError, backoffDelay, isRetryCode } from './codes.js';
import { type Deferred, Emitter, Timer, deferred } from './events.js';
import { Document, type Link } from './document.js';
import { type Frame, FrameError, PROTOCOL_VERSION, type ServerLimits, decodeFrame, encodeFrame } from './frames.js';
import { type AgentID, newAgentID, toAgent } from './ids.js';
import { type Transport, type TransportFactory, type WebSocketConstructor, webSocketTransport } from './transport.js';
import { type FetchLike, fallbackTransport } from './fallback.js';
import { type Persistence, indexedDBPersistence } from './persist.js';
import { httpAPI } from './versions.js';

export const CLIENT_NAME = 'collab-js/0.1';

export interface ClientOptions {
  /** Auth token, sent in hello; "" or absent in development mode. */
  token?: string;
  /** The agent id of this client's edits (64-bit); absent: random. Two live clients must not share one. */
  agent?: bigint | number | string;
  /** The WebSocket class (Node 20 has none: pass the `ws` package's); default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /**
   * Which transport: 'auto' (default) opens a WebSocket and switches to the
   * fallback (SSE down, HTTP POST up; docs/PROTOCOL.md) after fallbackAfter
   * WebSocket attempts in a row ended before the server's welcome;
   * 'websocket' or 'fallback' only; or a TransportFactory of your own.
   */
  transport?: TransportMode | TransportFactory;
  /** WebSocket attempts in a row that end before the welcome before 'auto' tries the fallback (default 2). */
  fallbackAfter?: number;
  /** fetch for the fallback transport; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Reconnect delay shape (defaults 250 ms base, 30 s cap). */
  backoff?: BackoffOptions;
  /** Sent in hello for the server's logs. */
  clientName?: string;
  /** A connection not welcomed within this many ms is dropped and retried (default 30 s). */
  connectTimeoutMs?: number;
  /** Uniform random numbers in [0, 1) for jitter (tests); default Math.random. */
  random?: () => number;
  /**
   * Keep joined documents between page loads: 'indexeddb' stores each
   * document's last state and its batches not yet durable in IndexedDB (see
   * src/persist.ts), or pass a Persistence of your own. A document stored
   * before is shown at once when joined, also offline (join resolves with
   * the stored state before the first sync), and its unsent edits are sent
   * when the client is online again. Default: none (memory only).
   */
  persist?: 'indexeddb' | Persistence | null;
  /** The IDBFactory for persist 'indexeddb'; default globalThis.indexedDB (Node: the `fake-indexeddb` package's). */
  indexedDB?: IDBFactory;
}

/** See ClientOptions.transport. */
export type TransportMode = 'auto' | 'websocket' | 'fallback';

/** connecting: opening or saying hello; connected: welcomed; offline: waiting to reconnect; closed: stopped. */
export type ConnectionStatus = 'connecting' | 'connected' | 'offline' | 'closed';

export interface ClientEvents {
  status: ConnectionStatus;
  /** A terminal error stopped the client. */
  error: Error;
}

/** Thrown to waiters after Client.close(). */
export class ClosedError extends Error {
  constructor() {
    super('collabd: client closed');
    this.name = 'ClosedError';
  }
}

const DEFAULT_LIMITS: ServerLimits = { maxFrame: 0, maxDocs: 0, maxOpsPerBatch: 0, maxDocBytes: 0, pingIntervalMs: 0, pongTimeoutMs: 0 };
const UP_RESET_MS = 30_000; // a connection up this long resets the backoff attempt
const DEFAULT_IDLE_MS = 25_000;
const DEFAULT_PONG_MS = 10_000;

export class Client {
  readonly agent: AgentID;
  private readonly ev = new Emitter<ClientEvents>();
  private readonly wsFactory: TransportFactory | null = null;
  private readonly fbFactory: TransportFactory | null = null;
  private readonly mode: TransportMode | 'custom';
  private wsFails = 0; // WebSocket attempts in a row that ended before the welcome
  private lastWasWS = false;
  private readonly random: () => number;
  private readonly link: Link;
  private tr: Transport | null = null;
  private trName: string | null = null;
  private welcomed = false;
  private sessionId = '';
  private lim: ServerLimits = DEFAULT_LIMITS;
  private attempt = 0;
  private upSince = 0;
  private retryHint = 0;
  private readonly reconnectT = new Timer();
  private readonly keepT = new Timer();
  private lastHeard = 0;
  private pingNonce = 0;
  private readonly docs = new Map<string, Document>();
  private batchSeq = 0;
  private err: Error | null = null;
  private closed = false;
  private first: Deferred<void> | null = deferred<void>();
  private lastStatus: ConnectionStatus = 'connecting';
  private token: string;
  private readonly store: Persistence | null = null;
  private adopted: bigint[] = []; // agents of stored batches of earlier page loads, claimed in hello
  private readonly releases: (() => void)[] = []; // Web Locks held on agents
  private readonly onPageHide = (): void => {
    for (const d of this.docs.values()) void d.whenStored();
  };

  /**
   * Starts connecting to url (ws://host:port/v1/ws) at once and keeps the
   * connection up until close(). Documents may be joined before it is up.
   * Use Client.connect to wait for the first welcome.
   */
  constructor(
    readonly url: string,
    private readonly opts: ClientOptions = {},
  ) {
    const a = opts.agent === undefined ? 0n : toAgent(opts.agent);
    this.agent = a === 0n ? newAgentID() : a;
    this.token = opts.token ?? '';
    this.random = opts.random ?? Math.random;
    if (typeof opts.transport === 'function') {
      this.mode = 'custom';
      this.wsFactory = opts.transport;
    } else {
      this.mode = opts.transport ?? 'auto';
      const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      const haveFetch = !!(opts.fetch ?? (globalThis as { fetch?: unknown }).fetch);
      if (this.mode !== 'fallback' && WS) this.wsFactory = webSocketTransport(WS);
      if (this.mode !== 'websocket' && haveFetch) this.fbFactory = fallbackTransport({ fetch: opts.fetch });
      if (this.mode === 'websocket' && !this.wsFactory) throw new Error('collabd: no WebSocket: pass options.WebSocket (e.g. the `ws` package in Node)');
      if (this.mode === 'fallback' && !this.fbFactory) throw new Error('collabd: no fetch for the fallback transport: pass options.fetch');
      if (!this.wsFactory && !this.fbFactory) throw new Error('collabd: no WebSocket and no fetch: pass options.WebSocket');
    }
    this.first?.promise.catch(() => {});
    const c = this; // eslint-disable-line @typescript-eslint/no-this-alias
    this.link = {
      get agent() {
        return c.agent;
      },
      get up() {
        return c.welcomed;
      },
      get session() {
        return c.sessionId;
      },
      get limits() {
        return c.lim;
      },
      send: (f) => this.send(f),
      nextBatch: () => ++this.batchSeq,
      delay: (attempt, hint) => backoffDelay(attempt, hint, this.random(), this.opts.backoff),
      forget: (d) => {
        if (this.docs.get(d.id) === d) this.docs.delete(d.id);
      },
      store: null,
      api: httpAPI(url, () => this.token, opts.fetch),
    };
    if (opts.persist) {
      this.store = opts.persist === 'indexeddb' ? indexedDBPersistence(url, { indexedDB: opts.indexedDB }) : opts.persist;
      this.link.store = this.store;
      (globalThis as { addEventListener?: (k: string, f: () => void) => void }).addEventListener?.('pagehide', this.onPageHide);
      const go = () => {
        if (!this.closed) this.dial();
      };
      this.adopt().then(go, go);
      return;
    }
    this.dial();
  }

  /**
   * Claims the agents of batches stored by earlier page loads (their ops
   * must be sent by a session that claimed their agent), except those a
   * live tab holds: with Web Locks each client holds a lock per agent, and an
   * agent whose lock is taken is left to its tab. Without Web Locks (Node)
   * every stored agent is claimed.
   */
  private async adopt(): Promise<void> {
    const own = await holdLock(`collabd-agent-${this.agent}`);
    if (own) this.releases.push(own);
    for (const a of await this.store!.pendingAgents()) {
      if (a === this.agent) continue;
      const release = await holdLock(`collabd-agent-${a}`);
      if (!release) continue;
      this.releases.push(release);
      this.adopted.push(a);
    }
  }

  /**
   * Connects and resolves once the server has welcomed the client; rejects
   * (and closes the client) if the first attempt fails. Later drops are
   * repaired in the background.
   */
  static async connect(url: string, opts: ClientOptions = {}): Promise<Client> {
    const c = new Client(url, opts);
    try {
      await c.first!.promise;
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  on<K extends keyof ClientEvents>(k: K, f: (v: ClientEvents[K]) => void): () => void {
    return this.ev.on(k, f);
  }

  off<K extends keyof ClientEvents>(k: K, f: (v: ClientEvents[K]) => void): void {
    this.ev.off(k, f);
  }

  get status(): ConnectionStatus {
    if (this.closed) return 'closed';
    if (this.welcomed) return 'connected';
    if (this.tr) return 'connecting';
    return 'offline';
  }

  /** The transport in use ("websocket" or "fallback"), or null while disconnected. */
  get transport(): string | null {
    return this.tr ? this.trName : null;
  }

  /** The server's session id of the current connection ("" while disconnected). */
  get session(): string {
    return this.welcomed ? this.sessionId : '';
  }

  /** The limits of the current (or last) connection's welcome. */
  get limits(): ServerLimits {
    return this.lim;
  }

  /** The terminal error that stopped the client, or null. */
  get error(): Error | null {
    return this.err;
  }

  /**
   * Joins document id and resolves after its first sync. Joining a document
   * already joined returns the same Document. Rejects on a terminal error.
   */
  join(id: string, o: { readOnly?: boolean } = {}): Promise<Document> {
    if (this.closed) return Promise.reject(this.err ?? new ClosedError());
    try {
      checkDocID(id);
    } catch (e) {
      return Promise.reject(e);
    }
    let d = this.docs.get(id);
    if (!d) {
      d = new Document(id, this.link, o);
      this.docs.set(id, d);
      if (this.welcomed) d.join();
    }
    return d.ready;
  }

  /** The joined documents. */
  documents(): Document[] {
    return [...this.docs.values()];
  }

  /** Sends a new token for the same subject before the current one expires. */
  refresh(token: string): void {
    this.token = token;
    if (this.welcomed) this.send({ type: 11, token });
  }

  /** Stops the client: closes the connection (edits not yet sent are lost) and every timer. */
  close(): void {
    this.stop(new ClosedError());
  }

  // ---- the connection ---------------------------------------------------------

  private dial(): void {
    if (this.closed) return;
    this.welcomed = false;
    const useWS = this.pickWebSocket();
    this.lastWasWS = useWS;
    const factory = useWS ? this.wsFactory! : this.fbFactory!;
    const tr = factory(this.url, {
      onopen: () => {
        if (this.tr !== tr) return;
        this.lastHeard = Date.now();
        this.send({ type: 1, version: PROTOCOL_VERSION, token: this.token, agents: [this.agent, ...this.adopted], client: this.opts.clientName ?? CLIENT_NAME });
      },
      onmessage: (b) => {
        if (this.tr === tr) this.message(b);
      },
      onclose: (code, reason) => {
        if (this.tr === tr) this.lost(code, reason);
      },
    });
    this.tr = tr;
    this.trName = tr.name;
    this.keepT.set(this.opts.connectTimeoutMs ?? 30_000, () => {
      if (this.tr === tr && !this.welcomed) this.drop(1006, 'no welcome in time');
    });
    this.setStatus();
  }

  /**
   * Whether the next attempt uses the WebSocket. In 'auto' mode, after
   * fallbackAfter WebSocket attempts in a row ended before the welcome, the
   * attempts alternate: the fallback, then the WebSocket again (a network
   * that blocks WebSockets costs one quick failure per reconnect; a server
   * that was merely down gets its WebSocket back). A welcome on the
   * WebSocket resets the count; a connection on the fallback stays there
   * until it drops.
   */
  private pickWebSocket(): boolean {
    if (!this.fbFactory) return true;
    if (!this.wsFactory) return false;
    return !(this.wsFails >= (this.opts.fallbackAfter ?? 2) && this.lastWasWS);
  }

  /** Sends a frame on the current connection, if any. */
  private send(f: Frame): void {
    this.tr?.send(encodeFrame(f));
  }

  /** Closes the current connection ourselves and handles it as lost. */
  private drop(code: number, reason: string): void {
    const tr = this.tr;
    if (!tr) return;
    tr.close(code === 1006 ? 4000 : code, reason);
    this.lost(code, reason);
  }

  /** The current connection ended. */
  private lost(code: number, reason: string): void {
    const wasWelcomed = this.welcomed;
    this.tr = null;
    this.welcomed = false;
    this.keepT.clear();
    if (this.lastWasWS && !wasWelcomed) this.wsFails++;
    for (const d of this.docs.values()) d.disconnected();
    if (!isRetryCode(code)) {
      this.stop(new ServerError(code, reason || 'connection closed'));
      return;
    }
    if (this.first && !(this.lastWasWS && this.fbFactory && this.wsFactory)) {
      // The first attempt failed: Client.connect reports it (the client stops).
      // In 'auto' mode only once the fallback was tried too.
      this.first.reject(new ServerError(code, reason || 'connection failed'));
      this.first = null;
    }
    this.schedule();
  }

  /** Plans the next connection attempt with backoff and full jitter. */
  private schedule(): void {
    if (this.closed) return;
    if (this.upSince > 0 && Date.now() - this.upSince >= UP_RESET_MS) this.attempt = 0;
    this.upSince = 0;
    const d = backoffDelay(this.attempt, this.retryHint, this.random(), this.opts.backoff);
    this.attempt++;
    this.retryHint = 0;
    this.reconnectT.set(d, () => this.dial());
    this.setStatus();
  }

  private stop(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (!(err instanceof ClosedError)) this.err = err;
    this.reconnectT.clear();
    this.keepT.clear();
    const tr = this.tr;
    this.tr = null;
    this.welcomed = false;
    tr?.close(1000, '');
    this.first?.reject(err);
    this.first = null;
    const docs = [...this.docs.values()];
    for (const d of docs) d.stopped(err);
    this.docs.clear();
    if (this.store) {
      // Last snapshots, then the database closes and the agents' locks go.
      (globalThis as { removeEventListener?: (k: string, f: () => void) => void }).removeEventListener?.('pagehide', this.onPageHide);
      const store = this.store;
      void Promise.allSettled(docs.map((d) => d.whenStored())).then(() => {
        store.close();
        for (const r of this.releases) r();
      });
    }
    if (this.err) this.ev.emit('error', this.err);
    this.setStatus();
  }

  private setStatus(): void {
    const s = this.status;
    if (s !== this.lastStatus) {
      this.lastStatus = s;
      this.ev.emit('status', s);
    }
  }

  // ---- keepalive ----------------------------------------------------------------

  /**
   * Browsers cannot see WebSocket control pings, so the client pings when
   * the server has been silent for half the ping interval, and treats the
   * connection as dead after ping interval + pong timeout of silence.
   */
  private keepalive(): void {
    const idle = this.lim.pingIntervalMs || DEFAULT_IDLE_MS;
    const dead = idle + (this.lim.pongTimeoutMs || DEFAULT_PONG_MS);
    const quiet = Date.now() - this.lastHeard;
    if (quiet >= dead) {
      this.drop(1006, 'server silent');
      return;
    }
    if (quiet >= idle / 2) this.send({ type: 9, nonce: ++this.pingNonce });
    this.keepT.set(Math.min(idle / 2, dead - quiet), () => this.keepalive());
  }

  // ---- frames ---------------------------------------------------------------------

  private message(b: Uint8Array): void {
    this.lastHeard = Date.now();
    let f: Frame;
    try {
      f = decodeFrame(b);
    } catch (e) {
      // A server that sends garbage is broken: drop and retry later.
      this.drop(1006, e instanceof FrameError ? e.message : 'bad frame');
      return;
    }
    switch (f.type) {
      case 2:
        this.welcome(f.session, f.limits);
        return;
      case 9:
        this.send({ type: 10, nonce: f.nonce });
        return;
      case 10:
        return;
      case 8:
        if (f.doc === '') this.connError(new ServerError(f.code, f.message, '', f.batch, f.retryAfterMs));
        else this.docs.get(f.doc)?.frame(f);
        return;
      case 4:
      case 5:
      case 6:
      case 12:
      case 33:
        this.docs.get(f.doc)?.frame(f);
        return;
      default:
        // a client-to-server type: ignore it
        return;
    }
  }

  private welcome(session: string, limits: ServerLimits): void {
    this.welcomed = true;
    if (this.lastWasWS) this.wsFails = 0;
    this.sessionId = session;
    this.lim = limits;
    this.upSince = Date.now();
    this.keepT.clear();
    this.keepalive();
    this.first?.resolve();
    this.first = null;
    this.setStatus();
    for (const d of this.docs.values()) d.join();
  }

  /** An error frame about the connection: the close follows. */
  private connError(e: ServerError): void {
    this.retryHint = Math.max(this.retryHint, e.retryAfterMs);
    if (!e.retry) this.stop(e);
    else if (e.code === Code.AgentInUse) this.retryHint = Math.max(this.retryHint, 100);
  }
}

/** Document ids: 1-256 bytes of UTF-8 without control characters. */
export function checkDocID(id: string): void {
  const n = new TextEncoder().encode(id).length;
  if (n < 1 || n > 256) throw new RangeError(`collabd: document id of ${n} bytes (want 1-256)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id) || /\p{Cs}/u.test(id)) throw new RangeError('collabd: document id with a control character');
}

/**
 * Takes the Web Lock name without waiting: resolves with its release, or
 * null if another holder (a live tab) has it. Without Web Locks: a no-op
 * release.
 */
function holdLock(name: string): Promise<(() => void) | null> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (!locks) return Promise.resolve(() => {});
  return new Promise((res) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          res(null);
          return undefined;
        }
        res(release);
        return held;
      })
      .catch(() => res(null));
  });
}
