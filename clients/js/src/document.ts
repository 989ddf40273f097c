// A joined document (Go: clients/go/document.go): the local replica, the
// batches on their way to the server, the join/sync state machine and the
// document's presence.

import { AckApplied, AckDurable, type Frame, type ServerLimits, type U64 } from './frames.js';
import { Code, ServerError } from './codes.js';
import { Doc, type StateVector } from './doc.js';
import { decodeStateVector, encodeRelPos, encodeStateVector } from './encoding.js';
import { type Deferred, Emitter, Timer, deferred } from './events.js';
import { DocPresence, checkPresenceStrings } from './presence.js';
import { splitUpdate } from './split.js';
import { AssocAfter, AssocBefore, type Assoc, type Change, type RelPos } from './text.js';
import { decodeUpdateOps, encodeOps } from './update.js';
import { codePointToUtf16, utf16ToCodePoint } from './utf16.js';
import { peerList, type Peer } from './peers.js';
import type { Persistence, StoredDoc } from './persist.js';
import { type API, History, type RestoreResult, type Version, type VersionPage } from './versions.js';

/** A document's link to the connection, as the client gives it. */
export interface Link {
  readonly agent: bigint;
  /** A welcomed connection is up. */
  readonly up: boolean;
  readonly session: string;
  readonly limits: ServerLimits;
  send(f: Frame): void;
  nextBatch(): number;
  /** The backoff delay of retry number attempt, at least hintMs. */
  delay(attempt: number, hintMs: number): number;
  forget(d: Document): void;
  /** Where documents are kept between page loads (ClientOptions.persist), or null. */
  store: Persistence | null;
  /** The server's HTTP API (version history). */
  api?: API;
}

/**
 * connecting: waiting for the connection; syncing: joined, sync under way;
 * synced: live; offline: disconnected or waiting to rejoin; closed: left or
 * ended by a terminal error (see Document.error).
 */
export type DocStatus = 'connecting' | 'syncing' | 'synced' | 'offline' | 'closed';

/** Remote changes applied to the local replica, as code-point splices. */
export interface ChangeEvent {
  changes: Change[];
}

export interface DocumentEvents {
  change: ChangeEvent;
  status: DocStatus;
  /** Batch counts changed (an ack arrived or an edit was queued). */
  unsaved: { unapplied: number; unsaved: number };
  presence: Peer[];
  /** Remote ops entered the local replica (visible or not): the new version (ops seen). */
  version: number;
  /** A terminal error ended the document, the server refused this client's presence, or storing it (persist) failed. */
  error: Error;
  /** An ephemeral broadcast message from another client or the app. */
  message: BroadcastMessage;
}

/** An ephemeral message: `from` is the sending session's id ('' when the app sent it over HTTP). */
export interface BroadcastMessage {
  from: string;
  data: unknown;
}

/** Thrown to waiters when the document was left. */
export class LeftError extends Error {
  constructor(id: string) {
    super(`collabd: document ${JSON.stringify(id)} left`);
    this.name = 'LeftError';
  }
}

interface Batch {
  id: number;
  update: Uint8Array;
  from: number; // first seq of the client's agent it holds
  applied: boolean;
  durable: boolean;
  /** Its key in the store (persist): a number, the pending write, or null when not stored. */
  key: number | Promise<number> | null;
}

const MAX_CHUNK = 256 << 10;
/** Snapshots of a persisted document are written at most this often. */
const SAVE_EVERY_MS = 500;

export class Document {
  /**
   * The replica. A cold join (a replica with nothing) replaces it with the
   * snapshot the server sends: read it from here each time, do not keep it.
   */
  doc: Doc;
  readonly readOnly: boolean;
  private readonly ev = new Emitter<DocumentEvents>();
  private live = false; // the final sync of the current join has arrived
  private joining = false; // a join was sent on the current connection
  private nextChunk = 0;
  private snapParts: Uint8Array[] = []; // the snapshot pieces of the current cold join so far
  private snapBytes = 0;
  private synced = false; // the first sync completed once
  private unacked: Batch[] = [];
  private readonly retryT = new Timer();
  private retries = 0;
  private err: Error | null = null;
  private left = false;
  private flushQueued = false;
  private collecting: Change[] | null = null;
  private readonly joined = deferred<Document>();
  private durableWaiters: { upto: number; d: Deferred<void> }[] = [];
  private readonly pres = new DocPresence();
  private readonly presT = new Timer();
  private lastStatus: DocStatus = 'connecting';
  private loading = false; // the stored state is being read (persist)
  private joinWanted = false; // a join was asked for while loading
  private restored = false; // a stored state was loaded
  private readonly saveT = new Timer();
  private readonly writes = new Set<Promise<unknown>>(); // store writes in flight

  constructor(
    readonly id: string,
    private readonly link: Link,
    opts: { readOnly?: boolean } = {},
  ) {
    this.readOnly = !!opts.readOnly;
    this.doc = new Doc({ agent: link.agent });
    this.doc.observe((c) => this.collecting?.push(c));
    this.joined.promise.catch(() => {}); // rejection is reported through join()
    const store = link.store;
    if (store) {
      this.loading = true;
      store
        .load(id)
        .then((s) => this.restoreStored(s), (e: unknown) => this.storeFailed(e))
        .finally(() => {
          this.loading = false;
          if (this.joinWanted && this.link.up) this.join();
        });
    }
  }

  /**
   * Loads what the store kept of this document: the last snapshot and the
   * batches never acked durable (queued again, with new batch ids, to be
   * sent after the join). A stored document is ready at once, before any
   * sync: a page reloaded offline shows its last state.
   */
  private restoreStored(s: StoredDoc): void {
    if (this.left || this.err) return;
    if (s.snapshot) {
      try {
        const loaded = Doc.loadSnapshot(s.snapshot, { agent: this.link.agent, limits: this.doc.lim });
        if (this.doc.version === 0 && this.doc.pendingCount === 0) {
          // Nothing here yet: the stored snapshot becomes the replica (its
          // texts at once, the structure on the first op).
          const obs = this.doc.observer;
          this.doc = loaded;
          this.doc.observe(obs);
        } else {
          this.doc.applyUpdate(loaded.encodeDiff(new Map()));
        }
      } catch (e) {
        this.storeFailed(e);
      }
    }
    for (const sb of s.batches) {
      try {
        this.doc.applyUpdate(sb.update);
      } catch {
        // kept and sent anyway: the server decides (an update this replica refuses is not lost here)
      }
      this.unacked.push({ id: this.link.nextBatch(), update: sb.update, from: Number.MAX_SAFE_INTEGER, applied: false, durable: false, key: sb.key });
    }
    if (s.snapshot || s.batches.length > 0) {
      this.restored = true;
      this.joined.resolve(this);
      this.emitUnsaved();
      this.setStatus();
    }
  }

  /** Resolves after the first sync; rejects on a terminal error. */
  get ready(): Promise<Document> {
    return this.joined.promise;
  }

  on<K extends keyof DocumentEvents>(k: K, f: (v: DocumentEvents[K]) => void): () => void {
    return this.ev.on(k, f);
  }

  off<K extends keyof DocumentEvents>(k: K, f: (v: DocumentEvents[K]) => void): void {
    this.ev.off(k, f);
  }

  // ---- editing ------------------------------------------------------------

  /** Inserts text at code point pos of root: applied locally at once, sent batched. */
  insert(root: string, pos: number, text: string): void {
    this.edit(() => this.doc.text(root).insert(pos, text));
  }

  /** Deletes n code points of root from pos, locally at once, sent batched. */
  delete(root: string, pos: number, n: number): void {
    this.edit(() => this.doc.text(root).delete(pos, n));
  }

  /** insert with a UTF-16 offset (editors count code units). */
  insertUtf16(root: string, offset: number, text: string): void {
    this.insert(root, utf16ToCodePoint(this.text(root), offset), text);
  }

  /** delete with UTF-16 offsets: the code units from..to. */
  deleteUtf16(root: string, from: number, to: number): void {
    const s = this.text(root);
    const a = utf16ToCodePoint(s, from);
    this.delete(root, a, utf16ToCodePoint(s, to) - a);
  }

  /** The text of root ("" if it does not exist). */
  text(root: string): string {
    return this.doc.rootNames().includes(root) ? this.doc.text(root).toString() : '';
  }

  stateVector(): StateVector {
    return this.doc.stateVector();
  }

  private edit(f: () => void): void {
    if (this.left || this.err) throw this.err ?? new LeftError(this.id);
    if (this.readOnly) throw new Error(`collabd: document ${JSON.stringify(this.id)} joined read-only`);
    f();
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Turns the local ops made since the last flush into batches (once per microtask). */
  flush(): void {
    this.flushQueued = false;
    if (this.left) return;
    const from = this.doc.localFrom;
    const u = this.doc.takeUpdate();
    if (u) this.addBatch(u, from);
  }

  private addBatch(u: Uint8Array, from: number): void {
    const l = this.link.limits;
    const maxBytes = l.maxFrame > 0 ? Math.min(MAX_CHUNK, l.maxFrame - 1024) : MAX_CHUNK;
    for (const p of splitUpdate(u, l.maxOpsPerBatch, maxBytes)) {
      const b: Batch = { id: this.link.nextBatch(), update: p, from, applied: false, durable: false, key: null };
      const store = this.link.store;
      if (store) {
        const k = store.addBatch(this.id, p);
        b.key = k;
        this.track(k.then((n) => {
          if (b.key === k) b.key = n;
        }));
      }
      this.unacked.push(b);
      if (this.live && this.link.up) this.link.send({ type: 5, doc: this.id, batch: b.id, update: p });
    }
    this.scheduleSave();
    this.emitUnsaved();
  }

  /** Batches the server has not acked applied yet. */
  get unapplied(): number {
    return this.unacked.filter((b) => !b.applied).length + (this.flushQueued ? 1 : 0);
  }

  /** Batches the server has not acked durable yet (unapplied ones included). */
  get unsaved(): number {
    return this.unacked.length + (this.flushQueued ? 1 : 0);
  }

  get status(): DocStatus {
    if (this.left || this.err) return 'closed';
    if (this.live) return 'synced';
    if (this.joining) return 'syncing';
    if (this.retryT.active || this.synced || (this.restored && !this.link.up)) return 'offline';
    return this.link.up ? 'syncing' : 'connecting';
  }

  /** The terminal error that ended the document, or null. */
  get error(): Error | null {
    return this.err;
  }

  /**
   * Resolves once every edit made before the call is durable on the server
   * (kept across reconnects); rejects if the document or the client ends.
   */
  whenDurable(): Promise<void> {
    if (this.flushQueued) this.flush();
    if (this.err) return Promise.reject(this.err);
    if (this.left) return Promise.reject(new LeftError(this.id));
    if (this.unacked.length === 0) return Promise.resolve();
    const d = deferred<void>();
    this.durableWaiters.push({ upto: this.unacked[this.unacked.length - 1]!.id, d });
    return d.promise;
  }

  /** The document's version history on the server (HTTP API, docs/HTTP.md "Versions"). */
  get history(): History {
    if (!this.link.api) throw new Error('collabd: no HTTP API for this document');
    return new History(this.link.api, this.id);
  }

  /** The document's versions, newest first (a page; pass its next as before for the next one). */
  versions(o: { limit?: number; before?: number } = {}): Promise<VersionPage> {
    return this.history.list(o);
  }

  /** One version with the text of every root. */
  version(seq: number): Promise<Version> {
    return this.history.get(seq);
  }

  /** Takes a named version of the document as the server has it; resolves once durable. */
  saveVersion(label: string): Promise<Version> {
    return this.history.save(label);
  }

  /**
   * Restores version seq, CRDT-safe: the server edits the document back to
   * the version's text; the edits arrive here as remote changes, and local
   * edits not yet sent merge with them. Resolves once the server's edits are
   * durable (send pending local edits first with whenDurable() if they
   * should be part of what is replaced).
   */
  restore(seq: number): Promise<RestoreResult> {
    return this.history.restore(seq);
  }

  /** Leaves the document. Edits not yet durable are dropped: await whenDurable() first. */
  leave(): void {
    if (this.left) return;
    if (this.joining && this.link.up) this.link.send({ type: 7, doc: this.id });
    this.end(new LeftError(this.id));
    this.left = true;
    this.link.forget(this);
    this.setStatus();
  }

  // ---- driven by the client -------------------------------------------------

  /** Sends a join on the (welcomed) connection. */
  join(): void {
    if (this.left || this.err) return;
    if (this.loading) {
      this.joinWanted = true;
      return;
    }
    this.retryT.clear();
    this.live = false;
    this.joining = true;
    this.nextChunk = 0;
    this.snapParts = [];
    this.snapBytes = 0;
    // A replica with nothing asks for the snapshot: its texts are read at
    // once and the structure is built on the first op (PROTOCOL.md, join).
    const cold = this.doc.version === 0 && this.doc.pendingCount === 0;
    this.link.send({ type: 3, doc: this.id, sv: encodeStateVector(this.doc.stateVector()), readOnly: this.readOnly, snapshot: cold });
    this.setStatus();
  }

  /** The connection dropped. */
  disconnected(): void {
    this.live = this.joining = false;
    this.retryT.clear();
    this.presT.clear();
    if (this.pres.lost()) this.emitPresence();
    this.setStatus();
  }

  /** The client stopped: every waiter fails with err. */
  stopped(err: Error): void {
    this.disconnected();
    this.end(err);
  }

  frame(f: Frame): void {
    switch (f.type) {
      case 4:
        if (this.joining) this.sync(f.chunk, f.final, f.update, f.sv, !!f.snapshot);
        return;
      case 5:
        if (this.live) this.remote(f.update);
        return;
      case 6:
        this.ack(f.batch, f.status);
        return;
      case 8:
        this.serverError(new ServerError(f.code, f.message, f.doc, f.batch, f.retryAfterMs));
        return;
      case 33:
        if (this.live || this.joining) {
          this.pres.apply(f.full, f.peers, f.moved, f.gone);
          this.emitPresence();
        }
        return;
      case 12: {
        let data: unknown;
        try {
          data = JSON.parse(f.data);
        } catch {
          return; // the server checks JSON: nothing else arrives
        }
        this.ev.emit('message', { from: f.from, data });
        return;
      }
    }
  }

  /**
   * Broadcasts an ephemeral JSON message to the document's other clients
   * (not stored, not part of the document). Returns false, sending nothing,
   * when the document is not synced on a live connection: messages are
   * never queued. The server drops messages from read-only sessions and
   * past its rate (20/s by default) or size (16 KiB).
   */
  sendMessage(data: unknown): boolean {
    const s = JSON.stringify(data);
    if (s === undefined) throw new TypeError('collabd: a message must be JSON-serializable');
    if (!this.live || !this.link.up) return false;
    this.link.send({ type: 12, doc: this.id, from: '', data: s });
    return true;
  }

  /** Applies an update, collecting the visible changes; false if the CRDT refused it. */
  private applyCollect(u: Uint8Array): boolean {
    const changes: Change[] = [];
    const before = this.doc.version;
    this.collecting = changes;
    try {
      this.doc.applyUpdate(u);
    } catch {
      return false;
    } finally {
      this.collecting = null;
    }
    if (changes.length > 0) this.ev.emit('change', { changes });
    const v = this.doc.version;
    if (v !== before) {
      this.scheduleSave();
      this.ev.emit('version', v);
    }
    return true;
  }

  private sync(chunk: number, final: boolean, u: Uint8Array, svb: Uint8Array | null, snapshot: boolean): void {
    if (chunk !== this.nextChunk) return; // a leftover of an earlier join
    this.nextChunk++;
    if (!(snapshot ? this.snapshotPiece(u, final) : this.applyCollect(u))) {
      this.resync(0);
      return;
    }
    if (!final) return;
    let sv: StateVector;
    try {
      sv = decodeStateVector(svb ?? new Uint8Array([0x92, 1, 0x90]));
    } catch {
      this.resync(0);
      return;
    }
    this.live = true;
    this.retries = 0;
    if (!this.readOnly) {
      for (const b of this.unacked) {
        b.applied = b.durable = false;
        this.link.send({ type: 5, doc: this.id, batch: b.id, update: b.update });
      }
      // Own ops the server lacks that no batch holds (it lost them, e.g.
      // restored from a backup): send them as a new batch. Ops from
      // localFrom on go with the next flush.
      const agent = this.link.agent;
      let lowest = this.doc.localFrom;
      for (const b of this.unacked) lowest = Math.min(lowest, b.from);
      const have = sv.get(agent) ?? 0;
      if (have < lowest) {
        const mine = decodeUpdateOps(this.doc.encodeDiff(sv), { maxOps: 1 << 30, maxInsertBytes: 1 << 30 })
          .filter((o) => o.id.agent === agent && o.id.seq < lowest);
        if (mine.length > 0) this.addBatch(encodeOps(mine), have);
      }
      if (this.flushQueued) this.flush();
    }
    this.presenceResumed();
    if (!this.synced) {
      this.synced = true;
      this.joined.resolve(this);
    }
    this.setStatus();
    this.checkDurable();
  }

  /**
   * Takes one piece of a cold join's snapshot; with the final one, loads
   * it: it becomes the document if the replica still has nothing (every
   * root's text is one change), else (local edits made while joining) its
   * whole history is applied to the replica. False if it is refused.
   */
  private snapshotPiece(u: Uint8Array, final: boolean): boolean {
    this.snapParts.push(u);
    this.snapBytes += u.length;
    if (this.snapBytes > this.doc.lim.maxSnapshot) return false;
    if (!final) return true;
    const b = new Uint8Array(this.snapBytes);
    let at = 0;
    for (const p of this.snapParts) {
      b.set(p, at);
      at += p.length;
    }
    this.snapParts = [];
    this.snapBytes = 0;
    let loaded: Doc;
    try {
      loaded = Doc.loadSnapshot(b, { agent: this.link.agent, limits: this.doc.lim });
    } catch {
      return false;
    }
    if (this.doc.version !== 0 || this.doc.pendingCount !== 0) {
      try {
        return this.applyCollect(loaded.encodeDiff(this.doc.stateVector()));
      } catch {
        return false; // a structure that fails its check
      }
    }
    const before = this.doc.version;
    const obs = this.doc.observer;
    this.doc = loaded;
    this.doc.observe(obs);
    const changes: Change[] = [];
    for (const root of loaded.rootNames()) {
      const s = loaded.text(root).toString();
      if (s !== '') changes.push({ root, pos: 0, del: 0, ins: s });
    }
    if (changes.length > 0) this.ev.emit('change', { changes });
    if (loaded.version !== before) {
      this.scheduleSave();
      this.ev.emit('version', loaded.version);
    }
    return true;
  }

  private remote(u: Uint8Array): void {
    if (!this.applyCollect(u)) this.resync(0);
  }

  /** Restarts the sync after backoff (a refused update, a retryable document error). */
  private resync(hintMs: number): void {
    this.live = this.joining = false;
    this.retries++;
    this.retryT.set(this.link.delay(this.retries - 1, hintMs), () => {
      if (this.link.up) this.join();
    });
    this.setStatus();
  }

  private ack(batch: U64, status: number): void {
    for (const b of this.unacked) {
      if (b.id !== Number(batch)) continue;
      if (status === AckApplied) b.applied = true;
      if (status === AckDurable) b.applied = b.durable = true;
    }
    this.popDurable();
  }

  /** Drops durable batches at the front of the queue (in order: an earlier one may still be resent). */
  private popDurable(): void {
    let n = 0;
    while (n < this.unacked.length && this.unacked[n]!.durable) n++;
    this.unstore(this.unacked.slice(0, n));
    this.unacked = this.unacked.slice(n);
    this.checkDurable();
    this.emitUnsaved();
  }

  private checkDurable(): void {
    const first = this.unacked[0]?.id ?? Infinity;
    this.durableWaiters = this.durableWaiters.filter((w) => {
      if (first > w.upto) w.d.resolve();
      return first <= w.upto;
    });
  }

  private serverError(e: ServerError): void {
    if (this.presenceRefusal(e)) return;
    if (!e.retry) {
      if (e.batch !== 0) {
        this.unstore(this.unacked.filter((b) => b.id === Number(e.batch)));
        this.unacked = this.unacked.filter((b) => b.id !== Number(e.batch));
        // the server still has the document joined
        if (this.link.up) this.link.send({ type: 7, doc: this.id });
      }
      this.end(e);
      this.link.forget(this);
      this.ev.emit('error', e);
      this.setStatus();
      return;
    }
    // Retry: resync (rejoin, resend unacked batches) after backoff, never
    // sooner than the hint.
    this.resync(e.retryAfterMs);
  }

  private end(err: Error): void {
    if (!this.err && !(err instanceof LeftError)) this.err = err;
    this.retryT.clear();
    this.presT.clear();
    if (this.saveT.active) this.saveNow(); // the last state, for the next page load
    this.live = this.joining = false;
    this.joined.reject(err);
    for (const w of this.durableWaiters) w.d.reject(err);
    this.durableWaiters = [];
  }

  private emitUnsaved(): void {
    this.ev.emit('unsaved', { unapplied: this.unapplied, unsaved: this.unsaved });
  }

  private setStatus(): void {
    const s = this.status;
    if (s !== this.lastStatus) {
      this.lastStatus = s;
      this.ev.emit('status', s);
    }
  }

  // ---- persistence (ClientOptions.persist) -------------------------------------

  /**
   * Resolves once everything of this document handed to the store so far is
   * written, a snapshot of the current state included (no-op without
   * persist). Browsers may drop writes still in flight when a page unloads.
   */
  whenStored(): Promise<void> {
    if (!this.link.store) return Promise.resolve();
    if (this.flushQueued) this.flush();
    this.saveNow();
    return Promise.allSettled([...this.writes]).then(() => undefined);
  }

  private track(p: Promise<unknown>): void {
    const t = p.catch((e: unknown) => this.storeFailed(e));
    this.writes.add(t);
    void t.finally(() => this.writes.delete(t));
  }

  /** Forgets stored batches (acked durable or refused). */
  private unstore(bs: Batch[]): void {
    const store = this.link.store;
    if (!store) return;
    for (const b of bs) {
      const k = b.key;
      b.key = null;
      if (k === null) continue;
      this.track(Promise.resolve(k).then((n) => store.removeBatches([n])));
    }
  }

  private scheduleSave(): void {
    if (this.link.store && !this.loading) this.saveT.setEarlier(SAVE_EVERY_MS, () => this.saveNow());
  }

  private saveNow(): void {
    const store = this.link.store;
    this.saveT.clear();
    if (!store || this.loading) return;
    this.track(store.saveSnapshot(this.id, this.doc.encodeSnapshot()));
  }

  private storeFailed(e: unknown): void {
    this.ev.emit('error', e instanceof Error ? e : new Error(`collabd: store: ${String(e)}`));
  }

  // ---- presence -------------------------------------------------------------

  /**
   * Shows this client's selection in root: anchor..head as code-point indexes
   * (equal for a caret). They become relative positions, so the selection
   * stays on its characters while others edit. Sent at most ~30 times a second.
   */
  setCursor(root: string, anchor: number, head: number): void {
    if (!root) throw new RangeError('collabd: a cursor needs a root');
    let aa: Assoc = AssocBefore;
    let ha: Assoc = AssocBefore;
    if (anchor < head) aa = AssocAfter;
    else if (head < anchor) ha = AssocAfter;
    const a = encodeRelPos(this.relPos(root, anchor, aa));
    const h = encodeRelPos(this.relPos(root, head, ha));
    this.setPresence(root, a, h, this.pres.own.meta);
  }

  /** setCursor with UTF-16 offsets. */
  setCursorUtf16(root: string, anchor: number, head: number): void {
    const s = this.text(root);
    this.setCursor(root, utf16ToCodePoint(s, anchor), utf16ToCodePoint(s, head));
  }

  /** Removes this client's cursor (it stays listed as a peer). */
  clearCursor(): void {
    this.setPresence('', new Uint8Array(0), new Uint8Array(0), this.pres.own.meta);
  }

  /** Replaces this client's presence metadata (small strings; null clears it). */
  setMeta(meta: Record<string, string> | null): void {
    const m = meta && Object.keys(meta).length > 0 ? { ...meta } : null;
    const o = this.pres.own;
    this.setPresence(o.root, o.anchor, o.head, m);
  }

  /** The sessions on the document (this one included, Peer.self), cursors resolved against the local replica. */
  peers(): Peer[] {
    return peerList(this.pres.peers, this.link.up ? this.link.session : '', (root, p) => this.resolve(root, p), (root, i) => codePointToUtf16(this.text(root), i));
  }

  /** The server's last refusal of this client's presence, or null. */
  get presenceError(): Error | null {
    return this.pres.err;
  }

  /** The current index in root of a relative position, or undefined if its item is not here yet. */
  resolve(root: string, p: RelPos): number | undefined {
    if (!this.doc.rootNames().includes(root)) return p.item.agent === 0n ? 0 : undefined;
    return this.doc.text(root).resolve(p);
  }

  private relPos(root: string, index: number, assoc: Assoc): RelPos {
    if (!this.doc.rootNames().includes(root)) {
      if (index !== 0) throw new RangeError(`collabd: cursor ${index} in the empty text ${JSON.stringify(root)}`);
      return { item: { agent: 0n, seq: 0 }, assoc };
    }
    return this.doc.text(root).relPos(index, assoc);
  }

  private setPresence(root: string, anchor: Uint8Array, head: Uint8Array, meta: Record<string, string> | null): void {
    if (this.left || this.err) throw this.err ?? new LeftError(this.id);
    checkPresenceStrings(root, meta);
    this.pres.own = { root, anchor, head, meta };
    this.pres.dirty = true;
    this.flushPresence();
  }

  /** Sends the presence if due, else arms the timer for when it is. */
  private flushPresence(): void {
    if (!this.live || !this.link.up) return;
    const now = Date.now();
    const due = this.pres.due();
    if (now < due) {
      this.presT.setEarlier(due - now, () => this.flushPresence());
      return;
    }
    const o = this.pres.own;
    this.link.send({ type: 32, doc: this.id, root: o.root, anchor: o.anchor, head: o.head, meta: o.meta });
    this.pres.lastSent = now;
    this.pres.dirty = false;
    this.presT.set(this.pres.due() - now, () => this.flushPresence());
  }

  /** The sync completed: the server lists the session with no state, so a state it had is sent again. */
  private presenceResumed(): void {
    if (this.pres.isEmpty() && !this.pres.dirty) {
      this.pres.lastSent = Date.now(); // the join counts as a heartbeat
      this.presT.set(this.pres.due() - Date.now(), () => this.flushPresence());
      return;
    }
    this.pres.dirty = true;
    this.presT.clear();
    this.flushPresence();
  }

  /** Presence errors never end the document. */
  private presenceRefusal(e: ServerError): boolean {
    if (e.code === Code.PresenceRefused || (e.code === Code.ReadOnly && e.batch === 0)) {
      this.pres.err = e;
      this.ev.emit('error', e);
      return true;
    }
    // Updates always carry their batch; on a document not live yet a
    // rate refusal is of its Join (the join rate), retried like any
    // retryable document error.
    if (e.code === Code.RateLimited && e.batch === 0 && this.live) {
      this.pres.holdUntil = Date.now() + e.retryAfterMs;
      this.pres.dirty = true;
      this.presT.clear();
      this.flushPresence();
      return true;
    }
    return false;
  }

  private emitPresence(): void {
    this.ev.emit('presence', this.peers());
  }
}

