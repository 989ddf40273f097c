// React hooks over the network client: `@collabd/client/react`.
//
//   const { doc, status } = useDocument(client, 'notes/42');
//   const peers = usePeers(doc);
//   return doc ? <p>{doc.text('body')} ({status}, {peers.length} here)</p> : <p>loading</p>;
//
// Build entry: dist/react.js, with react left to the application (an
// optional peerDependency: only apps that import this entry need it). The
// hooks only subscribe to the Document's events; every edit still goes
// through the Document (doc.insert, doc.delete, …).

import { useEffect, useState } from 'react';
import type { Client } from './client.js';
import type { DocStatus, Document } from './document.js';
import type { Peer } from './peers.js';

/** Options of useDocument. */
export interface UseDocumentOptions {
  /** Join read-only (the token must allow at least reading). */
  readOnly?: boolean;
  /**
   * Leave the document when the last component using it (through this hook,
   * on this client) unmounts, once its edits are durable, so nothing typed is
   * dropped. Default false: the document stays joined on the client (cheap,
   * and a component that mounts again finds it synced).
   */
  leave?: boolean;
}

/** What useDocument returns; a new object whenever something in it changed. */
export interface DocumentState {
  /** The joined document, null until its first sync (and after a failed join). */
  doc: Document | null;
  /** 'joining' until the first sync, 'idle' without a client or id, then the document's status. */
  status: DocStatus | 'joining' | 'idle';
  /** The error that failed the join or ended the document, or null. */
  error: Error | null;
  /** Batches not yet acked durable by the server (show "saving…" while > 0). */
  unsaved: number;
  /** The replica's version (ops seen, local and remote): changes whenever the text may have. */
  version: number;
}

const idle: DocumentState = { doc: null, status: 'idle', error: null, unsaved: 0, version: 0 };
const joining: DocumentState = { ...idle, status: 'joining' };

// Hook users per client and document id, so `leave` leaves only when the
// last of them unmounts (and React's StrictMode double mount keeps it joined).
const users = new WeakMap<Client, Map<string, number>>();

function acquire(client: Client, id: string): void {
  let m = users.get(client);
  if (!m) users.set(client, (m = new Map()));
  m.set(id, (m.get(id) ?? 0) + 1);
}

/** Drops one user; true when none is left. */
function release(client: Client, id: string): boolean {
  const m = users.get(client);
  const n = (m?.get(id) ?? 1) - 1;
  if (n > 0) m!.set(id, n);
  else m?.delete(id);
  return n <= 0;
}

function inUse(client: Client, id: string): boolean {
  return (users.get(client)?.get(id) ?? 0) > 0;
}

function stateOf(d: Document): DocumentState {
  return { doc: d, status: d.status, error: d.error, unsaved: d.unsaved, version: d.doc.version };
}

/**
 * Joins document id on client and re-renders the component when the
 * document changes (remote edits, local edits batched, acks, status).
 * client or id null/undefined: nothing is joined (status 'idle'). Changing
 * client, id or readOnly joins the new document.
 */
export function useDocument(client: Client | null | undefined, id: string | null | undefined, opts: UseDocumentOptions = {}): DocumentState {
  const readOnly = !!opts.readOnly;
  const leave = !!opts.leave;
  const [cur, setCur] = useState<{ client: Client | null | undefined; id: string | null | undefined; readOnly: boolean; state: DocumentState }>({
    client,
    id,
    readOnly,
    state: client && id ? joining : idle,
  });
  useEffect(() => {
    const set = (state: DocumentState) => setCur({ client, id, readOnly, state });
    if (!client || !id) {
      set(idle);
      return;
    }
    let active = true;
    const offs: (() => void)[] = [];
    acquire(client, id);
    set(joining);
    client.join(id, { readOnly }).then(
      (d) => {
        if (!active) return;
        const update = () => {
          if (active) set(stateOf(d));
        };
        for (const k of ['change', 'version', 'status', 'unsaved', 'error'] as const) offs.push(d.on(k, update));
        update();
      },
      (e: unknown) => {
        if (active) set({ ...idle, status: 'closed', error: e instanceof Error ? e : new Error(String(e)) });
      },
    );
    return () => {
      active = false;
      for (const off of offs) off();
      if (!release(client, id) || !leave) return;
      const d = client.documents().find((x) => x.id === id);
      if (!d) return;
      const done = () => {
        if (!inUse(client, id)) d.leave();
      };
      d.whenDurable().then(done, done);
    };
  }, [client, id, readOnly, leave]);
  // Until the effect ran for new arguments, the state of the old ones is stale.
  if (cur.client !== client || cur.id !== id || cur.readOnly !== readOnly) return client && id ? joining : idle;
  return cur.state;
}

/**
 * The peers on doc (this client included, Peer.self), re-read when the
 * presence changes and after edits (cursors are relative positions: their
 * indexes move with the text). doc null/undefined: [].
 */
export function usePeers(doc: Document | null | undefined): Peer[] {
  const [cur, setCur] = useState<{ doc: Document | null | undefined; peers: Peer[] }>({ doc, peers: doc ? doc.peers() : [] });
  useEffect(() => {
    if (!doc) {
      setCur({ doc, peers: [] });
      return;
    }
    const update = () => setCur({ doc, peers: doc.peers() });
    const offs = (['presence', 'change', 'status'] as const).map((k) => doc.on(k, update));
    update();
    return () => {
      for (const off of offs) off();
    };
  }, [doc]);
  if (cur.doc !== doc) return doc ? doc.peers() : [];
  return cur.peers;
}
