// Package yjs is a pure Go engine for Yjs documents: it decodes, integrates,
// diffs and encodes Yjs updates the way the JavaScript yjs package (13.6.x)
// does, so that collabd can hold the documents of Yjs editor bindings
// (y-prosemirror/TipTap, y-codemirror, y-monaco, y-quill, …) natively.
//
// The package does no I/O, starts no goroutines and imports nothing of the
// project. A *Doc is not safe for concurrent use: one owner goroutine holds
// it (collabd's document owner), and every call runs to completion.
//
// # Model
//
// A document is Yjs's struct store: for every client id, its structs in
// clock order (items, and GC structs for garbage-collected ranges), kept in
// blocks of at most 2×128 so that splitting an item costs O(block) and
// finding the struct holding a clock is a binary search (Yjs's StructStore
// and findIndexSS). Root types are found by name; a root that no view has
// asked for keeps an unknown kind, as in Yjs. Items of a sequence (Text,
// Array, XmlFragment, XmlElement children) are a linked list in their
// parent; map entries (Map, XmlElement attributes) are chains per key whose
// rightmost item is the value.
//
// Integration is Yjs's: Item.getMissing then Item.integrate, with the YATA
// conflict loop (origin/rightOrigin, itemsBeforeOrigin/conflictingItems),
// item splitting at the referenced clocks (a surrogate pair cut in half
// becomes two U+FFFD, as ContentString.splice does), map overwrite,
// deletion of items whose parent type is deleted, and the end of a
// transaction: deleted content replaced by ContentDeleted, the children of
// deleted types turned into GC structs (doc.gc = true), neighbouring structs
// merged as tryToMergeWithLefts merges them. With the same updates Go
// encodes a document byte for byte as Yjs's encodeStateAsUpdate does (the
// golden and trace tests check it).
//
// Structs whose dependencies are missing wait in a pending buffer, and
// deletes of clocks not yet known wait in a pending delete set. Which
// structs wait, and when they are retried, follows Yjs step by step
// (integrateStructs' dependency walk and the clocks it records as missing,
// mergeUpdates' merge of pending and new structs), so a document holds what
// a Yjs document fed the same updates in the same order holds, also while
// structs wait. EncodeState and Diff carry pending structs (with Skip
// structs over the gaps) and pending deletes, as Yjs's encodeStateAsUpdate does.
//
// # Supported
//
//   - Update formats v1 (Apply, EncodeState, Diff) and v2 (ApplyV2,
//     EncodeStateV2, ConvertV1ToV2, ConvertV2ToV1), every struct (GC, Skip,
//     Item) and content (Deleted, JSON, Binary, String, Embed, Format, Type
//     with every type ref incl. XmlElement names and XmlHook, Any, Doc),
//     delete sets, state vectors, the lib0 encodings. Subdocuments are kept
//     as opaque ContentDoc items (guid and options); they are not loaded.
//   - Views: Text (Y.Text#toString), TextDelta (Y.Text#toDelta as JSON),
//     JSON (Y.Map/Y.Array#toJSON, Y.Text as its string, XML types as their
//     XML string, as Yjs's toJSON gives them), ProseMirrorJSON (an
//     XmlFragment as y-prosemirror/TipTap read it; the schema's mark order
//     is a parameter, attribute defaults are not filled in).
//   - Changes: Observe(root) makes every Apply report the change it made to
//     that Y.Text as a delta (ApplyResult.Changes; retain/insert/delete with
//     attributes, exactly Yjs's YTextEvent.delta), so feeds and webhooks
//     can send what changed instead of the whole text; for Map, Array and
//     XML roots the change is their new JSON (ApplyResult.Roots names
//     them). A change since an arbitrary earlier state is not offered:
//     like Yjs with gc on, the document drops deleted content, so the
//     change is taken per applied update and composed by the reader.
//   - Server-side edits as a server client id: InsertText, DeleteText,
//     SetMap, DeleteMap. Each returns the update a Yjs document loaded with
//     the same state makes for the same call (byte for byte, search-marker
//     positions and formatting-gap cleanup included). A cached position
//     makes consecutive nearby edits O(distance), as Yjs's search markers do.
//
// After a remote update that touched a Y.Text or Y.XmlText with formatting,
// a Yjs document deletes the format marks the update made redundant, in a
// transaction of its own whose update it broadcasts
// (cleanupYTextAfterTransaction). So does this engine: ApplyResult.Cleanup
// carries that update. As in a Yjs server that never calls doc.getText, a
// root type's kind is unknown, so only nested texts (XmlText in an
// XmlFragment, Y.Text inside a map or array) are cleaned.
//
//   - MergeUpdates and DiffUpdate work on encoded v1 updates without a
//     document, byte for byte as Yjs's mergeUpdates and diffUpdate (for
//     batching fan-out, and for answering a sync step 1 from a stored
//     update without loading it).
//
// Not done: relative positions, subdocument loading.
//
// # Invariants
//
//   - Apply is all or nothing: a malformed update (ErrMalformed in a
//     *DecodeError), one over a limit (ErrTooLarge) or one that would
//     overfill the pending buffer (ErrPendingFull) leaves the document
//     unchanged. The whole update is decoded and every dependency decision
//     is planned on the state vector before anything changes.
//   - Decoders treat input as hostile: every declared length is checked
//     against the remaining input and the Limits before anything is
//     allocated; varUints over 2^53-1, invalid UTF-8, invalid JSON, unknown
//     content or type refs, zero-length structs and items referring to their
//     own client's future are rejected. Fuzz targets cover v1 decoding,
//     apply (with split input), state vectors and delete sets.
//   - Lengths and positions count UTF-16 code units, as Yjs does.
//
// # Limits
//
// Limits bounds update bytes, structs per update (and, for v2 whose
// run-length columns let few bytes declare many structs, 32 per input
// byte), pending structs and deletes, clients, nesting depth of Any values
// and of views, document content bytes, string bytes and collection sizes;
// a zero field means the documented default. Type nesting in the document
// itself is not bounded (Yjs does not bound it); views stop at MaxDepth.
//
// # Oracle
//
// interop/yjs holds the pinned yjs, lib0 and y-prosemirror packages and the
// Node scripts the tests run against them: golden vectors (golden.mjs →
// testdata/golden), seeded random multi-client histories (histories.mjs;
// Go applies them in order, shuffled with duplicates and mergeUpdates
// batches, as a random subset, and from Yjs's state in v1 and v2, and
// verify.mjs loads Go's states and diffs back into Yjs and compares them
// with Yjs fed the same sequence), server edits (edits.mjs), ProseMirror
// documents read back by y-prosemirror (prosemirror.mjs), text change
// deltas as a Yjs observer sees them (changes.mjs) and the trace
// updates of the benchmarks (traces.mjs). The reference for a history is a
// server's view: a Yjs document receiving each update in a transaction of
// its own (Yjs replicas themselves may end with different formatting
// cleanups, which depend on the order they received updates in). `make yjs-oracle` installs them
// and runs these tests.
package yjs
