// Package presence keeps who is on a document and where their cursor is. It
// is pure state: no goroutines, no clock (every method that needs the time
// takes now), no I/O, and it imports nothing of the project. A document's
// owner goroutine holds one Set and is the only caller, so a Set has no lock.
//
// # Model
//
// A Set holds one Peer per session joined to the document. A Peer's identity
// (session id and User: id, display name, color) is stamped by the server
// from the session and its token when the peer joins; a client can only send
// its own cursor and metadata (State), never a name, a user id or another
// session's state, so spoofing has no field to go into.
//
// A cursor is an anchor and a head, each an encoded crdt relative position
// (crdt.EncodeRelPos) in a named root; the Set stores them as opaque bytes
// with a size bound, and receivers resolve them against their own replica, so
// a cursor stays on its character while others insert and delete before it.
// Metadata is a small string map (limits: Limits.MaxMetaKeys and
// Limits.MaxMetaBytes per peer, Limits.MaxDocBytes for the whole document).
//
// # Coalescing
//
// Changes are not sent one by one: Join, Set, Leave and Expire mark a peer
// dirty, and Flush returns one Change per dirty peer with its latest state
// (intermediate moves are dropped) or its removal. The owner flushes at a
// bounded rate (server: every 50 ms at most), so 50 peers moving at 60 Hz
// give at most 20 messages a second, each with one entry per peer that moved.
//
// # No ghost cursors
//
// Leave removes a peer at once; the server calls it when a session leaves the
// document or its connection closes. Expire is only the fallback for a
// connection that died without closing: a peer whose last heartbeat (Join,
// Set or Touch) is older than the TTL (default 30 s) is removed. The server
// Touches every peer whose connection has shown life (any frame, a pong to
// its keepalive pings) within the TTL, so an idle but connected user stays
// listed without sending presence.
//
// # Limits
//
// Every limit violation is a *LimitError naming the limit; a refused Set
// changes nothing. Limits bound what one peer holds and what the whole
// document holds, so presence can never grow a document's memory without
// bound.
package presence
