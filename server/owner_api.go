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
func (o *owner) applyServerUpdate(update []byte, reply func(error)) error {
	before, pending := o.doc.Version(), o.doc.Pending()
	if err := o.doc.ApplyUpdate(update); err != nil {
		return err
	}
	if o.doc.Version() == before && o.doc.Pending() > pending {
		// Only ops that wait for dependencies: nothing visible changed, but
		// they are new and must be stored (a reload puts them back in the
		// pending buffer), as for a client's update.
		o.storeServerUpdate(update, o.doc.Version(), reply)
		return nil
	}
	o.commitServerUpdate(before, update, reply)
	return nil
}

// commitServerUpdate persists and fans out update, already applied to the
// document (whose version was before). A big server-made update (a snapshot
// import, a delete across a fragmented range) goes out and into the log in
// chunks: every stored entry stays under the store's update limit and every
// frame under the clients' frame limit, and each chunk applies on its own.
// It is stored under the server's context, not the request's: once applied,
// an update is committed even if the HTTP client goes away. reply is called
// once the last chunk is durable (commits complete in order).
func (o *owner) commitServerUpdate(before uint64, update []byte, reply func(error)) {
	version := o.doc.Version()
	o.recordChange(before)
	if version == before {
		reply(nil)
		return
	}
	o.srv.metrics.applied(version - before)
	for _, c := range protocol.ChunkUpdate(update) {
		o.fanOut(protocol.Encode(&protocol.Update{Doc: o.id, Update: c}), nil)
	}
	o.storeServerUpdate(update, version, reply)
}

// storeServerUpdate submits a server-made update in chunks; reply is told
// when the last one is durable (or at once of a failed submit).
func (o *owner) storeServerUpdate(update []byte, version uint64, reply func(error)) {
	o.exists = true
	chunks := protocol.ChunkUpdate(update)
	for i, c := range chunks {
		p, err := o.srv.cfg.Store.Submit(o.srv.ctx, o.id, c)
		if err != nil {
			reply(err)
			return
		}
		cm := commit{p: p, version: version}
		if i == len(chunks)-1 {
			cm.reply = reply
		}
		o.commits = append(o.commits, cm)
	}
}

// deleteDoc deletes the stored document (a tombstone), tells every session
// and follower, and refuses the document from then on. The deletion is
// stored under the server's context: a client that goes away mid-request
// must not leave the owner believing in a document storage has deleted.
func (o *owner) deleteDoc() error {
	// Wait for commits in flight: their acks go out before the deletion.
	for _, c := range o.commits {
		<-c.p.Done()
	}
	o.durable()
	err := o.srv.cfg.Store.Delete(o.srv.ctx, o.id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrDeleted) {
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
