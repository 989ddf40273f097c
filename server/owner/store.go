package owner

import (
	"context"
	"errors"
)

// Store is where a document lives between loads: bbolt on one node
// (server's storage adapter), a replicated log in a cluster. The owner
// never waits on it except by selecting on a Pending's Done.
type Store interface {
	// Load reads the document's snapshot and log tail. It returns an error
	// wrapping ErrNotFound for a document never written, ErrDeleted for a
	// deleted one, and anything else for a failure (corrupt or storage
	// down: the document is refused, never replaced by an empty one).
	Load(ctx context.Context, doc string) (Stored, error)
	// Submit queues an update for the document's log and returns at once;
	// the Pending completes when it is durable. A full queue is an error
	// wrapping ErrBusy, never a wait.
	Submit(doc string, update []byte) (Pending, error)
	// Compact replaces the log up to and including sequence through by
	// snapshot. It may block: the owner runs it on a goroutine of its own.
	Compact(ctx context.Context, doc string, snapshot []byte, through uint64) error
	// Delete replaces the document by a tombstone; the Pending completes
	// when that is durable (ErrNotFound and ErrDeleted count as done).
	Delete(doc string) (Pending, error)
}

// UpdateLimiter is a Store that takes updates up to a size (the
// replicated store: one record is one NATS message). The owner refuses a
// larger update before applying it (CodeFrameTooLarge), rather than apply
// an update it then cannot store, which drops the document's state for
// every session of it (and a client resending it would do so again).
type UpdateLimiter interface {
	// MaxUpdateBytes is the largest update stored (> 0).
	MaxUpdateBytes() int
}

// WholeMerger is an Engine whose Merge of another replica stores that
// replica's whole state (its Snapshot) as one update (Yjs: an update is
// not split). The owner refuses an import whose state is larger than the
// store's largest update before merging it.
type WholeMerger interface {
	MergesWhole() bool
}

// maxUpdate is s's largest update, 0 if s has no limit.
func maxUpdate(s Store) int {
	if l, ok := s.(UpdateLimiter); ok {
		return l.MaxUpdateBytes()
	}
	return 0
}

// Pending is a write on its way to disk.
type Pending interface {
	// Done is closed when the write has completed.
	Done() <-chan struct{}
	// Result is the log sequence written and the outcome (after Done).
	Result() (uint64, error)
}

// Stored is a document as loaded.
type Stored struct {
	Snapshot []byte  // nil: no snapshot yet
	Tail     []Entry // log entries after the snapshot, in order
	LastSeq  uint64  // highest durable log sequence
}

// Entry is one log entry.
type Entry struct {
	Seq  uint64
	Data []byte
}

// Store errors.
var (
	ErrNotFound = errors.New("owner: document not found")
	ErrDeleted  = errors.New("owner: document deleted")
	ErrCorrupt  = errors.New("owner: stored document corrupt")
	ErrBusy     = errors.New("owner: storage queue full")
)
