// Snapshots (Go: snapshot.go; layout in docs/FORMATS.md): a msgpack header
// around a columnar body, compressed with LZ4 (fast) or raw DEFLATE (small).
// The body is byte-identical to Go's; the compressed bytes are not (other
// compressors), but each side loads the other's.

import { Inflate, deflateSync } from 'fflate';
import type { Doc } from './doc.js';
import { CrdtError, DecodeError } from './errors.js';
import { type AgentID, MAX_U32, NONE, type Ref, mkRef, refA, refS } from './ids.js';
import { lz4Compress, lz4Decompress, lz4DecompressedLength } from './lz4.js';
import { Writer, writeRunes } from './mp.js';
import type { Text } from './text.js';
import { LEAF_CAP, NO_CONTENT, Run, Tree } from './tree.js';
import { Decoder, decodeUTF8, encodeOps, publicOp } from './update.js';

const SNAPSHOT_VERSION = 1;
const SNAP_RAW = 0;
const SNAP_DEFLATE = 1;
const SNAP_LZ4 = 2;

const LEFT_NONE = 0, LEFT_CONT = 1, LEFT_PREV = 2, LEFT_EXPLICIT = 3;
const RIGHT_NONE = 0, RIGHT_NEXT = 1, RIGHT_SAME = 2, RIGHT_EXPLICIT = 3;
const RUN_DELETED = 1;
const RUN_SAME_AGENT = 32;
const HIST_DEL = 1, HIST_REV = 2, HIST_ROOT = 4, HIST_AGENT = 8;

/** 'fast' (LZ4, the default, fast to load) or 'small' (DEFLATE, smaller). */
export type Compression = 'fast' | 'small';

/** The uncompressed snapshot body (exported for tests: it is byte-identical with Go). */
export function encodeSnapshotBody(d: Doc): Uint8Array {
  d.ready();
  // Roots without items that no pending op names (a root that was only
  // read) are left out; rm maps root indices to snapshot indices (Go:
  // EncodeSnapshotWith, savedRoots).
  const keep = d.roots.map((x) => x.hasItems());
  for (const p of d.pending) {
    const i = d.rootIx.get(p.rootName);
    if (i !== undefined) keep[i] = true;
  }
  const rm: number[] = [];
  let nr = 0;
  for (const k of keep) rm.push(k ? nr++ : 0);
  const w = new Writer();
  w.uvarint(d.agents.length);
  for (const a of d.agents) {
    w.uvarint(a.id);
    w.uvarint(a.next);
  }
  w.uvarint(nr);
  const enc = new TextEncoder();
  for (const x of d.roots) {
    if (!keep[x.idx]) continue;
    const name = enc.encode(x.name);
    w.uvarint(name.length);
    w.bytes(name);
  }
  for (const a of d.agents) {
    w.uvarint(a.hist.length);
    let root = 0;
    let tagent = 0;
    let tprev = 0;
    for (const h of a.hist) {
      const hroot = rm[h.root]!;
      let flags = 0;
      if (h.del) {
        flags |= HIST_DEL;
        if (h.rev) flags |= HIST_REV;
        if (refA(h.target) !== tagent) flags |= HIST_AGENT;
      }
      if (hroot !== root) flags |= HIST_ROOT;
      w.uvarint(h.n * 16 + flags);
      if (hroot !== root) {
        w.uvarint(hroot);
        root = hroot;
      }
      if (h.del) {
        if (refA(h.target) !== tagent) {
          tagent = refA(h.target);
          w.uvarint(tagent);
        }
        w.varint(refS(h.target) - tprev);
        tprev = refS(h.target);
      }
    }
  }
  w.uvarint(d.order.length);
  for (const o of d.order) {
    w.uvarint(o.a);
    w.uvarint(o.n);
  }
  const runs = new Writer();
  for (const x of d.roots) {
    if (!keep[x.idx]) continue;
    const text = appendRuns(x, runs);
    w.uvarint(text.len);
    w.bytes(text.finish());
  }
  w.bytes(runs.finish());
  const pend = encodePending(d);
  w.uvarint(pend.length);
  w.bytes(pend);
  return w.finish();
}

export function encodeSnapshot(d: Doc, c: Compression): Uint8Array {
  return packSnapshot(encodeSnapshotBody(d), c);
}

/** Compresses a snapshot body and wraps it in the msgpack header. */
export function packSnapshot(raw: Uint8Array, c: Compression): Uint8Array {
  let body = raw;
  let kind = SNAP_RAW;
  if (raw.length > 512) {
    const z = c === 'small' ? deflateSync(raw, { level: 6 }) : lz4Compress(raw);
    if (z.length > 0 && z.length < raw.length) {
      body = z;
      kind = c === 'small' ? SNAP_DEFLATE : SNAP_LZ4;
    }
  }
  const out = new Writer();
  out.byte(0x94);
  out.byte(SNAPSHOT_VERSION);
  out.uint(kind);
  out.uint(raw.length);
  out.bin(body);
  return out.finish();
}

/** Writes the runs of x in columns and returns its visible text (UTF-8). */
function appendRuns(x: Text, w: Writer): Writer {
  const t = x.t;
  const flags: number[] = [];
  const lens = new Writer();
  const ids = new Writer();
  const orig = new Writer();
  const text = new Writer();
  let prev: Run | null = null;
  for (const l of t.leaves) {
    for (let i = 0; i < l.runs.length; i++) {
      const r = l.runs[i]!;
      let f = 0;
      if (r.left === NONE) f |= LEFT_NONE << 1;
      else if (refS(r.id) > 0 && r.left === r.id - 1) f |= LEFT_CONT << 1;
      else if (prev !== null && r.left === prev.last()) f |= LEFT_PREV << 1;
      else {
        f |= LEFT_EXPLICIT << 1;
        orig.uvarint(refA(r.left));
        orig.varint(refS(r.left) - refS(r.id));
      }
      if (r.right === NONE) f |= RIGHT_NONE << 3;
      else if (r.right === t.nextItem(l, i, r.n - 1)) f |= RIGHT_NEXT << 3;
      else if (prev !== null && r.right === prev.right) f |= RIGHT_SAME << 3;
      else {
        f |= RIGHT_EXPLICIT << 3;
        orig.uvarint(refA(r.right));
        orig.varint(refS(r.right) - refS(r.id));
      }
      if (r.deleted) f |= RUN_DELETED;
      if (prev !== null && refA(r.id) === refA(prev.id)) f |= RUN_SAME_AGENT;
      else ids.uvarint(refA(r.id));
      flags.push(f);
      lens.uvarint(r.n);
      ids.varint(refS(r.id) - (prev === null ? 0 : refS(prev.id) + prev.n));
      if (!r.deleted) {
        writeRunes(text, x.arena, r.content, r.content + r.n);
      }
      prev = r;
    }
  }
  w.uvarint(flags.length);
  for (const col of [Uint8Array.from(flags), lens.finish(), ids.finish(), orig.finish()]) {
    w.uvarint(col.length);
    w.bytes(col);
  }
  return text;
}

/** The pending buffer as one update (empty if none), sorted by agent and seq. */
function encodePending(d: Doc): Uint8Array {
  if (d.pending.length === 0) return new Uint8Array(0);
  const ps = d.pending.slice();
  ps.sort((a, b) => (a.op.agent < b.op.agent ? -1 : a.op.agent > b.op.agent ? 1 : a.op.seq - b.op.seq));
  const prevEnd = new Map<AgentID, number>();
  const ops = [];
  for (const p of ps) {
    if (p.op.seq < (prevEnd.get(p.op.agent) ?? 0)) continue; // overlapping duplicates: keep the first
    prevEnd.set(p.op.agent, p.op.seq + p.op.n);
    ops.push(publicOp(p.op, p.rootName));
  }
  return encodeOps(ops);
}

/** Reads uvarint-framed sections with every count checked against the bytes left. */
class SnapReader {
  off = 0;
  err: DecodeError | null = null;
  constructor(readonly b: Uint8Array) {}

  fail(reason: string): void {
    if (!this.err) this.err = new DecodeError('snapshot', this.off, reason);
  }

  /** A uvarint (Go binary.Uvarint) as a bigint, or null on error. */
  private raw(): bigint | number | null {
    if (this.err) return null;
    let v = 0;
    let scale = 1;
    for (let k = 0; k < 10; k++) {
      const c = this.b[this.off + k];
      if (c === undefined) break;
      if (k === 9 && c > 1) break; // overflows 64 bits
      if (c < 0x80) {
        this.off += k + 1;
        if (k < 7) return v + c * scale;
        // 8 bytes or more: exact arithmetic
        let big = 0n;
        for (let j = k; j >= 0; j--) big = (big << 7n) | BigInt(this.b[this.off - k - 1 + j]! & 0x7f);
        return big;
      }
      v += (c & 0x7f) * scale;
      scale *= 128;
    }
    this.fail('bad or truncated varint');
    return null;
  }

  uv(max: number): number {
    const v = this.raw();
    if (v === null) return 0;
    if (v > max) {
      this.fail(`value ${v} exceeds ${max}`);
      return 0;
    }
    return Number(v);
  }

  uvBig(): bigint {
    const v = this.raw();
    return v === null ? 0n : BigInt(v);
  }

  sv(): number {
    const v = this.raw();
    if (v === null) return 0;
    const u = typeof v === 'bigint' ? Number(v) : v;
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  count(minSize: number): number {
    const n = this.uv(MAX_U32);
    if (!this.err && n > Math.floor((this.b.length - this.off) / minSize)) this.fail('count exceeds the remaining bytes');
    return n;
  }

  bytes(): Uint8Array {
    const n = this.uv(MAX_U32);
    if (!this.err && n > this.b.length - this.off) this.fail('length exceeds the remaining bytes');
    if (this.err) return new Uint8Array(0);
    const p = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return p;
  }
}

/** Loads a snapshot into d, a new document made for loading. */
export function loadSnapshot(b: Uint8Array, d: Doc): Doc {
  const lim = d.lim;
  const dec = new Decoder(b, 'snapshot');
  dec.array('snapshot', 4);
  dec.uint('version', SNAPSHOT_VERSION);
  const kind = dec.uint('compression', SNAP_LZ4);
  let rawLen: number;
  try {
    rawLen = dec.r.uint();
  } catch (e) {
    throw dec.fail('body length', e);
  }
  if (rawLen > lim.maxSnapshot) {
    // Refused before anything is allocated or inflated.
    throw new DecodeError('snapshot', 0, `body of ${rawLen} bytes exceeds maxSnapshot ${lim.maxSnapshot}`,
      new CrdtError('too-large', 'document limit exceeded'));
  }
  let body: Uint8Array;
  try {
    body = dec.r.bin();
  } catch (e) {
    throw dec.fail('body', e);
  }
  try {
    dec.r.done();
  } catch (e) {
    throw dec.fail('after body', e);
  }
  body = unpackBody(kind, body, rawLen);
  try {
    loadBody(body, d);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError('snapshot', 0, 'inconsistent state', e);
  }
  return d;
}

/** Above this declared size a DEFLATE body is inflated once into a counter before memory is allocated for it. */
const INFLATE_CHECK_ABOVE = 1 << 20;
/** Input bytes per push into the inflater: DEFLATE expands at most 1032:1, so one push makes at most ~1 MiB. */
const INFLATE_CHUNK = 1 << 10;

function sizeError(n: number | null, rawLen: number): DecodeError {
  if (n === null) return new DecodeError('snapshot', 0, 'decompress body: malformed block');
  if (n > rawLen) {
    return new DecodeError('snapshot', 0, `body decompresses to more than the ${rawLen} bytes declared`,
      new CrdtError('too-large', 'document limit exceeded'));
  }
  return new DecodeError('snapshot', 0, `body decompresses to ${n} bytes, header says ${rawLen}`);
}

/**
 * Inflates body through a hard cap of rawLen + 1 bytes, handing each piece
 * of output to sink; returns the bytes produced (more than rawLen: stopped).
 */
function inflateCapped(body: Uint8Array, rawLen: number, sink: (chunk: Uint8Array, at: number) => void): number {
  let n = 0;
  const over = new Error('over');
  const z = new Inflate((chunk: Uint8Array) => {
    if (chunk.length > rawLen - n) {
      n += chunk.length;
      throw over;
    }
    sink(chunk, n);
    n += chunk.length;
  });
  try {
    for (let i = 0; i < body.length; i += INFLATE_CHUNK) {
      const end = Math.min(i + INFLATE_CHUNK, body.length);
      z.push(body.subarray(i, end), end === body.length);
    }
    if (body.length === 0) z.push(body, true);
  } catch (e) {
    if (e === over) return n;
    throw new DecodeError('snapshot', 0, 'inflate body', e);
  }
  return n;
}

/**
 * Decompresses a snapshot body whose header declares rawLen bytes (already
 * checked against maxSnapshot) without trusting rawLen: an LZ4 block is
 * scanned and a large DEFLATE body inflated into a counter before rawLen bytes
 * are allocated, so a lying header costs no memory. Go: unpackBody.
 */
function unpackBody(kind: number, body: Uint8Array, rawLen: number): Uint8Array {
  if (kind === SNAP_RAW) {
    if (body.length !== rawLen) throw new DecodeError('snapshot', 0, 'body length differs from the header');
    return body;
  }
  if (kind === SNAP_LZ4) {
    if (rawLen > 255 * body.length + 16) throw new DecodeError('snapshot', 0, 'body length impossible for its compressed size');
    const n = lz4DecompressedLength(body, rawLen);
    if (n !== rawLen) throw sizeError(n, rawLen);
    const raw = lz4Decompress(body, rawLen);
    if (raw === null) throw new DecodeError('snapshot', 0, 'decompress body');
    return raw;
  }
  if (rawLen > 1032 * body.length + 16) throw new DecodeError('snapshot', 0, 'body length impossible for its compressed size');
  if (rawLen > INFLATE_CHECK_ABOVE) {
    const n = inflateCapped(body, rawLen, () => {});
    if (n !== rawLen) throw sizeError(n, rawLen);
  }
  const raw = new Uint8Array(rawLen);
  const n = inflateCapped(body, rawLen, (chunk, at) => raw.set(chunk, at));
  if (n !== rawLen) throw sizeError(n, rawLen);
  return raw;
}

function bad(msg: string): never {
  throw new Error(msg);
}

// Lazy loading (Go: lazy.go). The body caches every root's visible text
// ahead of its run columns. loadBody reads the agents, roots, history and
// texts, frames the run columns and checks their lengths against the texts
// and the history (measure); the run trees are built and checked whole on
// the first use of the structure (Doc.ready: an edit, an update, a diff, a
// relative position). A structure that fails that check makes the document
// refuse every such use with the error an eager load would have thrown; its
// texts stay the loaded ones, which are by construction the visible content
// of the structure. Snapshots with pending ops are built at once.

/** What a lazily loaded document keeps until its structure is built. */
export interface LazySnap {
  body: Uint8Array;
  texts: string[];
  runs: RunCols[];
  vis: number[];
  nAgents: number; // agents of the snapshot (the own agent is added after them)
}

/** One root's run section: the run count and its four columns. */
interface RunCols {
  n: number;
  cols: Uint8Array[];
}

function readRunCols(r: SnapReader): RunCols {
  const n = r.count(1);
  const cols = [r.bytes(), r.bytes(), r.bytes(), r.bytes()];
  if (!r.err && cols[0]!.length !== n) r.fail('run flag column length differs from run count');
  return { n, cols };
}

/**
 * Checks a root's run lengths against its text and its history without
 * building anything; returns the visible length (Go: runCols.measure).
 */
function measure(c: RunCols, text: string, utf8Len: number, items: number): number {
  const lens = new SnapReader(c.cols[1]!);
  let vis = 0;
  let tot = 0;
  for (const f of c.cols[0]!) {
    const n = lens.uv(MAX_U32);
    if ((f & RUN_DELETED) === 0) vis += n;
    tot += n;
  }
  if (lens.err || lens.off !== lens.b.length) bad('run length column and run count disagree');
  if (tot !== items) bad(`runs hold ${tot} items, history has ${items} inserts`);
  // Code points: UTF-16 units less one per surrogate pair (none when the
  // text is ASCII: as many bytes as units).
  let runes = text.length;
  if (utf8Len !== text.length) {
    const pairs = /[\uD800-\uDBFF]/g;
    while (pairs.exec(text) !== null) runes--;
  }
  if (runes !== vis) bad(`text has ${runes} code points, visible runs hold ${vis}`);
  return vis;
}

function loadBody(body: Uint8Array, d: Doc): void {
  const lim = d.lim;
  const r = new SnapReader(body);
  // Agents without ops (a replica's own agent before its first edit) are
  // listed but do not count against maxAgents (Go: loadBody).
  const na = r.count(2);
  for (let k = 0; k < na; k++) {
    const id = r.uvBig();
    const next = r.uv(MAX_U32 - 1);
    if (r.err) throw r.err;
    if (id === 0n || d.agentIx.has(id)) bad(`agent ${id} listed twice or zero`);
    d.agentIx.set(id, d.agents.length);
    d.agents.push({ id, next, hist: [] });
  }
  const nr = r.count(1);
  if (nr > lim.maxRoots) throw new DecodeError('snapshot', 0, 'too many roots');
  for (let k = 0; k < nr; k++) {
    const nb = r.bytes();
    if (r.err) throw r.err;
    const name = nb.length > lim.maxRootName ? null : decodeUTF8(nb);
    if (name === null) bad('bad root name');
    if (d.rootIx.has(name)) bad('root listed twice');
    d.text(name);
  }
  const rootItems = loadHistory(r, d);
  const textBytes = d.roots.map(() => r.bytes());
  const runs = d.roots.map(() => readRunCols(r));
  if (d.agents.filter((a) => a.next > 0).length > lim.maxAgents) {
    throw new DecodeError('snapshot', 0, 'too many agents', new CrdtError('too-large', 'document limit exceeded'));
  }
  const pend = r.bytes();
  if (r.err) throw r.err;
  if (r.off !== body.length) throw new DecodeError('snapshot', r.off, 'trailing bytes');
  const texts: string[] = [];
  const vis: number[] = [];
  d.roots.forEach((x, i) => {
    const str = decodeUTF8(textBytes[i]!);
    if (str === null) bad('snapshot text is not UTF-8');
    texts.push(str);
    vis.push(measure(runs[i]!, str, textBytes[i]!.length, rootItems[i]!));
    x.lazyVis = vis[i]!;
    x.lazyTot = rootItems[i]!;
    x.setCache(str);
  });
  d.lazy = { body, texts, runs, vis, nAgents: d.agents.length };
  if (pend.length > 0) {
    // Ops that were waiting wait again: they need the structure, built now.
    d.ready();
    try {
      d.applyUpdate(pend);
    } catch (e) {
      throw new Error(`pending ops: ${(e as Error).message}`);
    }
  }
  d.finishLoad();
}

/** Builds the run trees of a lazily loaded snapshot and checks them whole. */
export function buildLazy(d: Doc, lz: LazySnap): void {
  try {
    lz.runs.forEach((c, i) => {
      const x = d.roots[i]!;
      x.t = new Tree();
      x.arena = [];
      x.lazyVis = -1;
      loadRuns(c, d, x, lz.texts[i]!, lz.nAgents);
    });
    verifyLoaded(d);
  } catch (e) {
    lz.runs.forEach((_, i) => {
      const x = d.roots[i]!;
      x.t = new Tree();
      x.arena = [];
      x.lazyVis = lz.vis[i]!;
      x.setCache(lz.texts[i]!);
    });
    if (e instanceof DecodeError) throw e;
    throw new DecodeError('snapshot', 0, 'inconsistent state', e);
  }
}

/** Reads the history and the order; returns the items the history inserts into each root. */
function loadHistory(r: SnapReader, d: Doc): number[] {
  const rootItems = new Array<number>(d.roots.length).fill(0);
  d.agents.forEach((a, ai) => {
    const ns = r.count(1);
    let seq = 0;
    let root = 0;
    let tagent = 0;
    let tprev = 0;
    for (let k = 0; k < ns; k++) {
      const hd = r.uv(Number.MAX_VALUE);
      const flags = hd % 16;
      const h = { seq, n: Math.min(Math.floor(hd / 16), MAX_U32), root: 0, del: (flags & HIST_DEL) !== 0, rev: (flags & HIST_REV) !== 0, target: 0 as Ref };
      if (flags & HIST_ROOT) root = r.uv(d.roots.length);
      h.root = root;
      if (h.del) {
        if (flags & HIST_AGENT) tagent = r.uv(d.agents.length);
        tprev += r.sv();
        if (tprev < 0 || tprev >= MAX_U32) r.fail('delete target out of range');
        h.target = mkRef(tagent, tprev);
      } else if (h.rev || flags & HIST_AGENT) {
        r.fail('insert span with delete flags');
      }
      if (r.err) throw r.err;
      if (h.n === 0 || h.root >= d.roots.length || seq + h.n > a.next ||
        (h.del && (tagent >= d.agents.length || tprev + h.n > d.agents[tagent]!.next))) {
        bad(`history span ${seq}+${h.n} of agent ${ai} out of range`);
      }
      if (!h.del) {
        d.items += h.n;
        rootItems[h.root]! += h.n;
      }
      a.hist.push(h);
      seq += h.n;
    }
    if (seq !== a.next) bad(`history of agent ${ai} covers ${seq} ops, state vector says ${a.next}`);
  });
  if (d.items > d.lim.maxItems) throw new CrdtError('too-large', `document limit exceeded: ${d.items} items`);
  const no = r.count(2);
  const seen = new Array<number>(d.agents.length).fill(0);
  for (let k = 0; k < no; k++) {
    const a = r.uv(d.agents.length);
    const n = r.uv(MAX_U32);
    if (r.err) throw r.err;
    if (a >= d.agents.length || n === 0 || seen[a]! + n > d.agents[a]!.next) bad('order span out of range');
    d.order.push({ a, s: seen[a]!, n });
    seen[a]! += n;
  }
  d.agents.forEach((a, ai) => {
    if (seen[ai] !== a.next) bad('order log does not cover the state vector');
  });
  if (r.err) throw r.err;
  return rootItems;
}

const RIGHT_PLACEHOLDER = -2; // "the first item of the next run", resolved below

function loadRuns(c: RunCols, d: Doc, x: Text, str: string, nAgents: number): void {
  const nruns = c.n;
  const cols = c.cols;
  const flagsCol = cols[0]!;
  const lens = new SnapReader(cols[1]!);
  const ids = new SnapReader(cols[2]!);
  const orig = new SnapReader(cols[3]!);
  for (const ch of str) x.arena.push(ch.codePointAt(0)!);
  const t = x.t;
  const fill = (LEAF_CAP * 3) / 4; // leaves filled to 3/4, so the first edits do not split at once
  let content = 0;
  const runs: Run[] = [];
  let prev: Run | null = null;
  const origin = (self: number): Ref => {
    const a = orig.uv(nAgents);
    const s = self + orig.sv();
    if (s < 0 || s >= MAX_U32) orig.fail('origin out of range');
    return mkRef(a, Math.max(0, Math.min(s, MAX_U32 - 1)));
  };
  for (let i = 0; i < nruns; i++) {
    const f = flagsCol[i]!;
    if (f >> 6 !== 0 || (i === 0 && f & RUN_SAME_AGENT)) bad('bad run flags');
    const n = lens.uv(MAX_U32);
    const a: number = f & RUN_SAME_AGENT ? refA(prev!.id) : ids.uv(nAgents);
    const seq: number = (prev === null ? 0 : refS(prev.id) + prev.n) + ids.sv();
    if (seq < 0 || seq >= MAX_U32) bad('run id out of range');
    if (lens.err || ids.err) bad('run column truncated');
    if (n === 0 || a >= nAgents || seq + n > d.agents[a]!.next) bad(`run ${i} out of range`);
    const nr: Run = new Run(mkRef(a, seq), n, NO_CONTENT, NONE, NONE, (f & RUN_DELETED) !== 0);
    switch ((f >> 1) & 3) {
      case LEFT_NONE: break;
      case LEFT_CONT:
        if (seq === 0) bad('continuation run at seq 0');
        nr.left = nr.id - 1;
        break;
      case LEFT_PREV:
        if (prev === null) bad('first run refers to a previous run');
        nr.left = prev.last();
        break;
      default: nr.left = origin(seq);
    }
    switch ((f >> 3) & 3) {
      case RIGHT_NONE: break;
      case RIGHT_NEXT: nr.right = RIGHT_PLACEHOLDER; break;
      case RIGHT_SAME:
        if (prev === null) bad('first run refers to a previous run');
        nr.right = prev.right;
        break;
      default: nr.right = origin(seq);
    }
    if (orig.err) bad('origin column truncated');
    if (!nr.deleted) {
      if (n > x.arena.length - content) bad('runs hold more visible text than the snapshot has');
      nr.content = content;
      content += n;
    }
    const last = runs[runs.length - 1];
    if (last && last.right === RIGHT_PLACEHOLDER) last.right = nr.id;
    runs.push(nr);
    prev = nr;
  }
  const last = runs[runs.length - 1];
  if (last && last.right === RIGHT_PLACEHOLDER) bad('last run refers to a next run');
  if (content !== x.arena.length || lens.off !== lens.b.length || ids.off !== ids.b.length || orig.off !== orig.b.length) {
    bad('run columns and text disagree');
  }
  let l = t.first;
  for (const nr of runs) {
    if (l.runs.length === fill) l = t.appendLeaf();
    if (t.has(nr.id) || t.has(nr.last())) bad(`item ${refA(nr.id)}:${refS(nr.id)} appears twice`);
    l.runs.push(nr);
    t.setIndex(nr.id, nr.n, l.id);
    t.bump(l, nr.vis(), nr.n);
  }
  x.setCache(str);
}

/** Checks that runs are exactly the inserts of the history and origins and targets are items. */
function verifyLoaded(d: Doc): void {
  let items = 0;
  for (const x of d.roots) items += x.t.tot;
  if (items !== d.items) bad(`runs hold ${items} items, history has ${d.items} inserts`);
  d.agents.forEach((a, ai) => {
    for (const h of a.hist) {
      const x = d.roots[h.root]!;
      const lo = h.del ? h.target : mkRef(ai, h.seq);
      if (!x.t.hasAll(lo, h.n)) bad(`history names items ${refA(lo)}:${refS(lo)}+${h.n} that root ${JSON.stringify(x.name)} lacks`);
      if (h.del) {
        for (let k = 0; k < h.n; ) {
          const { l, i, o } = x.t.find(lo + k);
          const r = l.runs[i]!;
          if (!r.deleted) bad(`deleted item ${refA(lo)}:${refS(lo) + k} is visible`);
          k += r.n - o;
        }
      }
    }
  });
  for (const x of d.roots) {
    for (const l of x.t.leaves) {
      for (const r of l.runs) {
        for (const o of [r.left, r.right]) {
          if (o !== NONE && !x.t.has(o)) bad(`origin ${refA(o)}:${refS(o)} is not an item of ${JSON.stringify(x.name)}`);
        }
      }
    }
  }
}
