// Offline persistence of joined documents (ClientOptions.persist): each
// document's last state (a snapshot) and the batches the server has not
// acked durable yet, so a page reloaded offline shows its last state and
// sends its unsent edits when it is online again.
//
// IndexedDB layout (database "collabd" unless named otherwise, version 1):
//   snapshots: key [scope, doc] → Uint8Array (Doc.encodeSnapshot)
//   batches:   auto-increment key → { scope, doc, update, agents: string[] }
//              index "doc" on [scope, doc], index "scope" on scope
// scope is the server URL, so two servers' documents of the same id do not
// mix. Every write is one readwrite transaction over both stores, so writes
// land in the order they were made (a snapshot never holds an op whose batch
// was not stored first).

import { decodeUpdateOps } from './update.js';

/** What a document left in the store: its last snapshot and its unacked batches, oldest first. */
export interface StoredDoc {
  snapshot: Uint8Array | null;
  batches: { key: number; update: Uint8Array }[];
}

/**
 * Where a client keeps its documents between page loads. `indexedDBPersistence`
 * is the browser's; an app may pass its own (e.g. over a file in Electron).
 * Every method may reject; the client then goes on in memory (and emits the
 * error on the document).
 */
export interface Persistence {
  /** The agents whose ops are in stored batches of any document (to claim them again). */
  pendingAgents(): Promise<bigint[]>;
  load(doc: string): Promise<StoredDoc>;
  /** Stores one unacked batch; resolves with its key. */
  addBatch(doc: string, update: Uint8Array): Promise<number>;
  /** Forgets batches (acked durable or refused). */
  removeBatches(keys: number[]): Promise<void>;
  saveSnapshot(doc: string, snapshot: Uint8Array): Promise<void>;
  close(): void;
}

/** Options of indexedDBPersistence. */
export interface IndexedDBOptions {
  /** The IDBFactory; default globalThis.indexedDB (Node: the `fake-indexeddb` package's). */
  indexedDB?: IDBFactory;
  /** Database name (default "collabd"). */
  name?: string;
}

const SNAP = 'snapshots';
const BATCH = 'batches';

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((res, rej) => {
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error ?? new Error('collabd: IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((res, rej) => {
    tx.oncomplete = () => res();
    tx.onerror = () => rej(tx.error ?? new Error('collabd: IndexedDB transaction failed'));
    tx.onabort = () => rej(tx.error ?? new Error('collabd: IndexedDB transaction aborted'));
  });
}

/** The agents (decimal strings) of the ops in update; none if it does not decode. */
function updateAgents(update: Uint8Array): string[] {
  try {
    return [...new Set(decodeUpdateOps(update, { maxOps: 1 << 30, maxInsertBytes: 1 << 30 }).map((o) => o.id.agent.toString()))];
  } catch {
    return [];
  }
}

/**
 * Persistence in IndexedDB for the documents of the server at scope (the
 * client's URL). Opens the database lazily.
 */
export function indexedDBPersistence(scope: string, o: IndexedDBOptions = {}): Persistence {
  const factory = o.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory) throw new Error('collabd: persist "indexeddb" needs IndexedDB (in Node pass options.indexedDB, e.g. from fake-indexeddb)');
  let opened: Promise<IDBDatabase> | null = null;
  let closed = false;
  const db = (): Promise<IDBDatabase> => {
    if (closed) return Promise.reject(new Error('collabd: persistence closed'));
    if (!opened) {
      const r = factory.open(o.name ?? 'collabd', 1);
      r.onupgradeneeded = () => {
        const d = r.result;
        d.createObjectStore(SNAP);
        const b = d.createObjectStore(BATCH, { autoIncrement: true });
        b.createIndex('doc', ['scope', 'doc']);
        b.createIndex('scope', 'scope');
      };
      opened = req(r);
    }
    return opened;
  };
  const write = async (f: (snaps: IDBObjectStore, batches: IDBObjectStore) => IDBRequest | void): Promise<unknown> => {
    const tx = (await db()).transaction([SNAP, BATCH], 'readwrite');
    const r = f(tx.objectStore(SNAP), tx.objectStore(BATCH));
    await done(tx);
    return r ? r.result : undefined;
  };
  return {
    async pendingAgents() {
      const tx = (await db()).transaction(BATCH, 'readonly');
      const rows = (await req(tx.objectStore(BATCH).index('scope').getAll(scope))) as { agents: string[] }[];
      const out = new Set<string>();
      for (const r of rows) for (const a of r.agents) out.add(a);
      return [...out].map((a) => BigInt(a));
    },
    async load(doc) {
      const tx = (await db()).transaction([SNAP, BATCH], 'readonly');
      const snap = (await req(tx.objectStore(SNAP).get([scope, doc]))) as Uint8Array | undefined;
      const idx = tx.objectStore(BATCH).index('doc');
      const [keys, rows] = await Promise.all([req(idx.getAllKeys([scope, doc])), req(idx.getAll([scope, doc]))]);
      const batches = (rows as { update: Uint8Array }[]).map((r, i) => ({ key: keys[i] as number, update: r.update }));
      batches.sort((a, b) => a.key - b.key);
      return { snapshot: snap ?? null, batches };
    },
    async addBatch(doc, update) {
      return (await write((_, b) => b.add({ scope, doc, update, agents: updateAgents(update) }))) as number;
    },
    async removeBatches(keys) {
      if (keys.length === 0) return;
      await write((_, b) => {
        for (const k of keys) b.delete(k);
      });
    },
    async saveSnapshot(doc, snapshot) {
      await write((s) => s.put(snapshot, [scope, doc]));
    },
    close() {
      closed = true;
      opened?.then((d) => d.close()).catch(() => {});
    },
  };
}
