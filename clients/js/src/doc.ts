// Doc: a set of named Text roots, the history of every op it has seen, and
// a pending buffer (Go: document.go). Not safe for concurrent use; in a
// browser everything runs on one thread anyway.

import { applyUpdate } from './apply.js';
import { CrdtError } from './errors.js';
import { type AgentID, MAX_U32, type Ref, mkRef, newAgentID, refA, refS, toAgent } from './ids.js';
import { type Limits, withDefaults } from './limits.js';
import { type Compression, type LazySnap, buildLazy, encodeSnapshot, loadSnapshot, packSnapshot } from './snapshot.js';
import { type Change, Text } from './text.js';
import { type Op, Encoder } from './update.js';

export interface DocOptions {
  /** This replica's identity; absent or 0 picks a random one. */
  agent?: bigint | number | string;
  /** Bounds on decoded input; absent fields take defaults. */
  limits?: Partial<Limits>;
}

/** A state vector: agent -> next seq (the ops a replica has seen). */
export type StateVector = Map<AgentID, number>;

/** A run of ops of one agent with consecutive seqs. */
export interface HistSpan {
  seq: number;
  n: number;
  root: number;
  del: boolean;
  rev: boolean; // delete: targets go downwards from target+n-1 to target
  target: Ref; // delete: the lowest target id
}

export interface AgentState {
  id: AgentID;
  next: number; // state vector entry
  hist: HistSpan[];
}

export interface OrderSpan {
  a: number;
  s: number;
  n: number;
}

export interface PendingOp {
  op: Op;
  rootName: string;
}

export class Doc {
  private agentID: AgentID;
  readonly lim: Limits;
  self = 0;
  agents: AgentState[] = [];
  agentIx = new Map<AgentID, number>();
  roots: Text[] = [];
  rootIx = new Map<string, number>();
  order: OrderSpan[] = []; // ops in the order this replica applied them
  items = 0; // total items in all texts
  localFrom = 0; // own ops from this seq on were not yet taken by takeUpdate
  pending: PendingOp[] = [];
  observer: ((c: Change) => void) | null = null;
  /**
   * A loaded snapshot whose structure is not built yet: non-null until it
   * is built, and for good if the build failed (broken says why).
   */
  lazy: LazySnap | null = null;
  broken: Error | null = null;

  /**
   * A new empty document. (The second argument is internal: snapshot
   * loading builds the tables first and sets the agent last.)
   */
  constructor(o: DocOptions = {}, loading = false) {
    let a = o.agent === undefined ? 0n : toAgent(o.agent);
    if (a === 0n) a = newAgentID();
    this.agentID = a;
    this.lim = withDefaults(o.limits);
    if (!loading) this.self = this.agentIndex(a);
  }

  /** This replica's agent id. */
  get agent(): AgentID {
    return this.agentID;
  }

  /**
   * Loads a snapshot into a new document with its own agent (Go:
   * LoadSnapshot). The texts are read at once; the structure is built and
   * checked on its first use (an edit, an update, a diff, a relative
   * position), or now with `eager` (see verify).
   */
  static loadSnapshot(b: Uint8Array, o: DocOptions & { eager?: boolean } = {}): Doc {
    const d = loadSnapshot(b, new Doc(o, true));
    if (o.eager) d.ready();
    return d;
  }

  /**
   * Builds the structure a lazily loaded snapshot deferred, if not built
   * yet, and checks it whole (Go: Doc.Verify). Throws the DecodeError an
   * eager load would have thrown; the document then refuses every edit,
   * update and diff with it, for good, and its texts stay the loaded ones.
   */
  verify(): void {
    this.ready();
  }

  ready(): void {
    if (this.lazy === null) return;
    if (this.broken === null) {
      try {
        buildLazy(this, this.lazy);
        this.lazy = null;
        return;
      } catch (e) {
        this.broken = e as Error;
      }
    }
    throw this.broken;
  }

  /** Ends loading: registers the document's own agent. */
  finishLoad(): void {
    this.self = this.agentIndex(this.agentID);
    this.localFrom = this.agents[this.self]!.next;
  }

  /** The root text with the given name, created if needed. */
  text(name: string): Text {
    const i = this.rootIx.get(name);
    if (i !== undefined) return this.roots[i]!;
    const x = new Text(this, name, this.roots.length);
    this.roots.push(x);
    this.rootIx.set(name, x.idx);
    return x;
  }

  /** Names of the roots in creation order. */
  rootNames(): string[] {
    return this.roots.map((x) => x.name);
  }

  stateVector(): StateVector {
    const sv: StateVector = new Map();
    for (const a of this.agents) if (a.next > 0) sv.set(a.id, a.next);
    return sv;
  }

  /** The number of ops the document has seen: a monotonic version. */
  get version(): number {
    let v = 0;
    for (const a of this.agents) v += a.next;
    return v;
  }

  /** The number of ops waiting for their causal dependencies. */
  get pendingCount(): number {
    return this.pending.length;
  }

  agentAt(ix: number): AgentID {
    return this.agents[ix]!.id;
  }

  agentState(ix: number): AgentState {
    return this.agents[ix]!;
  }

  rootAt(ix: number): Text {
    return this.roots[ix]!;
  }

  lookupAgent(a: AgentID): number | undefined {
    return this.agentIx.get(a);
  }

  agentIndex(a: AgentID): number {
    let i = this.agentIx.get(a);
    if (i === undefined) {
      i = this.agents.length;
      this.agents.push({ id: a, next: 0, hist: [] });
      this.agentIx.set(a, i);
    }
    return i;
  }

  nextOf(a: AgentID): number {
    const i = this.agentIx.get(a);
    return i === undefined ? 0 : this.agents[i]!.next;
  }

  /** Allocates n seqs of the local agent. */
  reserve(n: number): Ref {
    const a = this.agents[this.self]!;
    if (a.next + n >= MAX_U32 || this.items + n > this.lim.maxItems) {
      throw new CrdtError('too-large', `document limit exceeded: ${n} more ops`);
    }
    return mkRef(this.self, a.next);
  }

  recordInsert(root: number, id: Ref, n: number): void {
    this.items += n;
    this.record({ seq: refS(id), n, root, del: false, rev: false, target: 0 }, refA(id));
  }

  recordDelete(root: number, id: Ref, n: number, target: Ref, rev: boolean): void {
    this.record({ seq: refS(id), n, root, del: true, rev, target }, refA(id));
  }

  private record(h: HistSpan, a: number): void {
    const st = this.agents[a]!;
    st.next = h.seq + h.n;
    const k = st.hist.length;
    if (!(k > 0 && mergeSpan(st.hist[k - 1]!, h))) st.hist.push(h);
    const last = this.order[this.order.length - 1];
    if (last && last.a === a && last.s + last.n === h.seq) last.n += h.n;
    else this.order.push({ a, s: h.seq, n: h.n });
  }

  /** The local ops made since the previous call as one update, or null. */
  takeUpdate(): Uint8Array | null {
    const a = this.agents[this.self]!;
    if (a.next === this.localFrom) return null;
    const e = new Encoder(this);
    e.emitRange(this.self, this.localFrom, a.next);
    this.localFrom = a.next;
    return e.bytes();
  }

  /** Every op this document has that a replica with state vector sv lacks, in causal order. */
  encodeDiff(sv?: StateVector | null): Uint8Array {
    this.ready();
    const e = new Encoder(this);
    for (const sp of this.order) {
      let from = sp.s;
      const have = sv?.get(this.agents[sp.a]!.id) ?? 0;
      if (from < have) from = Math.min(have, sp.s + sp.n);
      if (from < sp.s + sp.n) e.emitRange(sp.a, from, sp.s + sp.n);
    }
    return e.bytes();
  }

  /**
   * Decodes an update and applies its ops; ops already seen are ignored, ops
   * whose dependencies are missing wait in the bounded pending buffer. An
   * update that fails is rejected whole: the document is unchanged.
   */
  applyUpdate(b: Uint8Array): void {
    applyUpdate(this, b);
  }

  /**
   * Registers f to be called for every visible change the document goes
   * through, local or remote, in order, as they happen (during insert, delete
   * and applyUpdate; ops released from the pending buffer included). Applying
   * the changes in order to a copy of a text gives the text. Ops that change
   * nothing visible give no change. f must not call the Doc. null stops
   * observing. Loading a snapshot gives no changes: observe after the load
   * (Go: Doc.Observe).
   */
  observe(f: ((c: Change) => void) | null): void {
    this.observer = f;
  }

  /** The whole state (Go: EncodeSnapshot / EncodeSnapshotWith). */
  encodeSnapshot(c: Compression = 'fast'): Uint8Array {
    // Loaded and not changed since (nothing changes before the structure
    // is built): the body as it was read.
    if (this.lazy !== null) return packSnapshot(this.lazy.body, c);
    return encodeSnapshot(this, c);
  }
}

/** Extends p by h when h continues it. */
function mergeSpan(p: HistSpan, h: HistSpan): boolean {
  if (p.seq + p.n !== h.seq || p.root !== h.root || p.del !== h.del) return false;
  if (!p.del) {
    p.n += h.n;
    return true;
  }
  if (refA(p.target) !== refA(h.target)) return false;
  if ((!p.rev || p.n === 1) && (!h.rev || h.n === 1) && h.target === p.target + p.n) {
    p.rev = false;
    p.n += h.n;
    return true;
  }
  if ((p.rev || p.n === 1) && (h.rev || h.n === 1) && h.target + h.n === p.target) {
    p.rev = true;
    p.target = h.target;
    p.n += h.n;
    return true;
  }
  return false;
}
