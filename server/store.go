package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// ownerStore is the bbolt store as the owners' owner.Store.
type ownerStore struct{ s *storage.Store }

var _ owner.Store = ownerStore{}

// storeErr maps storage errors to the owner's.
func storeErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %w", owner.ErrNotFound, err)
	case errors.Is(err, storage.ErrDeleted):
		return fmt.Errorf("%w: %w", owner.ErrDeleted, err)
	case errors.Is(err, storage.ErrCorrupt):
		return fmt.Errorf("%w: %w", owner.ErrCorrupt, err)
	case errors.Is(err, storage.ErrQueueFull):
		return fmt.Errorf("%w: %w", owner.ErrBusy, err)
	}
	return err
}

func (a ownerStore) Load(ctx context.Context, doc string) (owner.Stored, error) {
	d, err := a.s.Load(ctx, doc)
	if err != nil {
		return owner.Stored{}, storeErr(err)
	}
	tail := make([]owner.Entry, len(d.Tail))
	for i, e := range d.Tail {
		tail[i] = owner.Entry{Seq: e.Seq, Data: e.Data}
	}
	return owner.Stored{Snapshot: d.Snapshot, Tail: tail, LastSeq: d.Info.LastSeq}, nil
}

func (a ownerStore) Submit(doc string, update []byte) (owner.Pending, error) {
	p, err := a.s.TrySubmit(doc, update)
	if err != nil {
		return nil, storeErr(err)
	}
	return p, nil
}

func (a ownerStore) Compact(ctx context.Context, doc string, snapshot []byte, through uint64) error {
	return a.s.Compact(ctx, doc, snapshot, through)
}

func (a ownerStore) Delete(doc string) (owner.Pending, error) {
	p, err := a.s.SubmitDelete(doc)
	if err != nil {
		return nil, storeErr(err)
	}
	return deletePending{p}, nil
}

// deletePending is a tombstone's Pending: a document that was never stored
// or is already deleted counts as deleted.
type deletePending struct{ p *storage.Pending }

func (d deletePending) Done() <-chan struct{} { return d.p.Done() }

func (d deletePending) Result() (uint64, error) {
	seq, err := d.p.Result()
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrDeleted) {
		err = nil
	}
	return seq, err
}
