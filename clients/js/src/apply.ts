// Applying updates: checking an update whole, the pending buffer, and
// integrating ready ops (Go: apply.go).

import type { Doc } from './doc.js';
import { CrdtError } from './errors.js';
import { type AgentID, type ID, MAX_U32, NONE, type Ref, mkRef, refA, refS } from './ids.js';
import { NO_CONTENT, Run } from './tree.js';
import { type Op, type Update, decodeUpdate } from './update.js';
import { fromCodePoints } from './utf16.js';

const READY = 1;
const DUPLICATE = 2;
const WAITING = 3;
const INVALID = 4;
type Readiness = typeof READY | typeof DUPLICATE | typeof WAITING | typeof INVALID;

interface Interval {
  seq: number;
  n: number;
  root: number; // index in the update's root table
  del: boolean;
}

/** The ops of the update being checked that will be applied. */
class Overlay {
  next = new Map<AgentID, number>();
  ivs = new Map<AgentID, Interval[]>();

  find(a: AgentID, s: number): Interval | undefined {
    const ivs = this.ivs.get(a);
    if (!ivs) return undefined;
    let lo = 0;
    let hi = ivs.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (ivs[m]!.seq + ivs[m]!.n > s) hi = m;
      else lo = m + 1;
    }
    const iv = ivs[lo];
    return iv && iv.seq <= s ? iv : undefined;
  }

  add(a: AgentID, iv: Interval): void {
    this.next.set(a, iv.seq + iv.n);
    const l = this.ivs.get(a);
    if (l) l.push(iv);
    else this.ivs.set(a, [iv]);
  }
}

class Checker {
  constructor(
    readonly d: Doc,
    readonly ov: Overlay | null, // null for ops from the pending buffer
    public root: number, // document root index, or -1 if it does not exist yet
    public uroot: number, // update root index (overlay intervals)
  ) {}

  known(a: AgentID): number {
    const v = this.ov?.next.get(a);
    return v !== undefined ? v : this.d.nextOf(a);
  }

  /** Whether items x..x+n-1 are inserts of the root: 1 yes, 0 not yet known, -1 known but not items of it. */
  items(x: ID, n: number): number {
    if (x.agent === 0n) return 1;
    if (x.seq + n > this.known(x.agent)) return 0;
    const d = this.d;
    const applied = d.nextOf(x.agent);
    for (let s = x.seq; s < x.seq + n; ) {
      if (s < applied) {
        const ai = d.lookupAgent(x.agent)!;
        if (this.root < 0 || !d.roots[this.root]!.t.has(mkRef(ai, s))) return -1;
        s++;
        continue;
      }
      if (this.ov === null) return -1;
      const iv = this.ov.find(x.agent, s);
      if (!iv || iv.del || iv.root !== this.uroot) return -1;
      s = iv.seq + iv.n;
    }
    return 1;
  }

  /** Whether o can be applied now; may trim a duplicated prefix. */
  check(o: Op): Readiness {
    const n0 = this.known(o.agent);
    if (o.seq + o.n <= n0) return DUPLICATE;
    if (o.seq > n0) return WAITING;
    const k = n0 - o.seq;
    if (k > 0) trim(o, k);
    let st: number;
    if (o.del) {
      st = this.items(o.target, o.n);
    } else {
      st = Math.min(this.items(o.left, 1), this.items(o.right, 1));
      const sameOrigins = o.left.agent !== 0n && o.left.agent === o.right.agent && o.left.seq === o.right.seq;
      if (st === 1 && (sameOrigins || !this.adjacentOrigins(o))) st = -1;
    }
    return st === 1 ? READY : st === 0 ? WAITING : INVALID;
  }

  /**
   * Checks an insert's origins against what its author must have seen: an
   * item of its known causal past between the origins (or a right origin
   * before the left one) proves the op was not made by a correct replica.
   */
  private adjacentOrigins(o: Op): boolean {
    const d = this.d;
    if (this.root < 0) return true;
    const t = d.roots[this.root]!.t;
    const l = toRefIfKnown(d, o.left);
    const r = toRefIfKnown(d, o.right);
    if ((o.left.agent !== 0n && !t.has(l)) || (o.right.agent !== 0n && !t.has(r))) return true;
    const author = d.lookupAgent(o.agent);
    const inPast = (x: Ref): boolean =>
      (author !== undefined && refA(x) === author && refS(x) < o.seq) ||
      (l !== NONE && refA(x) === refA(l) && x <= l) ||
      (r !== NONE && refA(x) === refA(r) && x <= r);
    let lp = 0;
    let i = 0;
    let off = 0;
    if (l !== NONE) {
      const loc = t.find(l);
      lp = loc.l.pos;
      i = loc.i;
      off = loc.o + 1;
    }
    const ls = t.leaves;
    for (;;) {
      while (lp < ls.length && (i >= ls[lp]!.runs.length || off >= ls[lp]!.runs[i]!.n)) {
        if (i < ls[lp]!.runs.length) (i++, (off = 0));
        else (lp++, (i = 0), (off = 0));
      }
      if (lp >= ls.length) return r === NONE;
      const run = ls[lp]!.runs[i]!;
      const start = run.id + off;
      if (run.contains(r) && r >= start) return r === start || !inPast(start);
      if (inPast(start)) return false;
      i++;
      off = 0;
    }
  }
}

/** Drops the first k ops of o (already seen). */
function trim(o: Op, k: number): void {
  if (o.del) {
    if (!o.rev) o.target = { agent: o.target.agent, seq: o.target.seq + k };
  } else {
    if (!o.tomb && o.text) o.text = o.text.slice(k);
    o.left = { agent: o.agent, seq: o.seq + k - 1 };
  }
  o.seq += k;
  o.n -= k;
}

function toRefIfKnown(d: Doc, x: ID): Ref {
  if (x.agent === 0n || x.seq >= MAX_U32) return NONE;
  const ai = d.lookupAgent(x.agent);
  return ai === undefined ? NONE : mkRef(ai, x.seq);
}

function toRef(d: Doc, x: ID): Ref {
  if (x.agent === 0n) return NONE;
  return mkRef(d.lookupAgent(x.agent)!, x.seq);
}

export function applyUpdate(d: Doc, b: Uint8Array): void {
  const u = decodeUpdate(b, d.lim);
  d.ready();
  applyDecoded(d, u);
}

export function applyDecoded(d: Doc, u: Update): void {
  const ov = new Overlay();
  const rootIx: number[] = [];
  for (const name of u.roots) {
    const ri = d.rootIx.get(name);
    if (ri === undefined && d.roots.length >= d.lim.maxRoots) {
      throw new CrdtError('too-large', `document limit exceeded: more than ${d.lim.maxRoots} roots`);
    }
    rootIx.push(ri ?? -1);
  }
  const status: Readiness[] = [];
  const fresh = new Set<AgentID>();
  let waiting = 0;
  let newItems = 0;
  const c = new Checker(d, ov, -1, -1);
  u.ops.forEach((o, k) => {
    c.root = rootIx[o.root]!;
    c.uroot = o.root;
    const st = c.check(o);
    status.push(st);
    if (st === INVALID) {
      throw new CrdtError('invalid-op', `invalid op: op ${k} (${o.agent}:${o.seq}) references ids that are not text items of ${JSON.stringify(u.roots[o.root])}`);
    } else if (st === WAITING) {
      waiting++;
    } else if (st === READY) {
      ov.add(o.agent, { seq: o.seq, n: o.n, root: o.root, del: o.del });
      if (!o.del) newItems += o.n;
    }
    if (d.lookupAgent(o.agent) === undefined) fresh.add(o.agent);
  });
  if (d.pending.length + waiting > d.lim.maxPending) {
    throw new CrdtError('pending-full', `pending buffer full: ${d.pending.length} waiting, ${waiting} more`);
  }
  if (newItems > d.lim.maxItems - d.items || fresh.size > d.lim.maxAgents - d.agents.length) {
    throw new CrdtError('too-large', `document limit exceeded: ${d.items + newItems} items, ${d.agents.length + fresh.size} agents`);
  }
  let applied = false;
  u.ops.forEach((o, k) => {
    if (status[k] === READY) {
      let ri = rootIx[o.root]!;
      if (ri < 0) {
        ri = d.text(u.roots[o.root]!).idx;
        rootIx[o.root] = ri;
      }
      applyOp(d, o, ri);
      applied = true;
    } else if (status[k] === WAITING) {
      d.pending.push({ op: o, rootName: u.roots[o.root]! });
    }
  });
  if (applied && d.pending.length > 0) drainPending(d);
}

/** Applies waiting ops whose dependencies have arrived. */
function drainPending(d: Doc): void {
  for (let progress = true; progress; ) {
    progress = false;
    const keep = [];
    for (const p of d.pending) {
      const c = new Checker(d, null, d.rootIx.get(p.rootName) ?? -1, -1);
      const st = c.check(p.op);
      if (st === READY) {
        if (d.items + p.op.n > d.lim.maxItems && !p.op.del) continue; // dropped: over the document limit
        applyOp(d, p.op, d.text(p.rootName).idx);
        progress = true;
      } else if (st === WAITING) {
        keep.push(p);
      }
      // duplicates and invalid ops are dropped
    }
    d.pending = keep;
  }
}

function applyOp(d: Doc, o: Op, root: number): void {
  const x = d.roots[root]!;
  const ai = d.agentIndex(o.agent);
  const id = mkRef(ai, o.seq);
  if (o.del) {
    const t = toRef(d, o.target);
    x.deleteRange(t, o.n);
    d.recordDelete(x.idx, id, o.n, t, o.rev);
    return;
  }
  const nr = new Run(id, o.n, NO_CONTENT, toRef(d, o.left), toRef(d, o.right), o.tomb);
  if (!o.tomb && o.text) {
    nr.content = x.arena.length;
    for (const cp of o.text) x.arena.push(cp);
  }
  x.integrate(nr, o.agent);
  d.recordInsert(x.idx, id, o.n);
  if (d.observer && !o.tomb && o.text) {
    d.observer({ root: x.name, pos: x.visIndex(id), del: 0, ins: fromCodePoints(o.text) });
  }
}
