// Ids and internal references.
//
// An agent is a 64-bit unsigned integer (a bigint here; 0n is "no agent").
// Inside a document an item or op is named by a Ref: the index of its agent in
// the document's agent table and its seq, packed as a * 2^32 + s into one
// number (exact: agent indexes stay below 2^21), so refs compare with ===.

export type AgentID = bigint;

export const TWO32 = 4294967296;
export const MAX_U32 = 0xffffffff;
export const MAX_U64 = 0xffffffffffffffffn;

/** An internal id; NONE is the start or end of a text. */
export type Ref = number;
export const NONE: Ref = -1;

export const mkRef = (a: number, s: number): Ref => a * TWO32 + s;
export const refA = (r: Ref): number => Math.floor(r / TWO32);
export const refS = (r: Ref): number => r % TWO32;

/** A public id: the seq-th op of agent; agent 0n means none. */
export interface ID {
  agent: AgentID;
  seq: number;
}

export const NONE_ID: ID = Object.freeze({ agent: 0n, seq: 0 }) as ID;

export function idEqual(x: ID, y: ID): boolean {
  return x.agent === y.agent && x.seq === y.seq;
}

/** Converts an agent given as bigint, safe integer or decimal string. */
export function toAgent(a: bigint | number | string): AgentID {
  const v = typeof a === 'bigint' ? a : BigInt(a);
  if (typeof a === 'number' && !Number.isSafeInteger(a)) {
    throw new RangeError('crdt: agent given as a number must be a safe integer; use a bigint');
  }
  if (v < 0n || v > MAX_U64) throw new RangeError('crdt: agent out of the uint64 range');
  return v;
}

/** A random non-zero agent id. */
export function newAgentID(): AgentID {
  const b = new Uint32Array(2);
  for (;;) {
    globalThis.crypto.getRandomValues(b);
    const a = (BigInt(b[0]!) << 32n) | BigInt(b[1]!);
    if (a !== 0n) return a;
  }
}
