// Text: a named root of a Doc, a sequence of code points (Go: text.go and
// relpos.go).

import { CrdtError } from './errors.js';
import { type AgentID, type ID, MAX_U32, NONE, type Ref, mkRef, refA, refS } from './ids.js';
import { Run, type Leaf, Tree, mergeableContent } from './tree.js';
import { fromCodePoints, toCodePoints } from './utf16.js';

/** What a Text needs from its Doc. */
export interface TextOwner {
  reserve(n: number): Ref;
  recordInsert(root: number, id: Ref, n: number): void;
  recordDelete(root: number, id: Ref, n: number, target: Ref, rev: boolean): void;
  agentAt(ix: number): AgentID;
  lookupAgent(a: AgentID): number | undefined;
  /** The observer of visible changes (Doc.observe), if any. */
  readonly observer: ((c: Change) => void) | null;
  /** Builds the structure a lazily loaded snapshot deferred; throws if it fails its check. */
  ready(): void;
}

/**
 * One visible change to a Text, as a splice in code points (Go: crdt.Change):
 * at pos (in the text as it was just before this change) del code points were
 * removed, then ins was inserted. A change has either del or ins, not both.
 */
export interface Change {
  root: string;
  pos: number;
  del: number;
  ins: string;
}

/** Which neighbour a RelPos sticks to. */
export const AssocAfter = 0;
export const AssocBefore = 1;
export type Assoc = typeof AssocAfter | typeof AssocBefore;

/**
 * A position that survives concurrent edits. With AssocAfter it is just
 * before item (no item: the end of the text); with AssocBefore just after it
 * (no item: the start).
 */
export interface RelPos {
  item: ID;
  assoc: Assoc;
}

export class Text {
  t = new Tree();
  arena: number[] = []; // inserted code points; runs point into it
  private cache: string | null = null;
  /**
   * A root of a lazily loaded snapshot whose structure is not built (see
   * snapshot.ts, lazy loading): its visible length, else -1. Its text is
   * the cached string.
   */
  lazyVis = -1;
  /** Items (tombstones included) of a lazy root. */
  lazyTot = 0;

  constructor(
    private readonly doc: TextOwner,
    readonly name: string,
    readonly idx: number,
  ) {}

  /** The number of visible code points. */
  get length(): number {
    return this.lazyVis >= 0 ? this.lazyVis : this.t.vis;
  }

  /** Whether the text holds any item, tombstones included. */
  hasItems(): boolean {
    return this.lazyVis >= 0 ? this.lazyTot > 0 : this.t.tot > 0;
  }

  /** The visible text (cached until the next change). */
  toString(): string {
    if (this.cache !== null) return this.cache;
    const parts: string[] = [];
    for (const l of this.t.leaves) {
      for (const r of l.runs) {
        if (r.deleted) continue;
        parts.push(fromCodePoints(this.arena, r.content, r.content + r.n));
      }
    }
    this.cache = parts.join('');
    return this.cache;
  }

  /** Marks the cached string stale. */
  touch(): void {
    this.cache = null;
  }

  /** Sets the cached string (snapshot loading). */
  setCache(s: string): void {
    this.cache = s;
  }

  /** Inserts s before the code point at pos (0 <= pos <= length). */
  insert(pos: number, s: string): void {
    if (!Number.isInteger(pos) || pos < 0 || pos > this.length) {
      throw new CrdtError('position', `insert at ${pos} in text of length ${this.length}`);
    }
    const cps = toCodePoints(s);
    const n = cps.length;
    if (n === 0) return;
    this.doc.ready();
    const id = this.doc.reserve(n);
    const off = this.arena.length;
    for (const c of cps) this.arena.push(c);
    this.insertLocal(pos, id, n, off);
    this.doc.recordInsert(this.idx, id, n);
    this.doc.observer?.({ root: this.name, pos, del: 0, ins: s });
  }

  private insertLocal(pos: number, id: Ref, n: number, off: number): void {
    this.touch();
    const t = this.t;
    const nr = new Run(id, n, off, NONE, NONE, false);
    if (pos === 0) {
      nr.right = t.firstItem();
      t.insertRun(t.first, 0, nr);
      return;
    }
    let { l, i, o } = t.findVis(pos - 1);
    const r = l.runs[i]!;
    nr.left = r.id + o;
    nr.right = t.nextItem(l, i, o);
    if (o === r.n - 1 && refA(r.id) === refA(id) && r.id + r.n === id && !r.deleted &&
      r.content + r.n === off && r.right === nr.right) {
      r.n += n;
      t.setIndex(id, n, l.id);
      t.bump(l, n, n);
      return;
    }
    if (o + 1 < r.n) {
      const sp = t.splitRun(l, i, o + 1);
      t.insertRun(sp.rl, sp.ri, nr);
      return;
    }
    t.insertRun(l, i + 1, nr);
  }

  /** Removes n code points starting at pos. */
  delete(pos: number, n: number): void {
    if (!inRange(pos, n, this.length)) {
      throw new CrdtError('position', `delete ${n} at ${pos} in text of length ${this.length}`);
    }
    if (n === 0) return;
    this.doc.ready();
    let id = this.doc.reserve(n);
    const t = this.t;
    while (n > 0) {
      const { l, i, o } = t.findVis(pos);
      const r = l.runs[i]!;
      const start = r.id + o;
      const k = Math.min(n, r.n - o);
      this.deleteRange(start, k);
      this.doc.recordDelete(this.idx, id, k, start, false);
      id += k;
      n -= k;
    }
  }

  /** Marks the items start..start+k-1 (all present) as deleted. */
  deleteRange(start: Ref, k: number): void {
    this.touch();
    const t = this.t;
    while (k > 0) {
      let { l, i, o } = t.find(start);
      let r = l.runs[i]!;
      const m = Math.min(k, r.n - o);
      if (!r.deleted) {
        const obs = this.doc.observer;
        if (obs) obs({ root: this.name, pos: this.visIndex(start), del: m, ins: '' });
        if (o > 0) {
          const sp = t.splitRun(l, i, o);
          l = sp.rl;
          i = sp.ri;
          r = l.runs[i]!;
        }
        if (m < r.n) {
          const sp = t.splitRun(l, i, m);
          l = sp.ll;
          i = sp.li;
          r = l.runs[i]!;
        }
        r.deleted = true;
        t.bump(l, -m, 0);
        t.mergeAround(l, i);
      }
      start += m;
      k -= m;
    }
  }

  /** Places a remote insert run (FugueMax; see the Go package doc). */
  integrate(nr: Run, agent: AgentID): void {
    this.touch();
    const t = this.t;
    let l: Leaf | null = null;
    let i = 0;
    let o = 0;
    let next: Ref;
    if (nr.left === NONE) {
      next = t.firstItem();
    } else {
      ({ l, i, o } = t.find(nr.left));
      next = t.nextItem(l, i, o);
    }
    if (next === nr.right) {
      if (nr.left === NONE || l === null) {
        t.insertRun(t.first, 0, nr);
        return;
      }
      const r = l.runs[i]!;
      if (o === r.n - 1 && refA(r.id) === refA(nr.id) && r.id + r.n === nr.id && r.right === nr.right &&
        r.deleted === nr.deleted && mergeableContent(r, nr.content)) {
        r.n += nr.n;
        t.setIndex(nr.id, nr.n, l.id);
        t.bump(l, nr.vis(), nr.n);
        return;
      }
      this.insertAtTot(t.posTot(l, i, o) + 1, nr);
      return;
    }
    this.insertAtTot(this.scan(nr, agent, l, i, o), nr);
  }

  /** The total index where nr goes when concurrent items lie between its origins. */
  private scan(nr: Run, agent: AgentID, l0: Leaf | null, i: number, o: number): number {
    const t = this.t;
    let leafPos: number;
    let leftPos = -1;
    if (nr.left !== NONE && l0 !== null) {
      leftPos = t.posTot(l0, i, o);
      if (o + 1 < l0.runs[i]!.n) o++;
      else (i++, (o = 0));
      leafPos = l0.pos;
    } else {
      leafPos = 0;
      i = 0;
      o = 0;
    }
    const total = t.tot;
    const rightPos = nr.right === NONE ? total : t.posOf(nr.right);
    let dest = leftPos + 1;
    let pos = leftPos + 1;
    let scanning = false;
    const ls = t.leaves;
    for (;;) {
      while (leafPos < ls.length && i >= ls[leafPos]!.runs.length) (leafPos++, (i = 0), (o = 0));
      if (!scanning) dest = pos;
      if (leafPos >= ls.length || pos === rightPos) break;
      const r = ls[leafPos]!.runs[i]!;
      const seg = r.n - o;
      const oleft = o === 0 ? t.posOf(r.left) : pos - 1;
      if (oleft < leftPos) break;
      if (oleft === leftPos) {
        const oright = r.right === NONE ? total : t.posOf(r.right);
        if (oright < rightPos) {
          scanning = true;
        } else if (oright === rightPos) {
          const other = r.id + o;
          const oa = this.doc.agentAt(refA(other));
          if (agent < oa || (agent === oa && refS(nr.id) < refS(other))) return dest;
          scanning = false;
        } else {
          scanning = false;
        }
      }
      if (rightPos > pos && rightPos < pos + seg) {
        if (!scanning) dest = rightPos;
        break;
      }
      pos += seg;
      i++;
      o = 0;
    }
    return dest;
  }

  /** Inserts nr so that its first item gets total index p. */
  private insertAtTot(p: number, nr: Run): void {
    const t = this.t;
    if (p === 0) {
      t.insertRun(t.first, 0, nr);
      return;
    }
    const { l, i, o } = t.findTot(p - 1);
    if (o + 1 < l.runs[i]!.n) {
      const sp = t.splitRun(l, i, o + 1);
      t.insertRun(sp.rl, sp.ri, nr);
      return;
    }
    t.insertRun(l, i + 1, nr);
  }

  /** The visible index of item it (present), or where it would be if deleted. */
  visIndex(it: Ref): number {
    const { l, i, o } = this.t.find(it);
    let pos = this.t.start(l).vis;
    for (let j = 0; j < i; j++) pos += l.runs[j]!.vis();
    if (!l.runs[i]!.deleted) pos += o;
    return pos;
  }

  /** The relative position of index (0 <= index <= length). */
  relPos(index: number, assoc: Assoc = AssocAfter): RelPos {
    if (!Number.isInteger(index) || index < 0 || index > this.length) {
      throw new CrdtError('position', `relative position of ${index} in text of length ${this.length}`);
    }
    this.doc.ready();
    const k = assoc === AssocBefore ? index - 1 : index;
    if (k < 0 || k >= this.length) return { item: { agent: 0n, seq: 0 }, assoc };
    const { l, i, o } = this.t.findVis(k);
    const r = l.runs[i]!;
    return { item: { agent: this.doc.agentAt(refA(r.id)), seq: refS(r.id) + o }, assoc };
  }

  /**
   * The current index of p, or undefined when p names an item this replica
   * has not seen. A position whose item was deleted resolves to where it was.
   */
  resolve(p: RelPos): number | undefined {
    if (p.item.agent === 0n) return p.assoc === AssocBefore ? 0 : this.length;
    const ai = this.doc.lookupAgent(p.item.agent);
    if (ai === undefined || p.item.seq >= MAX_U32) return undefined;
    const it = mkRef(ai, p.item.seq);
    try {
      this.doc.ready();
    } catch {
      return undefined;
    }
    if (!this.t.has(it)) return undefined;
    const { l, i, o } = this.t.find(it);
    let pos = this.t.start(l).vis;
    for (let j = 0; j < i; j++) pos += l.runs[j]!.vis();
    const r = l.runs[i]!;
    if (!r.deleted) {
      pos += o;
      if (p.assoc === AssocBefore) pos++;
    }
    return pos;
  }
}

/**
 * Whether [pos, pos+n) lies within a sequence of length size: both integers,
 * not negative, checked as n <= size - pos (never pos + n, which loses
 * precision past 2^53 in a JavaScript number). Go: crdt.CheckRange.
 */
export function inRange(pos: number, n: number, size: number): boolean {
  return Number.isSafeInteger(pos) && Number.isSafeInteger(n) && pos >= 0 && n >= 0 && pos <= size && n <= size - pos;
}
