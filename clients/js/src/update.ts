// Updates: decoding (hostile input), encoding from a document's history, and
// encoding a list of public ops (Go: update.go, op.go). Layout: docs/FORMATS.md.

import type { Doc } from './doc.js';
import { DecodeError } from './errors.js';
import { type AgentID, type ID, MAX_U32, MAX_U64, NONE, type Ref, mkRef, refA, refS } from './ids.js';
import { type Limits, withDefaults } from './limits.js';
import { MpError, Reader, Writer, writeRunes } from './mp.js';
import { NO_CONTENT } from './tree.js';
import { fromCodePoints } from './utf16.js';

export const UPDATE_VERSION = 1;
const KIND_INSERT = 0;
const KIND_DELETE = 1;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A decoded op (internal). */
export interface Op {
  del: boolean;
  root: number; // index into the update's root table
  agent: AgentID;
  seq: number;
  n: number;
  text: number[] | null; // insert content as code points; null for a tombstone
  tomb: boolean;
  left: ID;
  right: ID;
  target: ID; // delete: lowest target id
  rev: boolean; // delete: targets in descending order
}

export interface Update {
  agents: AgentID[];
  roots: string[];
  ops: Op[];
}

/** A decoded op in its public form (Go: crdt.Op). */
export interface PublicOp {
  kind: 'insert' | 'delete';
  root: string;
  id: ID;
  len: number;
  text?: string; // inserts
  tombstone?: boolean; // an insert of already-deleted text, sent without it
  left?: ID;
  right?: ID;
  target?: ID; // deletes
  reverse?: boolean;
}

const zeroID = (): ID => ({ agent: 0n, seq: 0 });

class Dec {
  r: Reader;
  err = ''; // first semantic error met while reading fields (sticky)
  constructor(b: Uint8Array, readonly what: string) {
    this.r = new Reader(b);
  }
  fail(reason: string, err?: unknown): DecodeError {
    const off = err instanceof MpError ? err.offset : this.r.off;
    return new DecodeError(this.what, off, reason, err ?? undefined);
  }
  array(what: string, want: number): number {
    let n: number;
    try {
      n = this.r.arrayLen();
    } catch (e) {
      throw this.fail(what, e);
    }
    if (want >= 0 && n !== want) throw this.fail(`${what}: ${n} elements, want ${want}`);
    return n;
  }
  uint(what: string, max: number): number {
    let v: number;
    try {
      v = this.r.uint();
    } catch (e) {
      throw this.fail(what, e);
    }
    if (v > max) throw this.fail(`${what} ${v} exceeds ${max}`);
    return v;
  }
  agent(what: string): AgentID {
    try {
      return this.r.uint64();
    } catch (e) {
      throw this.fail(what, e);
    }
  }
}

export { Dec as Decoder };

/** Decodes an update whole, checking every length and limit. */
export function decodeUpdate(b: Uint8Array, lim: Limits): Update {
  const ops: Op[] = [];
  const { agents, roots } = scanUpdate(b, lim, null, null, (o) => ops.push(o));
  return { agents, roots, ops };
}

/**
 * Reads an update, checking every length and limit, and hands each op to
 * each in order. With scratch, every op is decoded into scratch (each must
 * not keep it); with text, an insert's text is given to it as its UTF-8
 * bytes instead of being decoded to code points (it returns the count of
 * code points, or -1 if the bytes are not UTF-8), and the op's text is
 * null. decodeUpdate and insertedText are the two readers: one walk, so
 * that both accept and refuse exactly the same updates.
 */
function scanUpdate(b: Uint8Array, lim: Limits, scratch: Op | null, text: TextSink | null, each: (o: Op) => void): { agents: AgentID[]; roots: string[] } {
  const d = new Dec(b, 'update');
  d.array('update', 4);
  d.uint('version', UPDATE_VERSION);
  const na = d.array('agents', -1);
  if (na > lim.maxAgents) throw d.fail(`${na} agents exceed the limit ${lim.maxAgents}`);
  const agents: AgentID[] = [];
  for (let k = 0; k < na; k++) {
    const a = d.agent('agent');
    if (a === 0n) throw d.fail('agent 0 is reserved');
    agents.push(a);
  }
  const nr = d.array('roots', -1);
  if (nr > lim.maxRoots) throw d.fail(`${nr} roots exceed the limit ${lim.maxRoots}`);
  const roots: string[] = [];
  for (let k = 0; k < nr; k++) {
    let s: Uint8Array;
    try {
      s = d.r.strBytes();
    } catch (e) {
      throw d.fail('root name', e);
    }
    const name = s.length > lim.maxRootName ? null : decodeUTF8(s);
    if (name === null) throw d.fail('root name too long or not UTF-8');
    roots.push(name);
  }
  const no = d.array('ops', -1);
  if (no > lim.maxOps) throw d.fail(`${no} ops exceed the limit ${lim.maxOps}`);
  const last = new Array<number>(na).fill(0);
  for (let k = 0; k < no; k++) {
    const o = decodeOp(d, agents, roots, lim, scratch, text);
    const ai = Math.max(0, agents.indexOf(o.agent));
    if (o.seq < last[ai]!) throw d.fail(`op ${o.agent}:${o.seq} out of order for its agent`);
    last[ai] = o.seq + o.n;
    each(o);
  }
  try {
    d.r.done();
  } catch (e) {
    throw d.fail('after ops', e);
  }
  return { agents, roots };
}

/** Takes an insert's UTF-8 text and its root's name (scanUpdate). */
type TextSink = (utf8: Uint8Array, root: string) => number;

/**
 * The text an update inserts into the root named root: its inserts' text in
 * op order, concatenated (tombstones carry none). For readers that want what
 * was typed and keep no replica: indexers, notification feeds, the load
 * harness's light subscribers. It accepts and refuses exactly the updates
 * decodeUpdateOps does (a DecodeError for the first problem) but builds no
 * op objects, so it costs a fraction of decodeUpdateOps.
 */
export function insertedText(b: Uint8Array, root: string, limits?: Partial<Limits>): string {
  let out = '';
  scanUpdate(b, withDefaults(limits), emptyOp(), (p, r) => {
    const n = codePoints(p);
    if (n >= 0 && r === root) out += n === p.length ? asciiString(p) : utf8.decode(p);
    return n;
  }, () => {});
  return out;
}

/**
 * The count of code points of strict UTF-8 p (utf8CodePoints's rules), or
 * -1 if it is not: a count without an array.
 */
function codePoints(p: Uint8Array): number {
  let n = 0;
  let i = 0;
  const len = p.length;
  while (i < len && p[i]! < 0x80) i++;
  n = i;
  if (i === len) return n;
  const cps = utf8CodePoints(p.subarray(i));
  return cps === null ? -1 : n + cps.length;
}

/** ASCII bytes as a string. */
function asciiString(p: Uint8Array): string {
  if (p.length <= 64) {
    let s = '';
    for (let i = 0; i < p.length; i++) s += String.fromCharCode(p[i]!);
    return s;
  }
  return utf8.decode(p);
}

export function decodeUTF8(b: Uint8Array): string | null {
  if (b.length <= 32) {
    // a short ASCII name (most roots' names): no decoder call
    let s = '';
    let i = 0;
    for (; i < b.length && b[i]! < 0x80; i++) s += String.fromCharCode(b[i]!);
    if (i === b.length) return s;
  }
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

/**
 * The code points of strict UTF-8 b (as TextDecoder's fatal mode: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or null. Decoding
 * straight to code points avoids a string and an iterator per character.
 */
export function utf8CodePoints(b: Uint8Array): number[] | null {
  const out: number[] = [];
  const n = b.length;
  for (let i = 0; i < n; ) {
    const c = b[i]!;
    if (c < 0x80) {
      out.push(c);
      i++;
      continue;
    }
    let need: number, cp: number, min: number;
    if (c >= 0xc2 && c <= 0xdf) (need = 1), (cp = c & 0x1f), (min = 0x80);
    else if (c >= 0xe0 && c <= 0xef) (need = 2), (cp = c & 0x0f), (min = 0x800);
    else if (c >= 0xf0 && c <= 0xf4) (need = 3), (cp = c & 0x07), (min = 0x10000);
    else return null;
    if (i + need >= n) return null;
    for (let k = 1; k <= need; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    out.push(cp);
    i += need + 1;
  }
  return out;
}

// decodeID reads an id; into, if given, is where it goes (scratch decoding).
function decodeID(d: Dec, agents: AgentID[], into: ID | null): ID {
  const ai = d.r.u();
  const s = d.r.u();
  let agent: AgentID = 0n;
  let seq = 0;
  if (ai === 0) {
    if (s !== 0 && d.err === '') d.err = 'origin or target: none with a seq';
  } else if (ai > agents.length || s >= MAX_U32) {
    if (d.err === '') d.err = 'origin or target out of range';
  } else {
    agent = agents[ai - 1]!;
    seq = s;
  }
  if (into === null) return { agent, seq };
  into.agent = agent;
  into.seq = seq;
  return into;
}

/** A blank op to decode into. */
function emptyOp(): Op {
  return {
    del: false, root: 0, agent: 0n, seq: 0, n: 0, text: null, tomb: false,
    left: zeroID(), right: zeroID(), target: zeroID(), rev: false,
  };
}

// decodeOp reads one op: into a new Op, or into scratch (its ids too);
// with text, an insert's text goes to text as UTF-8 (scanUpdate).
function decodeOp(d: Dec, agents: AgentID[], roots: string[], lim: Limits, scratch: Op | null, text: TextSink | null): Op {
  let n: number;
  try {
    n = d.r.arrayLen();
  } catch (e) {
    throw d.fail('op', e);
  }
  const start = d.r.off;
  const kind = d.r.u();
  const want = kind === KIND_DELETE ? 8 : 9;
  if (n !== want || kind > KIND_DELETE) throw d.fail(`op of kind ${kind} has ${n} fields`, d.r.err ?? undefined);
  const root = d.r.u();
  const ai = d.r.u();
  const seq = d.r.u();
  if (root >= roots.length || ai >= agents.length || seq >= MAX_U32) {
    throw d.fail('op root, agent or seq out of range', d.r.err ?? undefined);
  }
  let o: Op;
  if (scratch === null) {
    o = {
      del: kind === KIND_DELETE, root, agent: agents[ai]!, seq, n: 0, text: null, tomb: false,
      left: zeroID(), right: zeroID(), target: zeroID(), rev: false,
    };
  } else {
    o = scratch;
    o.del = kind === KIND_DELETE;
    o.root = root;
    o.agent = agents[ai]!;
    o.seq = seq;
    o.n = 0;
    o.text = null;
    o.tomb = false;
    o.rev = false;
    o.left.agent = o.right.agent = o.target.agent = 0n;
    o.left.seq = o.right.seq = o.target.seq = 0;
  }
  const ids = scratch !== null;
  if (o.del) {
    const cnt = d.r.u();
    o.target = decodeID(d, agents, ids ? o.target : null);
    try {
      o.rev = d.r.bool();
    } catch (e) {
      throw d.fail('delete direction', e);
    }
    if (cnt > MAX_U32 || o.target.agent === 0n || o.target.seq + cnt > MAX_U32) {
      throw d.fail('delete length or target out of range', d.r.err ?? undefined);
    }
    o.n = cnt;
  } else {
    if (d.r.peekString()) {
      let s: Uint8Array;
      try {
        s = d.r.strBytes();
      } catch (e) {
        throw d.fail('insert text', e);
      }
      if (s.length > lim.maxInsertBytes) throw d.fail(`insert of ${s.length} bytes exceeds the limit ${lim.maxInsertBytes}`);
      if (text === null) {
        const cps = utf8CodePoints(s);
        if (cps === null) throw d.fail('insert text is not UTF-8');
        o.text = cps;
        o.n = cps.length;
      } else {
        const cnt = text(s, roots[root]!);
        if (cnt < 0) throw d.fail('insert text is not UTF-8');
        o.n = cnt;
      }
    } else {
      const cnt = d.r.u();
      if (cnt > MAX_U32) throw d.fail('tombstone length out of range', d.r.err ?? undefined);
      o.n = cnt;
      o.tomb = true;
    }
    o.left = decodeID(d, agents, ids ? o.left : null);
    o.right = decodeID(d, agents, ids ? o.right : null);
  }
  if (d.r.err) throw d.fail('op field', d.r.err);
  if (d.err !== '') throw new DecodeError(d.what, start, d.err);
  if (o.n === 0) throw d.fail('op of length 0');
  if (o.seq + o.n >= MAX_U32) throw d.fail('op seq range overflows');
  return o;
}

/** Builds an update from ops of a document's history. */
export class Encoder {
  private agents: AgentID[] = [];
  private aix = new Map<number, number>();
  private roots: string[] = [];
  private rix = new Map<number, number>();
  private body = new Writer();
  private nops = 0;

  constructor(private readonly d: Doc) {}

  private agent(a: number): number {
    let i = this.aix.get(a);
    if (i === undefined) {
      i = this.agents.length;
      this.agents.push(this.d.agentAt(a));
      this.aix.set(a, i);
    }
    return i;
  }

  private root(r: number): number {
    let i = this.rix.get(r);
    if (i === undefined) {
      i = this.roots.length;
      this.roots.push(this.d.rootAt(r).name);
      this.rix.set(r, i);
    }
    return i;
  }

  private id(x: Ref): void {
    if (x === NONE) {
      this.body.byte(0);
      this.body.byte(0);
      return;
    }
    this.body.uint(this.agent(refA(x)) + 1);
    this.body.uint(refS(x));
  }

  insert(root: number, id: Ref, n: number, text: { arena: number[]; from: number } | null, left: Ref, right: Ref): void {
    const b = this.body;
    this.nops++;
    b.byte(0x99);
    b.byte(KIND_INSERT);
    b.uint(this.root(root));
    b.uint(this.agent(refA(id)));
    b.uint(refS(id));
    if (text === null) {
      b.uint(n);
    } else {
      let size = 0;
      for (let k = text.from; k < text.from + n; k++) {
        const c = text.arena[k]!;
        size += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      }
      b.strHeader(size);
      writeRunes(b, text.arena, text.from, text.from + n);
    }
    this.id(left);
    this.id(right);
  }

  delete(root: number, id: Ref, n: number, target: Ref, rev: boolean): void {
    const b = this.body;
    this.nops++;
    b.byte(0x98);
    b.byte(KIND_DELETE);
    b.uint(this.root(root));
    b.uint(this.agent(refA(id)));
    b.uint(refS(id));
    b.uint(n);
    this.id(target);
    b.bool(rev);
  }

  bytes(): Uint8Array {
    const out = new Writer();
    out.byte(0x94);
    out.byte(UPDATE_VERSION);
    out.arrayLen(this.agents.length);
    for (const a of this.agents) out.uint(a);
    out.arrayLen(this.roots.length);
    for (const r of this.roots) out.str(r);
    out.arrayLen(this.nops);
    out.bytes(this.body.finish());
    return out.finish();
  }

  /** Encodes the ops (a, from..to-1), all of which the document has. */
  emitRange(a: number, from: number, to: number): void {
    const hist = this.d.agentState(a).hist;
    let lo = 0;
    let hi = hist.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (hist[m]!.seq + hist[m]!.n <= from) lo = m + 1;
      else hi = m;
    }
    for (let i = lo; i < hist.length && hist[i]!.seq < to; i++) {
      const h = hist[i]!;
      let s = Math.max(from, h.seq);
      const end = Math.min(to, h.seq + h.n);
      if (h.del) {
        const k = s - h.seq;
        const m = end - s;
        const t = h.rev ? h.target + (h.n - k - m) : h.target + k;
        this.delete(h.root, mkRef(a, s), m, t, h.rev);
        continue;
      }
      const x = this.d.rootAt(h.root);
      while (s < end) {
        const { l, i: ri, o } = x.t.find(mkRef(a, s));
        const r = l.runs[ri]!;
        const m = Math.min(end - s, r.n - o);
        const left = o > 0 ? mkRef(a, s - 1) : r.left;
        const text = !r.deleted && r.content !== NO_CONTENT ? { arena: x.arena, from: r.content + o } : null;
        this.insert(h.root, mkRef(a, s), m, text, left, r.right);
        s += m;
      }
    }
  }
}

/**
 * Encodes ops, in the given order, as one update (Go: crdt.EncodeOps). Agent
 * and root tables list agents and roots in order of first use; each agent's
 * ops must come in ascending, non-overlapping seq order.
 */
export function encodeOps(ops: PublicOp[]): Uint8Array {
  const agents: AgentID[] = [];
  const roots: string[] = [];
  const body = new Writer();
  const agent = (a: AgentID): number => {
    let i = agents.indexOf(a);
    if (i < 0) i = agents.push(a) - 1;
    return i;
  };
  const id = (x: ID | undefined): void => {
    if (!x || x.agent === 0n) {
      body.byte(0);
      body.byte(0);
      return;
    }
    body.uint(agent(x.agent) + 1);
    body.uint(x.seq);
  };
  ops.forEach((o, k) => {
    const bad = checkOp(o);
    if (bad) throw new Error(`crdt: encodeOps: op ${k} (${o.id.agent}:${o.id.seq}): ${bad}`);
    body.byte(o.kind === 'delete' ? 0x98 : 0x99);
    body.byte(o.kind === 'delete' ? KIND_DELETE : KIND_INSERT);
    let ri = roots.indexOf(o.root);
    if (ri < 0) ri = roots.push(o.root) - 1;
    body.uint(ri);
    body.uint(agent(o.id.agent));
    body.uint(o.id.seq);
    if (o.kind === 'delete') {
      body.uint(o.len);
      id(o.target);
      body.bool(!!o.reverse);
      return;
    }
    if (o.tombstone) body.uint(o.len);
    else body.str(o.text ?? '');
    id(o.left);
    id(o.right);
  });
  const out = new Writer();
  out.byte(0x94);
  out.byte(UPDATE_VERSION);
  out.arrayLen(agents.length);
  for (const a of agents) out.uint(a);
  out.arrayLen(roots.length);
  for (const r of roots) out.str(r);
  out.arrayLen(ops.length);
  out.bytes(body.finish());
  return out.finish();
}

function checkOp(o: PublicOp): string {
  if (o.id.agent === 0n || o.id.agent > MAX_U64 || o.len <= 0 || o.id.seq + o.len >= MAX_U32) {
    return 'zero agent, length out of range or seq overflow';
  }
  if (o.kind === 'insert') {
    if (o.tombstone) return o.text ? 'tombstone insert with text' : '';
    if ([...(o.text ?? '')].length !== o.len) return 'insert text is not Len code points';
    return '';
  }
  if (o.kind === 'delete') {
    if (!o.target || o.target.agent === 0n || o.target.seq + o.len > MAX_U32) return 'delete target missing or out of range';
    return '';
  }
  return `unknown kind ${String(o.kind)}`;
}

/** Decodes an update into its public ops without applying it. */
export function decodeUpdateOps(b: Uint8Array, limits?: Partial<Limits>): PublicOp[] {
  const u = decodeUpdate(b, withDefaults(limits));
  return u.ops.map((o) => publicOp(o, u.roots[o.root]!));
}

export function publicOp(o: Op, root: string): PublicOp {
  const id = { agent: o.agent, seq: o.seq };
  if (o.del) return { kind: 'delete', root, id, len: o.n, target: { ...o.target }, reverse: o.rev };
  return {
    kind: 'insert', root, id, len: o.n, tombstone: o.tomb,
    text: o.text ? fromCodePoints(o.text) : '',
    left: { ...o.left }, right: { ...o.right },
  };
}
