// State vector and relative position encodings (Go: statevector.go,
// relpos.go; layout in docs/FORMATS.md).

import type { StateVector } from './doc.js';
import type { Limits } from './limits.js';
import { withDefaults } from './limits.js';
import { MAX_U32 } from './ids.js';
import { Writer } from './mp.js';
import { type Assoc, AssocBefore, type RelPos } from './text.js';
import { Decoder } from './update.js';

const SV_VERSION = 1;
const RELPOS_VERSION = 1;

/** Encodes sv as [1, [agent, next, ...]], agents ascending (equal vectors, equal bytes). */
export function encodeStateVector(sv: StateVector): Uint8Array {
  const agents = [...sv.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const w = new Writer();
  w.byte(0x92);
  w.byte(SV_VERSION);
  w.arrayLen(2 * agents.length);
  for (const a of agents) {
    w.uint(a);
    w.uint(sv.get(a)!);
  }
  return w.finish();
}

/** Decodes a state vector; entries with next 0 are dropped, as in Go. */
export function decodeStateVector(b: Uint8Array, limits?: Partial<Limits>): StateVector {
  const lim = withDefaults(limits);
  const d = new Decoder(b, 'state vector');
  d.array('state vector', 2);
  d.uint('version', SV_VERSION);
  const n = d.array('entries', -1);
  if (n % 2 !== 0 || n / 2 > lim.maxAgents) throw d.fail(`${n} entries (want an even count, at most ${lim.maxAgents} pairs)`);
  const sv: StateVector = new Map();
  const seen = new Set<bigint>();
  for (let k = 0; k < n / 2; k++) {
    const a = d.agent('agent');
    const next = d.uint('next seq', MAX_U32);
    if (a === 0n) throw d.fail('agent 0 is reserved');
    if (seen.has(a)) throw d.fail(`agent ${a.toString(16)} listed twice`);
    seen.add(a);
    if (next > 0) sv.set(a, next);
  }
  try {
    d.r.done();
  } catch (e) {
    throw d.fail('after entries', e);
  }
  return sv;
}

/** Encodes p as [1, agent, seq, assoc]. */
export function encodeRelPos(p: RelPos): Uint8Array {
  const w = new Writer();
  w.byte(0x94);
  w.byte(RELPOS_VERSION);
  w.uint(p.item.agent);
  w.uint(p.item.seq);
  w.uint(p.assoc);
  return w.finish();
}

export function decodeRelPos(b: Uint8Array): RelPos {
  const d = new Decoder(b, 'relative position');
  d.array('relative position', 4);
  d.uint('version', RELPOS_VERSION);
  const agent = d.agent('agent');
  const seq = d.uint('seq', MAX_U32 - 1);
  const assoc = d.uint('assoc', AssocBefore) as Assoc;
  if (agent === 0n && seq !== 0) throw d.fail('no item but a seq');
  try {
    d.r.done();
  } catch (e) {
    throw d.fail('after relative position', e);
  }
  return { item: { agent, seq }, assoc };
}

/** Whether a has seen every op b has seen. */
export function svContains(a: StateVector, b: StateVector): boolean {
  for (const [k, n] of b) if ((a.get(k) ?? 0) < n) return false;
  return true;
}

export function svEqual(a: StateVector, b: StateVector): boolean {
  return svContains(a, b) && svContains(b, a);
}
