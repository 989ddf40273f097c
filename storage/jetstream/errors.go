package jetstream

import (
	"errors"
	"fmt"
)

// Errors. The owner's adapter (server/cluster) maps them to the owner's
// Store errors.
var (
	// Returned by Load and Open.
	ErrNotFound = errors.New("jetstream: document not found")
	ErrDeleted  = errors.New("jetstream: document deleted")
	ErrCorrupt  = errors.New("jetstream: stored document corrupt")
	ErrTooLarge = errors.New("jetstream: document or record too large")

	// Returned by Submit, Delete and Compact, or by their Pending.

	// ErrFenced: another writer appended to the document's subject (a newer
	// owner, or one this writer cannot account for): this writer may not
	// append any more. Retryable elsewhere: the document's owner reloads
	// it (Open) and clients resync; nothing this writer had not been acked
	// for is in the log after the fence.
	ErrFenced = errors.New("jetstream: writer fenced off (another owner appended)")
	// ErrBusy: the queue of unpublished updates or of documents with a
	// publish in flight is full. Retry later; never a wait.
	ErrBusy = errors.New("jetstream: publish queue full")
	// ErrNotOpen: Submit, Delete or Compact on a document this Store has not
	// opened (Open) as its writer.
	ErrNotOpen = errors.New("jetstream: document not open for writing")
	// ErrUnavailable: JetStream did not confirm the write (timeout, no
	// quorum, connection lost). The write is not acked; it may still have
	// landed (a later Load shows it), so resending it must be idempotent,
	// as CRDT updates are.
	ErrUnavailable = errors.New("jetstream: write not confirmed")
	// ErrClosed: the Store is closed.
	ErrClosed = errors.New("jetstream: store closed")
)

// DecodeError is a record that could not be decoded: where and why.
type DecodeError struct {
	Offset int    // byte offset in the record
	Field  string // what was being read
	Err    error  // ErrCorrupt, wrapped with the reason
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("jetstream: record: %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }
