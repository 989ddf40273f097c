// Version history over the server's HTTP API (docs/HTTP.md, "Versions"):
// list, view, diff, take a named version, restore. Restores are
// CRDT-safe on the server (it edits the document back to the version's
// text), so a restore reaches every joined replica as ordinary remote
// changes, and edits made meanwhile merge.

import { ServerError } from './codes.js';
import type { FetchLike } from './fallback.js';

/** A stored version of a document. */
export interface Version {
  /** The version's sequence in its document (what restore takes). */
  seq: number;
  /** The document version it copies. */
  version: number;
  time: string;
  kind: 'auto' | 'named';
  label?: string;
  /** Token subjects of the changes since the previous version. */
  authors: string[];
  /** Size of its snapshot in bytes. */
  bytes: number;
  /** Root -> text (Document.version only). */
  text?: Record<string, string>;
}

/** A page of versions, newest first; next is the `before` of the next page. */
export interface VersionPage {
  versions: Version[];
  next?: number;
}

/** Splices [pos, del, ins] in code points, each against the text the previous one left. */
export type Splice = [number, number, string];

export interface Diff {
  from: number;
  to?: number;
  roots: { root: string; edits: Splice[] }[];
}

export interface RestoreResult {
  restored: number;
  /** The document version after the restore's edits. */
  version: number;
  applied: number;
}

/** Calls one HTTP API route of the server the client talks to. */
export type API = (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<unknown>;

/** The HTTP base of a WebSocket URL: ws(s)://h/p/v1/ws?q → http(s)://h/p. */
export function httpBase(wsURL: string): string {
  const u = new URL(wsURL);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  u.pathname = u.pathname.replace(/\/v1\/ws\/?$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

/** An API over fetch, with the client's current token. Errors are ServerErrors with the API's code. */
export function httpAPI(wsURL: string, token: () => string, f?: FetchLike): API {
  const base = httpBase(wsURL);
  return async (method, path, body) => {
    const fetchFn = f ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!fetchFn) throw new Error('collabd: no fetch for the HTTP API: pass options.fetch');
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const tok = token();
    if (tok) headers.Authorization = `Bearer ${tok}`;
    const r = await fetchFn.call(globalThis, base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    } as RequestInit);
    const text = await r.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!r.ok) {
      const e = (json ?? {}) as { code?: number; message?: string };
      const retry = Number(r.headers.get('Retry-After') ?? 0) * 1000;
      throw new ServerError(e.code ?? r.status, e.message ?? (text || r.statusText), '', 0, retry);
    }
    return json;
  };
}

function docPath(id: string, suffix: string): string {
  return `/v1/docs/${encodeURIComponent(id)}${suffix}`;
}

function positive(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`collabd: ${what} must be a positive integer`);
  return n;
}

/** The history operations of one document. */
export class History {
  constructor(
    private readonly api: API,
    private readonly id: string,
  ) {}

  /** Versions newest first: at most limit (default 100), older than before (a page's next). */
  async list(o: { limit?: number; before?: number } = {}): Promise<VersionPage> {
    const q = new URLSearchParams();
    if (o.limit !== undefined) q.set('limit', String(positive(o.limit, 'limit')));
    if (o.before !== undefined) q.set('before', String(positive(o.before, 'before')));
    const s = q.toString();
    return (await this.api('GET', docPath(this.id, `/versions${s ? `?${s}` : ''}`))) as VersionPage;
  }

  /** One version with the text of every root. */
  async get(seq: number): Promise<Version> {
    return (await this.api('GET', docPath(this.id, `/versions/${positive(seq, 'seq')}`))) as Version;
  }

  /** The edits from version from to version to (absent: the current document). */
  async diff(from: number, to?: number, root?: string): Promise<Diff> {
    const q = new URLSearchParams({ from: String(positive(from, 'from')) });
    if (to !== undefined) q.set('to', String(positive(to, 'to')));
    if (root !== undefined) q.set('root', root);
    return (await this.api('GET', docPath(this.id, `/diff?${q}`))) as Diff;
  }

  /** Takes a named version; resolves once it is durable. */
  async save(label: string): Promise<Version> {
    return (await this.api('POST', docPath(this.id, '/versions'), { label })) as Version;
  }

  /** Restores version seq; resolves once the server's edits are durable. */
  async restore(seq: number): Promise<RestoreResult> {
    return (await this.api('POST', docPath(this.id, '/restore'), { version: positive(seq, 'seq') })) as RestoreResult;
  }
}
