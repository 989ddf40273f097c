/** Bounds on what a document accepts from decoded input (Go: crdt.Limits). */
export interface Limits {
  maxOps: number; // ops in one update
  maxAgents: number; // agents in one update or document
  maxRoots: number; // named roots in one update or document
  maxRootName: number; // bytes in a root name
  maxItems: number; // items (visible and deleted code points) per document
  maxPending: number; // ops waiting for their causal dependencies
  maxSnapshot: number; // bytes of an uncompressed snapshot body: the document size
  maxInsertBytes: number; // bytes of text in one insert op
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxOps: 1 << 20,
  maxAgents: 1 << 16,
  maxRoots: 256,
  maxRootName: 256,
  maxItems: 1 << 28,
  maxPending: 4096,
  maxSnapshot: 256 << 20,
  maxInsertBytes: 1 << 24,
});

/**
 * Fills fields that are absent or <= 0 with the defaults. Field by field,
 * not a spread and a loop over the keys: decoders call it for every update
 * (decodeUpdateOps for every fanned-out update a subscriber reads). Without
 * l it is DEFAULT_LIMITS itself (frozen: no caller writes to its limits).
 */
export function withDefaults(l?: Partial<Limits>): Limits {
  const d = DEFAULT_LIMITS;
  if (!l) return d as Limits;
  return {
    maxOps: pick(l.maxOps, d.maxOps),
    maxAgents: pick(l.maxAgents, d.maxAgents),
    maxRoots: pick(l.maxRoots, d.maxRoots),
    maxRootName: pick(l.maxRootName, d.maxRootName),
    maxItems: pick(l.maxItems, d.maxItems),
    maxPending: pick(l.maxPending, d.maxPending),
    maxSnapshot: pick(l.maxSnapshot, d.maxSnapshot),
    maxInsertBytes: pick(l.maxInsertBytes, d.maxInsertBytes),
  };
}

function pick(v: unknown, def: number): number {
  return typeof v === 'number' && v > 0 ? v : def;
}
