// Package collab is the Go client of collabd: it connects to a server over
// WebSocket (docs/PROTOCOL.md), joins documents, edits their texts locally at
// once, sends the edits in batches, applies other clients' edits, tracks
// which batches the server has applied and made durable, and reconnects with
// backoff, resyncing every document by state vector and resending what the
// server has not acknowledged as durable.
//
// # Basics
//
// Dial connects and says hello; Client.Join joins a document and returns
// once the initial sync has been applied. Document.Insert and
// Document.Delete edit a named Text root; Document.String reads it.
// Document.Changes signals remote changes. Document.Status counts batches
// not yet applied and not yet durable, and Document.WaitDurable waits until
// every local edit made so far is on the server's disk, so an app can say
// "saved" truthfully.
//
// # Offline edits and reconnects
//
// Edits never wait for the network: they apply to the local replica and
// queue a batch. Batches stay in memory until the server acks them durable.
// When the connection drops (or the server closes it with a retryable code),
// the client waits protocol.Backoff style (exponential, full jitter, never
// sooner than the server's retry-after hint), reconnects, rejoins every
// document with its state vector, applies the sync, sends its own ops the
// server lacks and resends its unacknowledged batches; the server dedupes by
// op id. A Join the server refuses with a retryable code (join rate,
// overloaded, a cluster owner not reachable yet) is sent again after the
// same backoff. A terminal code (see protocol.Code) stops the client:
// Client.Err reports it and Client.Done is closed. A terminal error about
// one document ends that document only (Document.Err).
//
// The client's agent id (Options.Agent, random by default) stays the same
// across reconnects, so its offline edits are its own ops when it comes back.
// Two live Clients must never share an agent id.
//
// # Presence
//
// Document.SetCursor shows this client's caret or selection in a text root
// to the other peers of the document, Document.ClearCursor hides it and
// Document.SetMeta attaches small application data ("typing": "1"). Indexes
// are code points in the local replica; they are sent as crdt relative
// positions, so a cursor stays on its character while others edit before
// it. A caret sticks to the character before it: it stays right after what
// its owner just typed, and text others insert at the caret lands after it.
//
// Document.Peers lists the sessions on the document, this client's own
// included (Peer.Self, Document.Self), with the identity the server stamped
// from each session's token (a client cannot set its own name) and each
// cursor resolved against the local replica at the time of the call.
// Document.PresenceChanges signals that the list changed; since cursors
// also move when the text changes, watch Document.Changes too and call
// Peers again (or re-resolve Cursor.AnchorPos and HeadPos with
// Document.Resolve). A cursor whose characters have not arrived yet is not
// Resolved until they do.
//
// The client keeps its own latest state per document and sends it at most
// every PresenceInterval (~30 a second; moves in between are coalesced, the
// latest wins and the last one is always sent), after every (re)join, and at
// least every PresenceHeartbeat while connected. When the connection drops
// the other peers are forgotten: they are unknown until the server sends the
// full presence after the rejoin. A presence refused by the server
// (Document.PresenceErr) or rate limited never ends the document; a rate
// limit holds the next send until the server's hint has passed.
//
// # Concurrency
//
// A Client owns one goroutine (the loop) that holds the connection state and
// every document's crdt.Doc: nothing else touches them, and there is no mutex
// around a document. Every public method sends a request to the loop and
// waits for the reply, so all methods of Client and Document are safe for
// concurrent use. Reading and writing the socket, and dialing, happen in
// goroutines owned by the client; they never block the loop. Close stops all
// of them and returns when they have exited. Presence sends are paced by the
// loop's own timer; the client starts no goroutine for them. Functions passed to
// Document.Edit and Document.View run on the loop: they must not call the
// Client or keep the *crdt.Doc.
package collab
