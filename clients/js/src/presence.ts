// Presence of one document as the client sees it (Go: clients/go/presence.go):
// the client's own state, coalesced sends at most every PRESENCE_INTERVAL_MS
// with a heartbeat every PRESENCE_HEARTBEAT_MS, and the peers the server
// announced.

import type { Meta, WireMoved, WirePeer } from './frames.js';

/** The shortest time between two presence sends of one document (~30 Hz). */
export const PRESENCE_INTERVAL_MS = 1000 / 30;
/** The longest time between two presence sends of a live document (half the server's 30 s TTL). */
export const PRESENCE_HEARTBEAT_MS = 15_000;
/** Longest string the server's decoder takes in presence (root, meta keys and values). */
export const MAX_PRESENCE_STRING = 1024;

/** This client's presence state on a document, as sent. */
export interface OwnPresence {
  root: string;
  anchor: Uint8Array;
  head: Uint8Array;
  meta: Meta | null;
}

const empty = new Uint8Array(0);

export class DocPresence {
  own: OwnPresence = { root: '', anchor: empty, head: empty, meta: null };
  dirty = false; // own changed since it was last sent on the current join
  lastSent = 0; // ms since the epoch
  holdUntil = 0; // rate limited by the server: no send before
  readonly peers = new Map<string, WirePeer>();
  err: Error | null = null; // the server's last refusal

  /** Forgets the peers (the connection dropped); reports whether any were known. */
  lost(): boolean {
    const had = this.peers.size > 0;
    this.peers.clear();
    return had;
  }

  /** Applies a presence frame: full replaces the view, a delta adds, moves and removes. */
  apply(full: boolean, peers: WirePeer[], moved: WireMoved[], gone: string[]): void {
    if (full) this.peers.clear();
    for (const p of peers) this.peers.set(p.session, p);
    for (const m of moved) {
      const p = this.peers.get(m.session);
      if (p) this.peers.set(m.session, { ...p, root: m.root, anchor: m.anchor, head: m.head, meta: m.meta });
    }
    for (const s of gone) this.peers.delete(s);
  }

  /** When the next send is due: the end of the interval (or hold) if dirty, else the heartbeat. */
  due(): number {
    if (!this.dirty) return this.lastSent + PRESENCE_HEARTBEAT_MS;
    return Math.max(this.lastSent + PRESENCE_INTERVAL_MS, this.holdUntil);
  }

  /** Whether the own state is empty (no cursor, no metadata). */
  isEmpty(): boolean {
    return this.own.root === '' && this.own.anchor.length === 0 && (this.own.meta === null || Object.keys(this.own.meta).length === 0);
  }
}

/** Refuses strings the server's decoder would take for a bad frame (closing the connection). */
export function checkPresenceStrings(root: string, meta: Meta | null): void {
  const enc = new TextEncoder();
  if (enc.encode(root).length > MAX_PRESENCE_STRING) throw new RangeError(`collabd: root name over ${MAX_PRESENCE_STRING} bytes`);
  for (const [k, v] of Object.entries(meta ?? {})) {
    if (enc.encode(k).length > MAX_PRESENCE_STRING || enc.encode(v).length > MAX_PRESENCE_STRING) {
      throw new RangeError(`collabd: presence metadata ${JSON.stringify(k.slice(0, 32))}: a key or value over ${MAX_PRESENCE_STRING} bytes`);
    }
  }
}
