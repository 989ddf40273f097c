// Package yjs reads and writes the messages of the y-websocket protocol as
// y-protocols defines them, the wire every Yjs provider speaks: sync
// (step 1: a state vector; step 2 and update: a Yjs update), awareness (a
// list of client states as JSON), auth (permission denied with a reason)
// and query awareness. It is the codec under collabd's Yjs doors; the
// updates and state vectors it carries are decoded by crdt/yjs.
//
// Every message is one WebSocket binary frame:
//
//	message   = varUint type, body
//	sync      = varUint subtype (0 step 1, 1 step 2, 2 update), varUint8Array payload
//	awareness = varUint8Array awareness update
//	auth      = varUint 0 (permission denied), varString reason
//	query     = (nothing)
//	awareness update = varUint n, n × (varUint client, varUint clock, varString state JSON)
//
// with lib0's encodings (unsigned LEB128 up to 2^53-1, length-prefixed byte
// arrays and UTF-8 strings).
//
// # Hostile input
//
// Decode checks every declared length against the bytes that remain
// before it slices or allocates, refuses varUints past 2^53-1 (as lib0
// does), invalid UTF-8 and invalid JSON states, unknown message types and
// trailing bytes after a message (y-websocket ignores them; collabd answers
// them with a clear error rather than guess). Payloads are views into the
// input, not copies. Limits bounds the frame, the awareness entries and the
// bytes of one state; errors are a *DecodeError wrapping ErrMalformed or
// ErrTooLarge. FuzzDecode and FuzzDecodeAwareness cover both decoders with
// seed corpora made by y-protocols.
//
// # Oracle
//
// testdata/golden.json is written by interop/yjs/protocol.mjs with the
// real y-protocols and lib0 packages: every message kind, empty and large
// payloads, awareness updates with removals (state null) and non-ASCII
// states. The tests decode each and re-encode it byte for byte.
package yjs
