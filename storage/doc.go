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
// Reads see only committed data: a Load or Since never returns an update
// before its commit has succeeded, so nothing a reader sees can be lost by a
// crash.
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
// # Journal
//
// Appends do not go straight into the per-document logs. A commit's cost is
// dominated by the pages it dirties (each is written and then covered by the
// fsync), and appending to many documents' logs dirties about three pages per
// document: 128 updates over 500 documents cost 12 ms per commit that way on
// the reference machine. So every Append goes to the end of one store-wide
// journal bucket, keyed by a journal sequence, which dirties only its last
// few pages (1.3 ms for the same commit).
//
// The committer then moves ("migrates") journal entries into the
// per-document logs in its idle time: whenever the journal holds more than
// Options.JournalEntries entries and no request is queued, it commits a
// cleaning-only transaction that deletes dead entries at the journal's head
// and, when the head entry is live, first copies the oldest live journal
// entries of that document (at most 64) into its log, at most 512 per
// transaction; then it looks at its queue again. Acks do not wait for
// migration. Writers that leave no idle time let the journal grow; past twice
// its target, commits of requests migrate too, about twice as many entries as
// they append (at least 256), so migration keeps up; the budget grows if the
// journal runs past four times its target. Close empties the journal. A document's metadata records how far its
// own log reaches (its stored LastSeq, the "log watermark"); its journal
// entries above the watermark are its live tail and the ones at or below are
// dead. Open rebuilds the in-memory index of the journal (which entries
// belong to which document) by reading it, and refuses a journal entry that
// fails its checksum or leaves a gap in a document's sequence.
//
// A reader copies the index entries it needs, then opens its read
// transaction, then adds whatever the journal gained in between; its result
// is exactly the state of that one transaction. If a Delete or Import of the
// same document commits in between, the read starts over.
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
// and, in the same transaction, deletes those entries from the document's own
// log and moves its log watermark past the journal entries it covers (they
// are dead from then on, and deleted when they reach the journal's head). A
// crash leaves either the old snapshot and log or the new ones, and snapshot
// plus log always hold every acknowledged update. The caller decides when to compact (for example
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
// # Truncated or corrupt files
//
// bbolt maps the file and trusts its meta pages, so a truncated file would
// crash the process with SIGBUS on the first read past its end. [CheckFile]
// reads both meta pages itself (magic, version, checksum, page numbers) and
// checks that the file holds every page they say is in use; a file that
// fails is an error wrapping [ErrCorrupt] ("truncated or corrupt: …"), or
// [ErrFormat] for a file that is not bbolt at all. [Verify] requires both
// meta pages intact, then reads every reachable page with ordinary reads and
// checks its page ids and element bounds before bbolt's own page check
// touches them through the memory map, and turns a memory fault in its own
// goroutine into ErrCorrupt; [Open] runs the same check but, like bbolt after a torn write,
// accepts one damaged meta page if the other is intact. An empty file is
// corrupt, never initialised as a new store.
//
// Document ids follow one rule, [CheckID] (1 to [MaxIDBytes] bytes of UTF-8),
// checked by every write before anything is stored.
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
// # Versions
//
// [Store.SubmitVersion] and [Store.SaveVersion] store an immutable copy of a
// document (its snapshot, the document version, a label, authors, a kind)
// through the committer; [Store.Versions] lists them newest first and
// [Store.Version] reads one. Options.VersionRetention prunes automatic
// versions in the commit that adds a version (at most Options.VersionPrune
// per commit); named versions stay until the document is deleted. Delete
// and Import with Replace drop a document's versions; Compact keeps them.
//
// # On-disk layout (format 2)
//
// The file is a bbolt database with three top-level buckets:
//
//	collabd/                        store records
//	    "format" -> 0x01 or 0x02    format version; 2 once a version was written;
//	                                Open refuses anything else
//	journal/                        recent appends of all documents
//	    <gseq: 8 bytes big-endian> -> journal value
//	docs/                           one nested bucket per document, named by its id
//	    <id>/
//	        "m" -> metadata record  (always present once the document has a bucket;
//	                                 a tombstone has nothing else)
//	        "s" -> snapshot record  (present iff the metadata says so)
//	        "l"/                    the document's own log
//	            <seq: 8 bytes big-endian> -> log record
//	        "v"/                    the document's versions (format 2), bbolt
//	                                bucket sequence = last version seq given
//	            <seq: 8 bytes big-endian> -> version record (versions.go)
//
// Ids are 1 to 255 bytes of UTF-8. Sequence numbers start at 1, grow by one
// per Append and are never reused, so the log's key order is append order.
// A document's entries are: its snapshot, covering 1..SnapshotSeq; then its
// own log, holding SnapshotSeq+1 up to the stored LastSeq (the watermark)
// without a gap; then its live journal entries, watermark+1 up to the last
// sequence, without a gap. A document written only recently may exist in the
// journal alone, without a bucket.
//
// A journal value is crc32c (4 bytes), seq (8), commit time in Unix
// nanoseconds (8), id length (1), id, payload; the checksum covers the
// payload followed by bytes 4 to the end of the id.
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
// preceding 74 bytes. Its LastSeq and counts describe the snapshot and own
// log only; [DocInfo] values returned by the API add the journal tail.
// Decoders check length, version, flags, checksum and that the fields agree
// with each other (LogEntries = LastSeq - SnapshotSeq for a live document).
//
// A new file is created under path+".init", fsynced, and hard-linked to path,
// so a crash during the first initialisation never leaves a torn store.
//
// The export format is documented in export.go and docs/STORAGE.md. All
// decoders of stored or imported bytes treat them as hostile: every length is
// checked against a limit before allocating, and they are fuzzed.
package storage
