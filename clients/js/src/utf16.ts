// Code points and UTF-16. The CRDT counts positions in Unicode code points
// (as the Go side does); JavaScript strings and editors count UTF-16 code
// units. These helpers convert, and never split a surrogate pair.

import { CrdtError } from './errors.js';

/** The code points of s. A lone surrogate is refused: it has no UTF-8 form. */
export function toCodePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out.push(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
        i++;
        continue;
      }
      throw new CrdtError('invalid-text', `lone surrogate at UTF-16 offset ${i}`);
    }
    if (c >= 0xdc00 && c <= 0xdfff) throw new CrdtError('invalid-text', `lone surrogate at UTF-16 offset ${i}`);
    out.push(c);
  }
  return out;
}

/** The number of code points in s (a lone surrogate counts as one). */
export function codePointLength(s: string): number {
  return utf16ToCodePoint(s, s.length);
}

/**
 * The code point index of UTF-16 offset u in s (0 <= u <= s.length). An
 * offset inside a surrogate pair rounds down to the pair's start.
 */
export function utf16ToCodePoint(s: string, u: number): number {
  if (!Number.isInteger(u) || u < 0 || u > s.length) throw new RangeError(`crdt: UTF-16 offset ${u} outside a string of ${s.length}`);
  let cp = 0;
  for (let i = 0; i < u; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        if (i + 1 === u) return cp; // inside the pair: before it
        i++;
      }
    }
    cp++;
  }
  return cp;
}

/** The UTF-16 offset of code point index cp in s (0 <= cp <= code points of s). */
export function codePointToUtf16(s: string, cp: number): number {
  if (!Number.isInteger(cp) || cp < 0) throw new RangeError(`crdt: code point index ${cp} out of range`);
  let u = 0;
  for (let k = 0; k < cp; k++) {
    if (u >= s.length) throw new RangeError(`crdt: code point index ${cp} past the end of the string`);
    const c = s.charCodeAt(u);
    const d = s.charCodeAt(u + 1);
    u += c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
  }
  return u;
}

/** The string of code points cps (chunked: no argument-count limit). */
export function fromCodePoints(cps: ArrayLike<number>, from = 0, to = cps.length): string {
  if (to - from <= 16) {
    // a typed character or a short run (most ops): no arrays to build
    let s = '';
    for (let k = from; k < to; k++) s += String.fromCodePoint(cps[k]!);
    return s;
  }
  const parts: string[] = [];
  for (let k = from; k < to; k += 4096) {
    parts.push(String.fromCodePoint(...Array.prototype.slice.call(cps, k, Math.min(to, k + 4096)) as number[]));
  }
  return parts.join('');
}
