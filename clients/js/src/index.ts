// collabd JavaScript client, first slice: the collabd CRDT (Go package
// crdt) ported to TypeScript, wire- and storage-compatible with it.

export { Doc, type DocOptions, type StateVector } from './doc.js';
export { Text, type RelPos, type Assoc, AssocAfter, AssocBefore } from './text.js';
export { type AgentID, type ID, newAgentID } from './ids.js';
export { type Limits, DEFAULT_LIMITS } from './limits.js';
export { DecodeError, CrdtError, type CrdtErrorCode } from './errors.js';
export { type Compression, encodeSnapshotBody } from './snapshot.js';
export { type PublicOp, decodeUpdateOps, encodeOps } from './update.js';
export { encodeStateVector, decodeStateVector, encodeRelPos, decodeRelPos, svContains, svEqual } from './encoding.js';
export { codePointLength, codePointToUtf16, utf16ToCodePoint, toCodePoints } from './utf16.js';
export { lz4Compress, lz4Decompress } from './lz4.js';
