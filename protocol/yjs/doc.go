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
// # Hocuspocus
//
// DecodeHocuspocus and AppendHocuspocus read and write the Hocuspocus
// framing (@hocuspocus/provider 4.x): every frame starts with the
// document's name (optionally "\x00" and a session id, for several
// providers of one document on one socket), then a type — the y-protocols
// sync, awareness and query-awareness bodies, Hocuspocus's own auth (token
// with the provider's version, "send your token", permission denied with a
// reason, authenticated with a scope), stateless payloads, close (with a
// reason from a server), sync status (a lib0 varInt, 1 when the server
// stored the client's update) — except Ping and Pong, which are bare
// one-byte frames.
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
// ErrTooLarge. FuzzDecode, FuzzDecodeAwareness and FuzzDecodeHocuspocus cover the decoders with
// seed corpora made by y-protocols.
//
// testdata/hocuspocus.json is written by interop/yjs/hocuspocus.mjs: a
// real HocuspocusProvider runs over a fake WebSocket; every frame it sends
// is captured, and every frame a server would send is fed to it with what
// the provider made of it (authenticated scope, stateless payload, denial
// reason, text after a sync). TestHocuspocusFrames decodes each and
// re-encodes it byte for byte; TestHocuspocusFreshYjs reruns the script.
//
// # Awareness
//
// Awareness is the per-document awareness a y-websocket server holds: it
// merges client updates by y-protocols' clock rules, reports the clients
// added, updated and removed (what the server re-broadcasts, Encode), gives
// a joiner every state, and removes clients whose connection closed or
// whose state went quiet for OutdatedTimeout (30 s). It is pure state for
// the document's owner goroutine: the time is an argument. MaxAwareness
// bounds the clients it holds; the clocks of removed clients are forgotten
// OutdatedTimeout after their removal, so its tables stay bounded.
//
// # Oracle
//
// testdata/golden.json is written by interop/yjs/protocol.mjs with the
// real y-protocols and lib0 packages: every message kind, empty and large
// payloads, awareness updates with removals (state null) and non-ASCII
// states. The tests decode each and re-encode it byte for byte.
// interop/yjs/awareness.mjs runs random awareness histories (drops,
// duplicates, reordering, merged updates, server-side removals) through
// y-protocols' Awareness held as y-websocket's server holds it;
// TestAwarenessYjs checks every re-broadcast and the final full state
// byte for byte (200 cases in make test; YJS_AWARENESS_CASES and
// YJS_AWARENESS_SEED for long runs).
package yjs
