package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/storage"
)

// apiErr is an HTTP API failure with its protocol code.
type apiErr struct {
	code protocol.Code
	msg  string
}

func (e *apiErr) Error() string { return e.msg }

// callOwner runs fn on the owner of id (loading it if needed) and returns
// when fn has run, or ctx or the server ends first. If fn panics, the owner
// reloads the document (see owner.crashed) and callOwner answers with the
// retryable CodeDocUnloading.
func (s *Server) callOwner(ctx context.Context, id string, fn func(*owner)) error {
	o, err := s.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer s.reg.release(o)
	done, panicked := make(chan struct{}), make(chan struct{})
	call := func(o *owner) {
		ok := false
		defer func() {
			if !ok {
				close(panicked) // runs while the panic unwinds to the owner's recover
			}
		}()
		fn(o)
		ok = true
		close(done)
	}
	if !o.send(ctx, request{kind: reqCall, call: call}) {
		return o.exitErr(ctx)
	}
	select {
	case <-done:
		return nil
	case <-panicked:
		return &apiErr{protocol.CodeDocUnloading, "document failed on the server and was reloaded; retry"}
	case <-o.done:
		select {
		case <-done: // fn ran before the owner exited
			return nil
		default:
			return o.exitErr(ctx)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exitErr is the error for a request the owner did not run: the caller
// gave up, or the owner exited (the server is shutting down).
func (o *owner) exitErr(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &apiErr{protocol.CodeGoingAway, "server shutting down"}
}

// acquire is registry.acquire with errBusy as the retryable CodeOverloaded.
func (s *Server) acquire(ctx context.Context, id string) (*owner, error) {
	o, err := s.reg.acquire(ctx, id)
	if errors.Is(err, errBusy) {
		s.metrics.capacityRefusal()
		return nil, &apiErr{protocol.CodeOverloaded, "server busy: document capacity reached; retry later"}
	}
	return o, err
}

// refusal is the error for a refused document, or nil.
func (o *owner) refusal() *apiErr {
	if o.failed == nil {
		return nil
	}
	if errors.Is(o.failed, storage.ErrDeleted) {
		return &apiErr{protocol.CodeDocDeleted, "document deleted"}
	}
	return &apiErr{o.failedCode(), "document could not be loaded"}
}

// applyServerUpdate applies an update made on the server (REST edits, a
// snapshot import) like a client's: stored through group commit, fanned out
// to every session, recorded for followers. reply is called once it is
// durable (or failed); nothing to store replies at once.
func (o *owner) applyServerUpdate(ctx context.Context, update []byte, reply func(error)) error {
	before := o.doc.Version()
	if err := o.doc.ApplyUpdate(update); err != nil {
		return err
	}
	o.commitServerUpdate(ctx, before, update, reply)
	return nil
}

// commitServerUpdate persists and fans out update, already applied to the
// document (whose version was before).
func (o *owner) commitServerUpdate(ctx context.Context, before uint64, update []byte, reply func(error)) {
	version := o.doc.Version()
	o.recordChange(before)
	if version == before {
		reply(nil)
		return
	}
	o.srv.metrics.applied(version - before)
	o.fanOut(protocol.Encode(&protocol.Update{Doc: o.id, Update: update}), nil)
	p, err := o.srv.cfg.Store.Submit(ctx, o.id, update)
	if err != nil {
		reply(err)
		return
	}
	o.exists = true
	o.commits = append(o.commits, commit{p: p, version: version, reply: reply})
}

// deleteDoc deletes the stored document (a tombstone), tells every session
// and follower, and refuses the document from then on.
func (o *owner) deleteDoc(ctx context.Context) error {
	// Wait for commits in flight: their acks go out before the deletion.
	for _, c := range o.commits {
		<-c.p.Done()
	}
	o.durable()
	if err := o.srv.cfg.Store.Delete(ctx, o.id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete: %w", err)
	}
	o.failed = storage.ErrDeleted
	now := time.Now()
	for s := range o.subs {
		s.sendError(protocol.CodeDocDeleted, o.id, 0, "document deleted")
		delete(o.subs, s)
		o.presenceLeave(s, now)
	}
	o.endFollowers(feedItem{kind: feedDeleted, code: protocol.CodeDocDeleted, msg: "document deleted"})
	o.doc = crdt.NewDoc(crdt.Options{Agent: o.srv.agent})
	return nil
}

// idemCache remembers the results of recent REST edits by idempotency key
// (bounded, oldest forgotten first; in memory while the document is loaded).
type idemCache struct {
	max   int
	order []string
	seen  map[string]editResult
}

func newIdemCache(max int) idemCache {
	return idemCache{max: max, seen: make(map[string]editResult)}
}

func (c *idemCache) get(key string) (editResult, bool) {
	r, ok := c.seen[key]
	return r, ok
}

func (c *idemCache) put(key string, r editResult) {
	if _, ok := c.seen[key]; !ok {
		c.order = append(c.order, key)
	}
	c.seen[key] = r
	for len(c.order) > c.max {
		delete(c.seen, c.order[0])
		c.order = c.order[1:]
	}
}
