// Splitting a local update into batches that fit the server's limits
// (ops per batch, bytes per frame). Go: protocol.SplitUpdate.

import { type PublicOp, decodeUpdateOps, encodeOps } from './update.js';
import { toCodePoints, fromCodePoints } from './utf16.js';

const utf8 = new TextEncoder();

/** An upper bound of an op's encoded size, in bytes. */
function opSize(o: PublicOp): number {
  return 96 + utf8.encode(o.root).length + (o.text ? o.text.length * 3 : 0);
}

/**
 * Cuts update into updates of at most maxOps ops (0: no limit) and about
 * maxBytes bytes each, in order, so that applying them in order applies each
 * without waiting. An insert too long for one piece is cut into inserts of
 * consecutive ids (item k's left origin is item k-1: the same ops).
 */
export function splitUpdate(update: Uint8Array, maxOps: number, maxBytes: number): Uint8Array[] {
  // Every op takes at least one byte: a small update is within both limits.
  if (update.length <= maxBytes && (maxOps <= 0 || update.length <= maxOps)) return [update];
  const ops = decodeUpdateOps(update, { maxOps: 1 << 30, maxInsertBytes: 1 << 30 });
  if (update.length <= maxBytes && (maxOps <= 0 || ops.length <= maxOps)) return [update];
  const out: Uint8Array[] = [];
  let cur: PublicOp[] = [];
  let size = 64;
  const flush = (): void => {
    if (cur.length > 0) out.push(encodeOps(cur));
    cur = [];
    size = 64;
  };
  const add = (o: PublicOp): void => {
    const s = opSize(o);
    if (cur.length > 0 && ((maxOps > 0 && cur.length >= maxOps) || size + s > maxBytes)) flush();
    cur.push(o);
    size += s;
  };
  for (const o of ops) {
    if (o.kind !== 'insert' || !o.text || opSize(o) <= maxBytes / 2) {
      add(o);
      continue;
    }
    const cps = toCodePoints(o.text);
    const per = Math.max(1, Math.floor((maxBytes / 2 - 96) / 4));
    for (let k = 0; k < cps.length; k += per) {
      const n = Math.min(per, cps.length - k);
      add({
        ...o,
        id: { agent: o.id.agent, seq: o.id.seq + k },
        len: n,
        text: fromCodePoints(cps, k, k + n),
        left: k === 0 ? o.left : { agent: o.id.agent, seq: o.id.seq + k - 1 },
      });
    }
  }
  flush();
  return out;
}
