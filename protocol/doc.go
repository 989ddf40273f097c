// Package protocol is collabd's wire contract, shared by the server and every
// client: the frames exchanged over a WebSocket, their msgpack layouts, the
// error and close codes, and the limits. docs/PROTOCOL.md is its prose twin,
// complete enough to write a client in another language; keep them in step.
//
// # Frames
//
// Every WebSocket message is one binary frame holding one msgpack array whose
// first element is a Type. A Message is one decoded frame: *Hello, *Welcome,
// *Join, *Sync, *Update, *Ack, *Leave, *Error, *Ping, *Pong or *Refresh.
// Encode and AppendEncode write a frame; Decode reads one. The crdt updates
// and state vectors that frames carry are specified in docs/FORMATS.md and
// travel as msgpack bin values; Decode does not look inside updates (the
// document's owner does, when applying them).
//
// # Hostile input
//
// Decode treats its input as hostile. It reads with package internal/mp,
// which checks every declared length against the bytes that remain, never
// uses reflection and never decodes into interface{}; it checks the frame
// size, string sizes, agent counts and document ids against DecodeLimits
// before keeping anything, so it allocates in proportion to its input. It
// refuses a frame whole, with a *DecodeError wrapping one of the Err*
// sentinels, for: truncation, trailing bytes, unknown types (the presence
// range 32–63 included, for now), wrong field counts, wrong field types or
// values, bad document ids, limits, and a foreign protocol version.
//
// # Codes
//
// Code is one table of stable numbers, used both in Error frames and as
// WebSocket close codes: 4000–4499 "retry and resync" (reconnect or rejoin
// with Backoff, never sooner than the server's retry-after hint), 4500–4999
// terminal (do not retry without a change). Code.Retry and the range decide
// for codes a client does not know.
//
// # Chunks
//
// A Sync frame carries at most MaxChunk bytes of update. SplitUpdate and
// ChunkUpdate cut a big update into several complete updates (not byte
// ranges), so a client applies each Sync chunk as it arrives.
//
// # Concurrency
//
// The package has no state: every function may be called from any goroutine.
// A decoded message's byte fields alias the input; its strings are copies.
package protocol
