package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage/jetstream"
)

// Store is the replicated store (storage/jetstream) as the document
// owner's owner.Store: a document is loaded only under this node's lease,
// and opened for writing at the lease's epoch, so that a deposed owner's
// writes are fenced off (they fail; the owner drops its state and reloads,
// which fails while another node holds the lease).
type Store struct {
	js     *jetstream.Store
	leases *Leases
}

var _ owner.Store = (*Store)(nil)

// NewStore adapts js under leases. Both stay the caller's.
func NewStore(js *jetstream.Store, leases *Leases) *Store { return &Store{js: js, leases: leases} }

// ownerErr maps the replicated store's errors to the owner's.
func ownerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrNotFound):
		return fmt.Errorf("%w: %w", owner.ErrNotFound, err)
	case errors.Is(err, jetstream.ErrDeleted):
		return fmt.Errorf("%w: %w", owner.ErrDeleted, err)
	case errors.Is(err, jetstream.ErrCorrupt):
		return fmt.Errorf("%w: %w", owner.ErrCorrupt, err)
	case errors.Is(err, jetstream.ErrBusy):
		return fmt.Errorf("%w: %w", owner.ErrBusy, err)
	}
	return err // ErrFenced, ErrUnavailable, ErrNotOwner…: refused, retryable
}

// Load opens the document for writing at the epoch of this node's lease
// (ErrNotOwner without one).
func (s *Store) Load(ctx context.Context, doc string) (owner.Stored, error) {
	lease, ok := s.leases.Held(doc)
	if !ok {
		return owner.Stored{}, fmt.Errorf("%w: %q on %s", ErrNotOwner, doc, s.leases.Node())
	}
	st, err := s.js.Open(ctx, doc, lease.Epoch)
	if err != nil {
		return owner.Stored{LastSeq: st.LastSeq}, ownerErr(err)
	}
	tail := make([]owner.Entry, len(st.Tail))
	for i, e := range st.Tail {
		tail[i] = owner.Entry{Seq: e.Seq, Data: e.Data}
	}
	return owner.Stored{Snapshot: st.Snapshot, Tail: tail, LastSeq: st.LastSeq}, nil
}

// Submit queues an update; the Pending completes on JetStream's ack.
func (s *Store) Submit(doc string, update []byte) (owner.Pending, error) {
	p, err := s.js.Submit(doc, update)
	if err != nil {
		return nil, ownerErr(err)
	}
	return p, nil
}

// MaxUpdateBytes is the largest update stored (owner.UpdateLimiter): one
// that fills a JetStream message alone.
func (s *Store) MaxUpdateBytes() int { return s.js.MaxUpdateBytes() }

// Compact stores a snapshot through log sequence through.
func (s *Store) Compact(ctx context.Context, doc string, snapshot []byte, through uint64) error {
	return ownerErr(s.js.Compact(ctx, doc, snapshot, through))
}

// Delete queues the document's tombstone.
func (s *Store) Delete(doc string) (owner.Pending, error) {
	p, err := s.js.Delete(doc)
	if err != nil {
		return nil, ownerErr(err)
	}
	return deletePending{p}, nil
}

// deletePending is a tombstone's Pending: an already deleted document
// counts as deleted.
type deletePending struct{ p *jetstream.Pending }

func (d deletePending) Done() <-chan struct{} { return d.p.Done() }

func (d deletePending) Result() (uint64, error) {
	seq, err := d.p.Result()
	if errors.Is(err, jetstream.ErrDeleted) || errors.Is(err, jetstream.ErrNotFound) {
		err = nil
	}
	return seq, ownerErr(err)
}
