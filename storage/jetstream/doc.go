// Package jetstream is collabd's replicated document store for cluster
// mode (issue 15, docs/CLUSTER.md): a second implementation, beside the
// bbolt store, of what the document owner needs (server/owner.Store, which
// server/cluster adapts it to). It stores opaque bytes and imports nothing
// of the project.
//
// # Layout
//
// One stream, "<Prefix>_ops", holds every document's log, one subject per
// document: "<Prefix>.ops.<token>", token being the document id in
// unpadded base64url, so ids with any bytes make one valid token. Each
// message is a record (record.go: versioned, every length checked):
// updates, a fence, a snapshot pointer or a tombstone, stamped with the
// writer's fencing epoch. Snapshots are objects of the object store
// "<Prefix>_snapshots", named "<token>.<epoch>.<through>" (chunked by the
// object store, digest-checked on read, capped by MaxSnapshotBytes).
//
// # Fencing
//
// A writer is established by Open(ctx, doc, epoch), epoch being the
// revision of the caller's lease. Open appends a fence record, then reads
// the log. Every later append of that writer expects the subject's last
// sequence (JetStream's Nats-Expected-Last-Subject-Sequence), so once a
// new writer's fence is in the log, a deposed writer's appends are refused
// (ErrFenced): nothing it submits after the fence is stored, and nothing
// acked to it is lost (it is before the fence, and the new writer read it).
//
// # Writes
//
// Submit never blocks: it queues the update on the document's writer; one
// goroutine per document with queued writes publishes them as records,
// one record in flight per document (the next must expect its sequence),
// grouping what queued meanwhile (group commit). A Pending completes on
// JetStream's publish ack, that is once a quorum of the stream's replicas
// stored the record. Queues are bounded (MaxQueueBytes, MaxActiveDocs):
// past them Submit returns ErrBusy.
//
// Compact writes the snapshot object, appends a snapshot record (fenced
// like any append), purges the subject up to the snapshot's sequence and
// deletes the snapshot it replaced. Load returns the latest snapshot and
// the updates after it. Delete appends a tombstone, then purges the log
// and the snapshot; the document then loads as ErrDeleted.
//
// A Store's methods are safe for concurrent use; Close waits for its
// goroutines. The nats.Conn stays the caller's.
package jetstream
