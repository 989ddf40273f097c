// Package storage keeps collabd's documents durable in one bbolt file: per
// document an append-only log of updates, the latest snapshot, and metadata.
// It stores opaque bytes (updates and snapshots encoded by the caller) and
// imports nothing of the project.
//
// # Types
//
// There is one main type, [Store], opened with [Open] and closed with
// [Store.Close]. Writes are [Store.Append] (or [Store.Submit], which returns a
// [Pending]), [Store.Compact], [Store.Delete] and [Store.Import]. Reads are
// [Store.Load], [Store.Since], [Store.Stat], [Store.List], [Store.Stats],
// [Store.Export] and [Store.Backup]. [Verify] checks a copy of the file.
//
// # Durability promise
//
// Append returns a sequence number and a nil error only after the bbolt
// transaction holding the update has committed: bbolt has written and
// fdatasynced the data pages, then written and fdatasynced the new meta page.
// From then on the update survives kill -9 of the process. It survives power
// loss too if the disk honours flushes (a virtual or consumer disk with a
// volatile write cache may not). Options has no switch that turns fsync off.
//
// An Append that returns an error was not committed, except when the error
// is its ctx's: then the update may or may not be stored, as for a timed-out
// request in etcd. Callers must therefore make replays harmless; CRDT updates
// with unique ids are.
//
// # Group commit
//
// One committer goroutine, owned by the Store, is the only writer. It takes
// the first queued request, adds every request already queued (up to
// Options.MaxBatchOps and Options.MaxBatchBytes), applies them in one
// read-write transaction, commits, and only then completes them. There is no
// batching window: a lone writer commits at once, and whatever arrives while
// a commit is in flight (one fsync pair, about 0.5 ms on this project's
// reference machine) forms the next batch. Throughput therefore grows with
// the number of concurrent writers at no cost to a lone writer's latency.
// Compact, Delete and Import go through the same committer, so all writes
// are totally ordered. Updates submitted one after another by one goroutine
// (a document owner) get increasing sequence numbers in that order.
//
// A document owner must not block on storage: it calls Submit, keeps the
// Pending, and selects on [Pending.Done] next to its other inputs to learn
// when to send the "durable" ack. Submit blocks only while Options.QueueLen
// requests are already waiting.
//
// # Failure policy
//
// A request that is invalid for its document (ErrDeleted, ErrNotFound,
// ErrRange, ErrExists, ErrCorrupt metadata) is refused on its own, before it
// writes anything, and the rest of its batch commits. A failed commit is
// different: bbolt rolls the transaction back, every request in the batch
// fails with an error wrapping [ErrFailed] and the cause, and the store
// fails: every queued and later write gets the same error, and [Store.Err]
// reports it. The store does not retry. After an fsync error Linux may have
// dropped the dirty pages and a retry could "succeed" without the data
// (PostgreSQL's fsyncgate), so the only safe recovery is to reopen the file,
// which reads what is really on disk. Reads keep working on a failed store.
// The file reaching Options.MaxSize (disk full) is handled the same way;
// reopen with a larger MaxSize, or after freeing space, to continue.
//
// # Compaction
//
// [Store.Compact] stores a snapshot that covers every entry up to a sequence
// and deletes those entries in the same transaction, so a crash leaves either
// the old snapshot and log or the new ones, and snapshot plus log always hold
// every acknowledged update. The caller decides when to compact (for example
// when Stat reports a long LogEntries) and promises that the snapshot
// contains every entry it claims to cover.
//
// # Deletion
//
// [Store.Delete] keeps a tombstone: Load and Append then return ErrDeleted
// and never a fresh empty document. Import with Replace restores the id.
//
// # Backup and restore
//
// [Store.Backup] streams a consistent copy of the whole file (bbolt
// Tx.WriteTo in one read transaction) while writes continue;
// [Store.BackupFile] writes it atomically to a path. [Store.Export] and
// [Store.Import] move one document in a self-checking format. [Verify] opens a
// copy read-only and runs bbolt's page check and a full load of every
// document.
//
// # Concurrency and lifetime
//
// A Store is safe for concurrent use. Reads run in their own bbolt read
// transactions in the caller's goroutine, concurrently with the committer;
// each sees one committed state. Every method that can block takes a
// context. Close stops accepting writes, lets the committer commit what is
// queued, waits for it to exit and for open read transactions to end, and
// closes the file. The Store starts no other goroutines.
//
// Byte slices passed in are copied before the call returns; byte slices
// returned belong to the caller.
//
// # On-disk layout (format 1)
//
// The file is a bbolt database with two top-level buckets:
//
//	collabd/                        store records
//	    "format" -> 0x01            format version; Open refuses anything else
//	docs/                           one nested bucket per document, named by its id
//	    <id>/
//	        "m" -> metadata record  (always present; a tombstone has nothing else)
//	        "s" -> snapshot record  (present iff the metadata says so)
//	        "l"/                    the log
//	            <seq: 8 bytes big-endian> -> log record
//
// Ids are 1 to 255 bytes of UTF-8. Sequence numbers start at 1, grow by one
// per Append and are never reused, so the log's key order is append order.
//
// A log or snapshot record is crc32c(payload || seq) as 4 big-endian bytes,
// followed by the payload; seq is the entry's sequence, or for the snapshot
// the last sequence it covers. Binding seq into the checksum also catches a
// record stored under the wrong key.
//
// The metadata record is 78 bytes: version (1), flags (bit 0 deleted, bit 1
// has snapshot), nine big-endian 8-byte fields (created, updated and deleted
// times in Unix nanoseconds with 0 meaning unset, LastSeq, SnapshotSeq,
// SnapshotBytes, LogEntries, LogBytes, Compactions), and the crc32c of the
// preceding 74 bytes. Decoders check length, version, flags, checksum and
// that the fields agree with each other.
//
// A new file is created under path+".init", fsynced, and hard-linked to path,
// so a crash during the first initialisation never leaves a torn store.
//
// The export format is documented in export.go and docs/STORAGE.md. All
// decoders of stored or imported bytes treat them as hostile: every length is
// checked against a limit before allocating, and they are fuzzed.
package storage
