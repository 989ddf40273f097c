// The mapping logic of the CodeMirror binding, kept free of CodeMirror so it
// is tested in Node without a browser: editor changes (UTF-16 code units) to
// CRDT splices (code points) and back, and peers to drawable cursors.
//
// An astral character (emoji, …) is two UTF-16 units and one code point. A
// change boundary inside such a pair is widened to the whole character, so a
// character is never split; the binding then finds the editor text differs
// from the CRDT's and replaces it with the CRDT's.

import type { Peer } from './peers.js';

/** One change of an editor transaction: the range fromA..toA of the old text (UTF-16) replaced by insert. Ascending, non-overlapping. */
export interface EditorChange {
  fromA: number;
  toA: number;
  insert: string;
}

/** A splice in code points, applied one after another (each position sees the splices before it). */
export interface Splice {
  pos: number;
  del: number;
  ins: string;
}

/** A splice in UTF-16 units, applied one after another. */
export interface EditorSplice {
  from: number;
  to: number;
  insert: string;
}

const isHigh = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

/**
 * The CRDT splices for an editor transaction on old (the editor text before
 * it, equal to the CRDT's). One pass over old up to the last change.
 */
export function editorToSplices(old: string, changes: readonly EditorChange[]): Splice[] {
  const out: Splice[] = [];
  let u = 0; // UTF-16 offset in old reached by the scan
  let cp = 0; // code points of old[0..u)
  let shift = 0; // code points inserted minus deleted by earlier splices
  const advance = (to: number): void => {
    while (u < to) {
      if (isHigh(old.charCodeAt(u)) && isLow(old.charCodeAt(u + 1))) u += 2;
      else u += 1;
      cp++;
    }
  };
  for (const c of changes) {
    let from = c.fromA;
    if (from > 0 && from < old.length && isLow(old.charCodeAt(from)) && isHigh(old.charCodeAt(from - 1))) from--; // inside a pair: from its start
    from = Math.max(from, u); // after a pair the previous change widened over
    advance(from);
    const start = cp;
    advance(c.toA > c.fromA ? Math.max(from, c.toA) : from); // a pair cut at the end is deleted whole (the scan steps over it)
    const del = cp - start;
    if (del > 0 || c.insert !== '') out.push({ pos: start + shift, del, ins: c.insert });
    shift += codePoints(c.insert) - del;
  }
  return out;
}

/** The code points of s (a lone surrogate counts as one). */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) i++;
  return n;
}

/** The UTF-16 offset of code point index cp in s (clamped to s.length). */
export function cpToUtf16(s: string, cp: number): number {
  let u = 0;
  for (let k = 0; k < cp && u < s.length; k++) u += isHigh(s.charCodeAt(u)) && isLow(s.charCodeAt(u + 1)) ? 2 : 1;
  return u;
}

/**
 * Editor splices (UTF-16) for CRDT splices observed on a text that was text
 * before them, and the text after them.
 */
export function splicesToEditor(text: string, changes: readonly Splice[]): { splices: EditorSplice[]; text: string } {
  const splices: EditorSplice[] = [];
  let s = text;
  for (const c of changes) {
    const from = cpToUtf16(s, c.pos);
    const to = from + cpToUtf16(s.slice(from), c.del);
    splices.push({ from, to, insert: c.ins });
    s = s.slice(0, from) + c.ins + s.slice(to);
  }
  return { splices, text: s };
}

/** A remote peer's selection as the editor draws it (UTF-16 offsets). */
export interface RemoteCursor {
  session: string;
  name: string;
  color: string;
  /** from <= to; from === to for a caret. */
  from: number;
  to: number;
  head: number;
}

/** A stable color for a peer that has none (from its session id). */
export function fallbackColor(key: string): string {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360}, 70%, 45%)`;
}

/**
 * A peer's display name: the server's, stamped from the token; a peer
 * without identity (development mode: no userId, the server says "Guest …")
 * may name itself in its metadata (`name`).
 */
export function peerName(p: Peer): string {
  return (p.userId ? p.name : p.meta.name || p.name) || 'anonymous';
}

/** A peer's color, chosen as peerName chooses the name (metadata `color`). */
export function peerColor(p: Peer): string {
  return (p.userId ? p.color : p.meta.color || p.color) || fallbackColor(p.session);
}

/** The other peers' cursors in root, clamped to a text of length len, named by peerName and peerColor. */
export function remoteCursors(peers: readonly Peer[], root: string, len: number): RemoteCursor[] {
  const out: RemoteCursor[] = [];
  const clamp = (n: number): number => Math.max(0, Math.min(len, n));
  for (const p of peers) {
    const c = p.cursor;
    if (p.self || !c || c.root !== root || !c.resolved) continue;
    const a = clamp(c.anchorUtf16);
    const h = clamp(c.headUtf16);
    out.push({
      session: p.session,
      name: peerName(p),
      color: peerColor(p),
      from: Math.min(a, h),
      to: Math.max(a, h),
      head: h,
    });
  }
  return out;
}
