// Peers as the application sees them: the server's presence with cursors
// resolved against the local replica.

import { decodeRelPos } from './encoding.js';
import type { Meta, WirePeer } from './frames.js';
import type { RelPos } from './text.js';

/**
 * A peer's selection in one text root. anchor is where it started and head
 * where the caret is (equal for a caret), as code-point indexes in the local
 * replica when peers() was called (anchorUtf16/headUtf16: the same in UTF-16
 * code units). resolved is false when the replica has not seen the characters
 * the positions name yet, or they do not decode; the indexes are then -1.
 * anchorPos/headPos are the relative positions: resolve them again after
 * edits with Document.resolve.
 */
export interface Cursor {
  root: string;
  anchor: number;
  head: number;
  anchorUtf16: number;
  headUtf16: number;
  resolved: boolean;
  anchorPos: RelPos | null;
  headPos: RelPos | null;
}

/** One session on a document. Identity (userId, name, color) is stamped by the server from the token. */
export interface Peer {
  session: string;
  userId: string;
  name: string;
  color: string;
  readOnly: boolean;
  /** This client's own session. */
  self: boolean;
  meta: Meta;
  /** null: no cursor. */
  cursor: Cursor | null;
}

type Resolve = (root: string, p: RelPos) => number | undefined;
type ToUtf16 = (root: string, cp: number) => number;

/** The peers sorted by session. */
export function peerList(peers: Map<string, WirePeer>, self: string, resolve: Resolve, toUtf16: ToUtf16): Peer[] {
  const out: Peer[] = [];
  for (const p of peers.values()) {
    out.push({
      session: p.session, userId: p.userId, name: p.name, color: p.color, readOnly: p.readOnly,
      self: self !== '' && p.session === self,
      meta: { ...(p.meta ?? {}) },
      cursor: resolveCursor(p, resolve, toUtf16),
    });
  }
  out.sort((a, b) => (a.session < b.session ? -1 : a.session > b.session ? 1 : 0));
  return out;
}

function resolveCursor(p: WirePeer, resolve: Resolve, toUtf16: ToUtf16): Cursor | null {
  if (p.root === '' && p.anchor.length === 0) return null;
  const c: Cursor = { root: p.root, anchor: -1, head: -1, anchorUtf16: -1, headUtf16: -1, resolved: false, anchorPos: null, headPos: null };
  try {
    c.anchorPos = decodeRelPos(p.anchor);
    c.headPos = p.head.length > 0 ? decodeRelPos(p.head) : c.anchorPos;
  } catch {
    return c;
  }
  const a = resolve(p.root, c.anchorPos);
  const h = resolve(p.root, c.headPos);
  if (a !== undefined && h !== undefined) {
    c.anchor = a;
    c.head = h;
    c.anchorUtf16 = toUtf16(p.root, a);
    c.headUtf16 = toUtf16(p.root, h);
    c.resolved = true;
  }
  return c;
}
