// collabd JavaScript client, first slice: the collabd CRDT (Go package
// crdt) ported to TypeScript, wire- and storage-compatible with it.

export { Doc, type DocOptions, type StateVector } from './doc.js';
export { Text, type RelPos, type Assoc, type Change, AssocAfter, AssocBefore, inRange } from './text.js';
export { type AgentID, type ID, newAgentID } from './ids.js';
export { type Limits, DEFAULT_LIMITS } from './limits.js';
export { DecodeError, CrdtError, type CrdtErrorCode } from './errors.js';
export { type Compression, encodeSnapshotBody } from './snapshot.js';
export { type PublicOp, decodeUpdateOps, encodeOps, insertedText, utf8CodePoints } from './update.js';
export { encodeStateVector, decodeStateVector, encodeRelPos, decodeRelPos, svContains, svEqual } from './encoding.js';
export { codePointLength, codePointToUtf16, utf16ToCodePoint, toCodePoints } from './utf16.js';
export { lz4Compress, lz4Decompress, lz4DecompressedLength } from './lz4.js';
// The network client (docs/PROTOCOL.md).
export { Client, type ClientOptions, type TransportMode, type ClientEvents, type ConnectionStatus, ClosedError, CLIENT_NAME } from './client.js';
export { Document, type DocStatus, type DocumentEvents, type ChangeEvent, type BroadcastMessage, LeftError } from './document.js';
export { type Peer, type Cursor } from './peers.js';
export { type Transport, type TransportEvents, type TransportFactory, type WebSocketConstructor, type WebSocketLike, webSocketTransport } from './transport.js';
export { fallbackTransport, fallbackURL, type FallbackOptions, type FetchLike } from './fallback.js';
export { type Frame, type ServerLimits, type WirePeer, type WireMoved, type U64, FrameType, FrameError, encodeFrame, decodeFrame, PROTOCOL_VERSION, AckApplied, AckDurable, AckRejected } from './frames.js';
export { Code, ServerError, isRetryCode, backoffDelay, type BackoffOptions, BACKOFF_BASE_MS, BACKOFF_MAX_MS } from './codes.js';
export { splitUpdate } from './split.js';
export { History, httpAPI, httpBase, type API, type Version, type VersionPage, type Diff, type Splice, type RestoreResult } from './versions.js';
export { type Persistence, type StoredDoc, type IndexedDBOptions, indexedDBPersistence } from './persist.js';
export { PRESENCE_INTERVAL_MS, PRESENCE_HEARTBEAT_MS } from './presence.js';
