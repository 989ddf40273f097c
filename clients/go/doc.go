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
// op id. A terminal code (see protocol.Code) stops the client: Client.Err
// reports it and Client.Done is closed. A terminal error about one document
// ends that document only (Document.Err).
//
// The client's agent id (Options.Agent, random by default) stays the same
// across reconnects, so its offline edits are its own ops when it comes back.
// Two live Clients must never share an agent id.
//
// # Concurrency
//
// A Client owns one goroutine (the loop) that holds the connection state and
// every document's crdt.Doc: nothing else touches them, and there is no mutex
// around a document. Every public method sends a request to the loop and
// waits for the reply, so all methods of Client and Document are safe for
// concurrent use. Reading and writing the socket, and dialing, happen in
// goroutines owned by the client; they never block the loop. Close stops all
// of them and returns when they have exited. Functions passed to
// Document.Edit and Document.View run on the loop: they must not call the
// Client or keep the *crdt.Doc.
package collab
