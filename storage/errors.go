package storage

import (
	"errors"
	"fmt"
)

// Errors returned for a single document or request. The store stays usable.
var (
	// ErrNotFound is returned when a document has never been written.
	// Reading never creates a document.
	ErrNotFound = errors.New("storage: document not found")

	// ErrDeleted is returned for a document that was deleted. Its tombstone
	// stays, so a later load is refused instead of yielding an empty document.
	ErrDeleted = errors.New("storage: document deleted")

	// ErrExists is returned by Import when the target document exists and
	// ImportOptions.Replace is false.
	ErrExists = errors.New("storage: document already exists")

	// ErrInvalidID is returned for an empty document id, one longer than
	// MaxIDBytes, or one that is not valid UTF-8.
	ErrInvalidID = errors.New("storage: invalid document id")

	// ErrTooLarge is returned when an update, a snapshot or an import exceeds
	// its limit in Options.
	ErrTooLarge = errors.New("storage: value too large")

	// ErrRange is returned by Compact when the snapshot would cover
	// sequence numbers that were never assigned, or fewer than the current
	// snapshot already covers.
	ErrRange = errors.New("storage: sequence out of range")

	// ErrCompacted is returned by Since when the requested entries were
	// folded into the snapshot; load the document instead.
	ErrCompacted = errors.New("storage: entries compacted into the snapshot")
)

// Errors about the store as a whole.
var (
	// ErrClosed is returned by every method after Close, and by a pending
	// request that the store could not commit because it was closing.
	ErrClosed = errors.New("storage: store closed")

	// ErrQueueFull is returned by TrySubmit and SubmitDelete when the
	// committer's queue is full (Options.QueueLen requests wait already).
	ErrQueueFull = errors.New("storage: commit queue full")

	// ErrReadOnly is returned by every write on a store opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("storage: store is read-only")

	// ErrFailed is returned by every write after a commit failed (an I/O or
	// fsync error, or the file reaching Options.MaxSize). The returned error
	// also wraps the cause. The store never retries: reopen it to recover
	// (see the package doc, "Failure policy").
	ErrFailed = errors.New("storage: store failed, reopen to recover")

	// ErrLocked is returned by Open when another process holds the file lock
	// for longer than Options.LockTimeout.
	ErrLocked = errors.New("storage: database file is locked")

	// ErrFormat is returned by Open and Verify for a file that is not a
	// collabd store or has an unsupported format version.
	ErrFormat = errors.New("storage: unsupported file format")

	// ErrCorrupt is returned when stored or imported bytes fail a checksum or
	// a consistency check. Nothing is written in response to it.
	ErrCorrupt = errors.New("storage: corrupt data")
)

// DecodeError reports where an export stream or a stored record failed to
// decode. Err is ErrCorrupt or ErrTooLarge (or an I/O error from the reader).
type DecodeError struct {
	Offset int64  // byte offset in the input where the bad field starts
	Field  string // name of the field being decoded
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("storage: decode %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// rejection marks a per-request refusal decided inside the write
// transaction before the request wrote anything. The committer returns it to
// that request only; any other error aborts the whole transaction.
type rejection struct{ err error }

func (r *rejection) Error() string { return r.err.Error() }

func reject(err error) error { return &rejection{err: err} }
