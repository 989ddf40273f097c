package storage

import (
	"errors"
	"log/slog"
	"time"
)

// MaxIDBytes is the longest document id, in bytes.
const MaxIDBytes = 255

// Options configures Open. The zero value is a safe, durable configuration:
// every zero field means the default written in its comment. There is no
// option that turns fsync off.
type Options struct {
	// ReadOnly opens the file with a shared lock. Every write returns
	// ErrReadOnly and no committer goroutine is started.
	ReadOnly bool

	// LockTimeout is how long Open waits for a file lock held by another
	// process before returning ErrLocked. Zero means 5s.
	LockTimeout time.Duration

	// InitialMmapSize is the initial size of the memory map, in bytes. While
	// the file fits in it, long read transactions (backups, exports) never
	// block the committer on a remap. Zero means 256 MiB (address space
	// only; no memory or disk is used for it).
	InitialMmapSize int

	// MaxSize caps the database file, in bytes. A commit that would grow the
	// file past it fails with bbolt's ErrMaxSizeReached and the store fails
	// (ErrFailed) like on any other commit error; reopen with a larger
	// MaxSize, or after freeing space, to continue. Zero means no limit.
	MaxSize int

	// MaxBatchOps is the most requests one commit holds. Zero means 1024.
	MaxBatchOps int

	// MaxBatchBytes stops adding requests to a commit once their payloads
	// reach this many bytes (a single larger request still commits alone).
	// Zero means 16 MiB.
	MaxBatchBytes int

	// QueueLen is how many submitted requests may wait for the committer
	// before Submit blocks (until its ctx ends). Zero means 4096.
	QueueLen int

	// JournalEntries is the journal size, in entries, above which the
	// committer moves entries into the per-document logs in its idle time
	// (and in commits of requests past twice this size; see doc.go,
	// "Journal"). A larger journal makes that cheaper per entry, when
	// many documents are written at once, and makes Open slower (Open reads
	// the whole journal; Close empties it). Zero means 65536.
	JournalEntries int

	// MaxUpdateBytes is the largest update Append accepts. Zero means 8 MiB.
	MaxUpdateBytes int

	// MaxSnapshotBytes is the largest snapshot Compact and Import accept.
	// Zero means 256 MiB.
	MaxSnapshotBytes int

	// MaxImportBytes is the largest export stream Import reads. Zero means
	// 1 GiB.
	MaxImportBytes int64

	// VersionRetention decides which automatic versions are pruned (see
	// Retention); the zero value keeps every version. VersionPrune bounds
	// the versions one commit deletes. Zero means 256.
	VersionRetention Retention
	VersionPrune     int

	// Now returns the time stamped on documents (created, updated,
	// deleted). Nil means time.Now.
	Now func() time.Time

	// Logger receives one error record when the store fails. Nil means no
	// logging.
	Logger *slog.Logger
}

// withDefaults returns o with every zero field replaced by its default.
func (o Options) withDefaults() (Options, error) {
	if o.LockTimeout < 0 || o.InitialMmapSize < 0 || o.MaxSize < 0 || o.MaxBatchOps < 0 ||
		o.MaxBatchBytes < 0 || o.QueueLen < 0 || o.JournalEntries < 0 || o.MaxUpdateBytes < 0 ||
		o.MaxSnapshotBytes < 0 || o.MaxImportBytes < 0 || o.VersionPrune < 0 ||
		o.VersionRetention.All < 0 || o.VersionRetention.Daily < 0 {
		return o, errors.New("storage: negative value in Options")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Second
	}
	def(&o.InitialMmapSize, 256<<20)
	def(&o.MaxBatchOps, 1024)
	def(&o.MaxBatchBytes, 16<<20)
	def(&o.QueueLen, 4096)
	def(&o.JournalEntries, 1<<16)
	def(&o.MaxUpdateBytes, 8<<20)
	def(&o.MaxSnapshotBytes, 256<<20)
	def(&o.VersionPrune, 256)
	if o.MaxImportBytes == 0 {
		o.MaxImportBytes = 1 << 30
	}
	// bbolt refuses values past MaxValueSize (2^31-2); keep every record under it.
	const maxValue = 1<<31 - 64
	if o.MaxUpdateBytes > maxValue || o.MaxSnapshotBytes > maxValue {
		return o, errors.New("storage: MaxUpdateBytes and MaxSnapshotBytes must be below 2 GiB")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
