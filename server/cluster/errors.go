package cluster

import (
	"errors"
	"fmt"
)

// Errors.
var (
	// ErrHeld: another node holds the lease (errors.As gives *HeldError).
	ErrHeld = errors.New("cluster: lease held by another node")
	// ErrLeaseLost: a lease could not be renewed in time, or was taken
	// over (Lease.Err).
	ErrLeaseLost = errors.New("cluster: lease lost")
	// ErrReleased: the lease was released (Lease.Err).
	ErrReleased = errors.New("cluster: lease released")
	// ErrNotOwner: this node does not hold the document's lease.
	ErrNotOwner = errors.New("cluster: not the document's owner (no lease)")
	// ErrClosed: the Leases or Members is closed.
	ErrClosed = errors.New("cluster: closed")
)

// HeldError names a lease's holder.
type HeldError struct {
	Doc      string
	Holder   string // node id
	Revision uint64 // the lease's current revision (its last renewal)
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("cluster: lease of %q held by %s (revision %d)", e.Doc, e.Holder, e.Revision)
}

func (e *HeldError) Unwrap() error { return ErrHeld }
