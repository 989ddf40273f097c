// The sequence of one Text: runs in document order, grouped in leaves of at
// most LEAF_CAP runs (Go: tree.go). Go keeps the leaves under a B+tree; this
// port keeps them in an array with one level of cached sums over blocks of
// BLOCK leaves, so position lookups cost O(leaves/BLOCK + BLOCK) instead of
// O(log n) (a plain scan of every leaf made a cold join of a 100k-character
// random-position history take seconds). The leaves themselves behave
// exactly as Go's — same capacity, same split points, runs merge only inside
// a leaf — so run boundaries, and therefore every encoding, are identical.

import { invariant } from './errors.js';
import { NONE, type Ref, refA, refS } from './ids.js';

export const LEAF_CAP = 32;
const BLOCK_SHIFT = 6;
const BLOCK = 1 << BLOCK_SHIFT; // leaves per block of cached sums
export const NO_CONTENT = -1; // run.content for tombstones whose text was dropped

export class Run {
  constructor(
    public id: Ref, // first item
    public n: number, // items in the run
    public content: number, // offset of the first code point in the arena, or NO_CONTENT
    public left: Ref, // left origin of the first item (later items: their predecessor)
    public right: Ref, // right origin of every item
    public deleted: boolean,
  ) {}

  clone(): Run {
    return new Run(this.id, this.n, this.content, this.left, this.right, this.deleted);
  }

  vis(): number {
    return this.deleted ? 0 : this.n;
  }

  contains(x: Ref): boolean {
    return x >= this.id && x - this.id < this.n; // same agent: refs of one agent are contiguous
  }

  last(): Ref {
    return this.id + this.n - 1;
  }

  /** Cuts the run before offset o (0 < o < n) and returns the right part. */
  splitAt(o: number): Run {
    const q = new Run(this.id + o, this.n - o, this.content === NO_CONTENT ? NO_CONTENT : this.content + o, this.id + o - 1, this.right, this.deleted);
    this.n = o;
    return q;
  }
}

export class Leaf {
  runs: Run[] = [];
  vis = 0;
  tot = 0;
  pos = 0; // index in tree.leaves
  constructor(readonly id: number) {}
}

/** A location: leaf, run index, offset in the run. */
export interface Loc {
  l: Leaf;
  i: number;
  o: number;
}

export function mergeableContent(r: Run, off: number): boolean {
  if (r.content === NO_CONTENT || off === NO_CONTENT) return r.content === off;
  return r.content + r.n === off;
}

/** Whether b continues a so that the two can be one run. */
export function canMerge(a: Run, b: Run): boolean {
  return refA(b.id) === refA(a.id) && b.id === a.id + a.n && b.left === a.last() &&
    b.right === a.right && b.deleted === a.deleted && mergeableContent(a, b.content);
}

export class Tree {
  leaves: Leaf[] = []; // document order
  byId: (Leaf | null)[] = [null]; // leaf id -> leaf; 0 unused
  index: number[][] = []; // agent -> seq -> leaf id (0: not in this text)
  vis = 0;
  tot = 0;
  blockVis: number[] = [0]; // per block of BLOCK leaves (by position): sum of their vis
  blockTot: number[] = [0]; // and of their tot

  constructor() {
    this.leaves.push(this.newLeaf());
  }

  /** Recomputes the block sums from the block holding leaf position j on. */
  private rebuildBlocks(j: number): void {
    const ls = this.leaves;
    const nb = ((ls.length - 1) >> BLOCK_SHIFT) + 1;
    let b = j >> BLOCK_SHIFT;
    this.blockVis.length = nb;
    this.blockTot.length = nb;
    for (; b < nb; b++) {
      let v = 0;
      let t = 0;
      const end = Math.min(ls.length, (b + 1) * BLOCK);
      for (let k = b * BLOCK; k < end; k++) {
        v += ls[k]!.vis;
        t += ls[k]!.tot;
      }
      this.blockVis[b] = v;
      this.blockTot[b] = t;
    }
  }

  get first(): Leaf {
    return this.leaves[0]!;
  }

  newLeaf(): Leaf {
    const l = new Leaf(this.byId.length);
    this.byId.push(l);
    return l;
  }

  next(l: Leaf): Leaf | null {
    return this.leaves[l.pos + 1] ?? null;
  }

  bump(l: Leaf, dv: number, dt: number): void {
    l.vis += dv;
    l.tot += dt;
    this.vis += dv;
    this.tot += dt;
    const b = l.pos >> BLOCK_SHIFT;
    this.blockVis[b]! += dv;
    this.blockTot[b]! += dt;
  }

  setIndex(x: Ref, n: number, leafId: number): void {
    const a = refA(x);
    while (this.index.length <= a) this.index.push([]);
    const ix = this.index[a]!;
    const s = refS(x);
    while (ix.length < s) ix.push(0);
    for (let k = s; k < s + n; k++) ix[k] = leafId; // appends in order: the array stays packed
  }

  has(x: Ref): boolean {
    if (x === NONE) return false;
    const ix = this.index[refA(x)];
    return ix !== undefined && (ix[refS(x)] ?? 0) !== 0;
  }

  hasAll(x: Ref, n: number): boolean {
    const ix = this.index[refA(x)];
    const s = refS(x);
    if (ix === undefined || s > ix.length || n > ix.length - s) return false;
    for (let k = s; k < s + n; k++) if (ix[k] === 0) return false;
    return true;
  }

  /** The location of item x, which must be present. */
  find(x: Ref): Loc {
    const l = this.byId[this.index[refA(x)]![refS(x)]!]!;
    const runs = l.runs;
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
      if (r.contains(x)) return { l, i, o: x - r.id };
    }
    return invariant('index points at a leaf without the item');
  }

  /** The location of the k-th visible item (0 <= k < vis). */
  findVis(k: number): Loc {
    const ls = this.leaves;
    const bv = this.blockVis;
    let b = 0;
    for (; b < bv.length - 1; b++) {
      if (k < bv[b]!) break;
      k -= bv[b]!;
    }
    let j = b * BLOCK;
    const end = Math.min(ls.length, j + BLOCK);
    for (; j < end - 1; j++) {
      const v = ls[j]!.vis;
      if (k < v) break;
      k -= v;
    }
    const l = ls[j]!;
    for (let i = 0; i < l.runs.length; i++) {
      const r = l.runs[i]!;
      if (r.deleted) continue;
      if (k < r.n) return { l, i, o: k };
      k -= r.n;
    }
    return invariant('visible count out of step with runs');
  }

  /** The location of the item at total index k (0 <= k < tot). */
  findTot(k: number): Loc {
    const ls = this.leaves;
    const bt = this.blockTot;
    let b = 0;
    for (; b < bt.length - 1; b++) {
      if (k < bt[b]!) break;
      k -= bt[b]!;
    }
    let j = b * BLOCK;
    const end = Math.min(ls.length, j + BLOCK);
    for (; j < end - 1; j++) {
      const v = ls[j]!.tot;
      if (k < v) break;
      k -= v;
    }
    const l = ls[j]!;
    for (let i = 0; i < l.runs.length; i++) {
      const n = l.runs[i]!.n;
      if (k < n) return { l, i, o: k };
      k -= n;
    }
    return invariant('total count out of step with runs');
  }

  /** The total index and visible index of the first item of leaf l. */
  start(l: Leaf): { tot: number; vis: number } {
    let tot = 0;
    let vis = 0;
    const b = l.pos >> BLOCK_SHIFT;
    for (let k = 0; k < b; k++) {
      tot += this.blockTot[k]!;
      vis += this.blockVis[k]!;
    }
    for (let j = b * BLOCK; j < l.pos; j++) {
      tot += this.leaves[j]!.tot;
      vis += this.leaves[j]!.vis;
    }
    return { tot, vis };
  }

  posTot(l: Leaf, i: number, o: number): number {
    let p = this.start(l).tot;
    for (let j = 0; j < i; j++) p += l.runs[j]!.n;
    return p + o;
  }

  /** The total index of item x (present), or -1 for none. */
  posOf(x: Ref): number {
    if (x === NONE) return -1;
    const { l, i, o } = this.find(x);
    return this.posTot(l, i, o);
  }

  /** The item after run i offset o of leaf l, or NONE. */
  nextItem(l: Leaf, i: number, o: number): Ref {
    const r = l.runs[i]!;
    if (o + 1 < r.n) return r.id + o + 1;
    if (i + 1 < l.runs.length) return l.runs[i + 1]!.id;
    for (let j = l.pos + 1; j < this.leaves.length; j++) {
      const x = this.leaves[j]!;
      if (x.runs.length > 0) return x.runs[0]!.id;
    }
    return NONE;
  }

  firstItem(): Ref {
    for (const l of this.leaves) if (l.runs.length > 0) return l.runs[0]!.id;
    return NONE;
  }

  /** Puts r before run i of leaf l; returns where it landed. */
  insertRun(l: Leaf, i: number, r: Run): { l: Leaf; i: number } {
    if (l.runs.length === LEAF_CAP) {
      if (i === LEAF_CAP) {
        // appending past a full leaf (typing forward): start a new leaf
        const l2 = this.newLeaf();
        this.insertAfter(l, l2);
        l = l2;
        i = 0;
      } else {
        const l2 = this.splitLeaf(l);
        if (i > l.runs.length) {
          i -= l.runs.length;
          l = l2;
        }
      }
    }
    l.runs.splice(i, 0, r);
    this.setIndex(r.id, r.n, l.id);
    this.bump(l, r.vis(), r.n);
    return { l, i };
  }

  /**
   * Cuts run i of leaf l before offset o (0 < o < n); returns where the left
   * and the right part ended up.
   */
  splitRun(l: Leaf, i: number, o: number): { ll: Leaf; li: number; rl: Leaf; ri: number } {
    const r = l.runs[i]!;
    const q = r.splitAt(o);
    this.bump(l, -q.vis(), -q.n);
    const { l: rl, i: ri } = this.insertRun(l, i + 1, q);
    if (ri > 0) return { ll: rl, li: ri - 1, rl, ri };
    return { ll: l, li: l.runs.length - 1, rl, ri };
  }

  /** Joins run i of leaf l with neighbours in the same leaf that continue it. */
  mergeAround(l: Leaf, i: number): number {
    const rs = l.runs;
    if (i + 1 < rs.length && canMerge(rs[i]!, rs[i + 1]!)) {
      rs[i]!.n += rs[i + 1]!.n;
      rs.splice(i + 1, 1);
    }
    if (i > 0 && canMerge(rs[i - 1]!, rs[i]!)) {
      rs[i - 1]!.n += rs[i]!.n;
      rs.splice(i, 1);
      i--;
    }
    return i;
  }

  splitLeaf(l: Leaf): Leaf {
    const l2 = this.newLeaf();
    const h = l.runs.length >> 1;
    l2.runs = l.runs.splice(h);
    for (const r of l2.runs) {
      this.setIndex(r.id, r.n, l2.id);
      l2.vis += r.vis();
      l2.tot += r.n;
    }
    l.vis -= l2.vis;
    l.tot -= l2.tot;
    this.insertAfter(l, l2);
    return l2;
  }

  insertAfter(old: Leaf, nw: Leaf): void {
    this.leaves.splice(old.pos + 1, 0, nw);
    for (let j = old.pos + 1; j < this.leaves.length; j++) this.leaves[j]!.pos = j;
    this.rebuildBlocks(old.pos);
  }

  /** Appends a leaf at the end (snapshot loading). */
  appendLeaf(): Leaf {
    const l = this.newLeaf();
    l.pos = this.leaves.length;
    this.leaves.push(l);
    if (l.pos >> BLOCK_SHIFT >= this.blockVis.length) {
      this.blockVis.push(0);
      this.blockTot.push(0);
    }
    return l;
  }
}

