// Frames of the wire protocol (docs/PROTOCOL.md; Go: package protocol),
// encoded with @msgpack/msgpack. uint64 fields (agents, batches, nonces,
// versions) travel as numbers below 2^32 and as bigints above, so that every
// value is written in its smallest encoding and values >= 2^53 round-trip.

import { Decoder, Encoder } from '@msgpack/msgpack';
import { Reader } from './mp.js';

export const PROTOCOL_VERSION = 1;

/** Frame type numbers. */
export const FrameType = {
  Hello: 1,
  Welcome: 2,
  Join: 3,
  Sync: 4,
  Update: 5,
  Ack: 6,
  Leave: 7,
  Error: 8,
  Ping: 9,
  Pong: 10,
  Refresh: 11,
  Message: 12,
  PresenceSet: 32,
  Presence: 33,
} as const;

/** Ack statuses. */
export const AckApplied = 1;
export const AckDurable = 2;
export const AckRejected = 3;

/** A uint64 as it decodes: a number when it is a safe integer, else a bigint. */
export type U64 = number | bigint;

/** The limits a server announces in Welcome (0: none). */
export interface ServerLimits {
  maxFrame: number;
  maxDocs: number;
  maxOpsPerBatch: number;
  maxDocBytes: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
}

export type Meta = Record<string, string>;

/** A peer in a presence frame (identity + state). */
export interface WirePeer {
  session: string;
  userId: string;
  name: string;
  color: string;
  readOnly: boolean;
  root: string;
  anchor: Uint8Array;
  head: Uint8Array;
  meta: Meta | null;
}

/** A moved entry in a presence frame (state only). */
export interface WireMoved {
  session: string;
  root: string;
  anchor: Uint8Array;
  head: Uint8Array;
  meta: Meta | null;
}

export type Frame =
  | { type: 1; version: number; token: string; agents: U64[]; client: string }
  | { type: 2; version: number; session: string; limits: ServerLimits }
  // snapshot (optional, a trailing element sent only when true): a join
  // with an empty sv takes the document as a snapshot; a sync chunk is a
  // piece of that snapshot (PROTOCOL.md, join and sync).
  | { type: 3; doc: string; sv: Uint8Array; readOnly: boolean; snapshot?: boolean }
  | { type: 4; doc: string; chunk: number; final: boolean; update: Uint8Array; sv: Uint8Array | null; snapshot?: boolean }
  | { type: 5; doc: string; batch: U64; update: Uint8Array }
  | { type: 6; doc: string; batch: U64; status: number; applied: U64; durable: U64 }
  | { type: 7; doc: string }
  | { type: 8; code: number; doc: string; batch: U64; message: string; retryAfterMs: number }
  | { type: 9; nonce: U64 }
  | { type: 10; nonce: U64 }
  | { type: 11; token: string }
  | { type: 12; doc: string; from: string; data: string }
  | { type: 32; doc: string; root: string; anchor: Uint8Array; head: Uint8Array; meta: Meta | null }
  | { type: 33; doc: string; full: boolean; peers: WirePeer[]; moved: WireMoved[]; gone: string[] };

/** A frame that does not decode or breaks the layout of its type. */
export class FrameError extends Error {
  constructor(msg: string) {
    super(`collabd: bad frame: ${msg}`);
    this.name = 'FrameError';
  }
}

const TWO32 = 0x1_0000_0000;

/** A uint64 in its smallest msgpack form (see the file comment). */
function w64(x: U64): number | bigint {
  if (typeof x === 'bigint') {
    if (x < 0n || x > 0xffff_ffff_ffff_ffffn) throw new RangeError(`uint64 out of range: ${x}`);
    return x < BigInt(TWO32) ? Number(x) : x;
  }
  if (!Number.isSafeInteger(x) || x < 0) throw new RangeError(`not a uint64: ${x}`);
  return x < TWO32 ? x : BigInt(x);
}

/** A non-negative int (the protocol's int fields are at most 2^31-1). */
function wInt(x: number): number {
  return Number.isInteger(x) && x > 0 ? Math.min(x, 0x7fff_ffff) : 0;
}

function wMeta(m: Meta | null): Meta | null {
  if (!m || Object.keys(m).length === 0) return null;
  return m;
}

// sortKeys: metadata maps go out in key order, as Go writes them.
const encoder = new Encoder({ useBigInt64: true, sortKeys: true });

/** Encodes a frame as one msgpack array. */
export function encodeFrame(f: Frame): Uint8Array {
  let a: unknown[];
  switch (f.type) {
    case 1:
      a = [1, f.version, f.token, f.agents.map(w64), f.client];
      break;
    case 2: {
      const l = f.limits;
      a = [2, f.version, f.session, [l.maxFrame, l.maxDocs, l.maxOpsPerBatch, l.maxDocBytes, l.pingIntervalMs, l.pongTimeoutMs].map(wInt)];
      break;
    }
    case 3:
      a = f.snapshot ? [3, f.doc, f.sv, f.readOnly, true] : [3, f.doc, f.sv, f.readOnly];
      break;
    case 4:
      a = f.snapshot ? [4, f.doc, f.chunk, f.final, f.update, f.sv, true] : [4, f.doc, f.chunk, f.final, f.update, f.sv];
      break;
    case 5:
      a = [5, f.doc, w64(f.batch), f.update];
      break;
    case 6:
      a = [6, f.doc, w64(f.batch), f.status, w64(f.applied), w64(f.durable)];
      break;
    case 7:
      a = [7, f.doc];
      break;
    case 8:
      a = [8, f.code, f.doc, w64(f.batch), f.message, wInt(f.retryAfterMs)];
      break;
    case 9:
    case 10:
      a = [f.type, w64(f.nonce)];
      break;
    case 11:
      a = [11, f.token];
      break;
    case 12:
      a = [12, f.doc, f.from, f.data];
      break;
    case 32:
      a = [32, f.doc, f.root, f.anchor, f.head, wMeta(f.meta)];
      break;
    case 33:
      a = [33, f.doc, f.full,
        f.peers.map((p) => [p.session, p.userId, p.name, p.color, p.readOnly, p.root, p.anchor, p.head, wMeta(p.meta)]),
        f.moved.map((p) => [p.session, p.root, p.anchor, p.head, wMeta(p.meta)]),
        f.gone];
      break;
  }
  return encoder.encode(a);
}

// ---- decoding -------------------------------------------------------------

/** Checks one decoded element. */
class Fields {
  constructor(
    private readonly a: unknown[],
    private readonly what: string,
  ) {}
  private get(i: number): unknown {
    return this.a[i];
  }
  private bad(i: number, want: string): FrameError {
    return new FrameError(`${this.what}: element ${i} is not ${want}`);
  }
  str(i: number): string {
    const v = this.get(i);
    if (typeof v !== 'string') throw this.bad(i, 'a string');
    return v;
  }
  bool(i: number): boolean {
    const v = this.get(i);
    if (typeof v !== 'boolean') throw this.bad(i, 'a bool');
    return v;
  }
  bin(i: number): Uint8Array {
    const v = this.get(i);
    if (!(v instanceof Uint8Array)) throw this.bad(i, 'bin');
    return v;
  }
  binOrNil(i: number): Uint8Array | null {
    return this.get(i) === null ? null : this.bin(i);
  }
  u64(i: number): U64 {
    return asU64(this.get(i), () => this.bad(i, 'a uint64'));
  }
  int(i: number): number {
    const v = this.get(i);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fff_ffff) throw this.bad(i, 'an int');
    return v;
  }
  arr(i: number): unknown[] {
    const v = this.get(i);
    if (!Array.isArray(v)) throw this.bad(i, 'an array');
    return v;
  }
  meta(i: number): Meta | null {
    const v = this.get(i);
    if (v === null) return null;
    if (typeof v !== 'object' || v instanceof Uint8Array || Array.isArray(v)) throw this.bad(i, 'a map');
    const out: Meta = Object.create(null) as Meta;
    let n = 0;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x !== 'string') throw this.bad(i, 'a map of strings');
      out[k] = x;
      n++;
    }
    return n === 0 ? null : out;
  }
}

function asU64(v: unknown, bad: () => FrameError): U64 {
  if (typeof v === 'bigint') {
    if (v < 0n) throw bad();
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad();
  return v;
}

function tuple(v: unknown, n: number, what: string): Fields {
  if (!Array.isArray(v) || v.length !== n) throw new FrameError(`${what}: want an array of ${n}`);
  return new Fields(v, what);
}

const LAYOUT: Record<number, [string, number]> = {
  1: ['hello', 5], 2: ['welcome', 4], 3: ['join', 4], 4: ['sync', 6], 5: ['update', 4], 6: ['ack', 6], 7: ['leave', 2],
  8: ['error', 6], 9: ['ping', 2], 10: ['pong', 2], 11: ['refresh', 2], 12: ['message', 4], 32: ['presence-set', 6], 33: ['presence', 6],
};

// The msgpack decoder of the last maxFrame asked for: a decoder costs more
// to make (its fields, its options) than a small frame costs to decode, and
// decodeFrame runs for every frame received. It is re-entrant (a nested
// decode clones it).
let cachedMax = -1;
let cached: Decoder | null = null;
function decoderFor(max: number): Decoder {
  if (!cached || cachedMax !== max) {
    cached = new Decoder({ useBigInt64: true, maxStrLength: max, maxBinLength: max, maxArrayLength: max, maxMapLength: max });
    cachedMax = max;
  }
  return cached;
}

/**
 * An update frame, [5, doc, batch, update], read straight from the bytes:
 * it is what every fanned-out update is, so a subscriber decodes one per
 * update it is sent (BENCHMARKS.md, "Fan-out path"). Anything it does not
 * expect (another type, a doc id that is not ASCII, a malformed frame) is
 * null, and decodeFrame takes the general path, which decodes it or says
 * what is wrong, as for any frame. The update is a view into b, as the
 * general path's is.
 */
function updateFrame(b: Uint8Array): Frame | null {
  if (b.length < 5 || b[0] !== 0x94 || b[1] !== 5) return null;
  const r = new Reader(b);
  r.off = 2;
  try {
    const d = r.strBytes();
    let doc = '';
    for (let i = 0; i < d.length; i++) {
      const c = d[i]!;
      if (c >= 0x80) return null;
      doc += String.fromCharCode(c);
    }
    let batch: U64;
    const c = b[r.off];
    if (c !== undefined && c < 0x80) {
      batch = c;
      r.off++;
    } else if (c !== 0xcf && c !== 0xd3) {
      batch = r.uint(); // at most 32 bits: exact, no bigint
    } else {
      const v = r.uint64();
      batch = v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    const update = r.bin();
    if (r.off !== b.length) return null;
    return { type: 5, doc, batch, update };
  } catch {
    return null;
  }
}

/** Decoding limits: the largest frame accepted (bytes). */
export interface DecodeOptions {
  maxFrame?: number;
}

/**
 * Decodes one frame. Anything but exactly one msgpack array of a known type
 * with the right number of well-typed elements is a FrameError.
 */
export function decodeFrame(b: Uint8Array, o: DecodeOptions = {}): Frame {
  const max = o.maxFrame ?? 4 << 20;
  if (b.length > max) throw new FrameError(`${b.length} bytes, more than ${max}`);
  const u = updateFrame(b);
  if (u) return u;
  let v: unknown;
  try {
    v = decoderFor(max).decode(b);
  } catch (e) {
    throw new FrameError(e instanceof Error ? e.message : String(e));
  }
  if (!Array.isArray(v) || v.length === 0) throw new FrameError('not a non-empty array');
  const type = v[0];
  if (type === FrameType.Hello && v[1] !== PROTOCOL_VERSION) throw new FrameError('unsupported version');
  const layout = typeof type === 'number' ? LAYOUT[type] : undefined;
  if (!layout) throw new FrameError(`unknown type ${String(type)}`);
  // join and sync may carry one more, optional element: the snapshot flag
  const extra = (type === 3 || type === 4) && v.length === layout[1] + 1;
  const f = tuple(v, extra ? layout[1] + 1 : layout[1], layout[0]);
  switch (type) {
    case 1:
      return { type, version: f.int(1), token: f.str(2), agents: f.arr(3).map((x) => asU64(x, () => new FrameError('hello: bad agent'))), client: f.str(4) };
    case 2: {
      const l = tuple(f.arr(3), 6, 'welcome limits');
      return {
        type, version: f.int(1), session: f.str(2),
        limits: { maxFrame: l.int(0), maxDocs: l.int(1), maxOpsPerBatch: l.int(2), maxDocBytes: l.int(3), pingIntervalMs: l.int(4), pongTimeoutMs: l.int(5) },
      };
    }
    case 3: {
      const j: Frame = { type, doc: f.str(1), sv: f.bin(2), readOnly: f.bool(3) };
      if (extra) j.snapshot = f.bool(4);
      return j;
    }
    case 4: {
      const s: Frame = { type, doc: f.str(1), chunk: f.int(2), final: f.bool(3), update: f.bin(4), sv: f.binOrNil(5) };
      if (extra) s.snapshot = f.bool(6);
      return s;
    }
    case 5:
      return { type, doc: f.str(1), batch: f.u64(2), update: f.bin(3) };
    case 6:
      return { type, doc: f.str(1), batch: f.u64(2), status: f.int(3), applied: f.u64(4), durable: f.u64(5) };
    case 7:
      return { type, doc: f.str(1) };
    case 8:
      return { type, code: f.int(1), doc: f.str(2), batch: f.u64(3), message: f.str(4), retryAfterMs: f.int(5) };
    case 9:
    case 10:
      return { type, nonce: f.u64(1) };
    case 11:
      return { type, token: f.str(1) };
    case 12:
      return { type, doc: f.str(1), from: f.str(2), data: f.str(3) };
    case 32:
      return { type, doc: f.str(1), root: f.str(2), anchor: f.bin(3), head: f.bin(4), meta: f.meta(5) };
    case 33:
      return {
        type, doc: f.str(1), full: f.bool(2),
        peers: f.arr(3).map((x) => {
          const p = tuple(x, 9, 'presence peer');
          return { session: p.str(0), userId: p.str(1), name: p.str(2), color: p.str(3), readOnly: p.bool(4), root: p.str(5), anchor: p.bin(6), head: p.bin(7), meta: p.meta(8) };
        }),
        moved: f.arr(4).map((x) => {
          const p = tuple(x, 5, 'presence moved');
          return { session: p.str(0), root: p.str(1), anchor: p.bin(2), head: p.bin(3), meta: p.meta(4) };
        }),
        gone: f.arr(5).map((x) => {
          if (typeof x !== 'string') throw new FrameError('presence: gone is not a string');
          return x;
        }),
      };
  }
  throw new FrameError(`unknown type ${String(type)}`);
}
