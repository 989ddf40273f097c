package server

import (
	"context"
	"sync"
)

// registry maps document ids to their owners: exactly one owner per document
// per process. A session holds a reference on every owner it has joined and
// sends requests only to those; an owner unloads only when it has no
// references and an empty inbox, checked under the registry lock, so no
// request can reach an owner that is going away.
type registry struct {
	mu     sync.Mutex // guards owners and every owner's refs and gone
	owners map[string]*owner
	start  func(id string) *owner // creates and starts an owner (Server.startOwner)
}

func newRegistry(start func(id string) *owner) *registry {
	return &registry{owners: make(map[string]*owner), start: start}
}

// acquire returns the owner of id, starting one if needed, with one more
// reference held by the caller.
func (r *registry) acquire(id string) *owner {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.owners[id]
	if o == nil {
		o = r.start(id)
		r.owners[id] = o
	}
	o.refs++
	return o
}

// release drops a reference taken by acquire. Requests the caller sent
// before release are already in the owner's inbox.
func (r *registry) release(o *owner) {
	r.mu.Lock()
	o.refs--
	r.mu.Unlock()
}

// tryRemove unregisters o if nobody references it and its inbox is empty. It
// reports whether o may exit.
func (r *registry) tryRemove(o *owner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.refs > 0 || len(o.inbox) > 0 {
		return false
	}
	if r.owners[o.id] == o {
		delete(r.owners, o.id)
	}
	o.gone = true
	return true
}

// remove unregisters o unconditionally (a failed load, shutdown).
func (r *registry) remove(o *owner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owners[o.id] == o {
		delete(r.owners, o.id)
	}
	o.gone = true
}

// all returns the registered owners.
func (r *registry) all() []*owner {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*owner, 0, len(r.owners))
	for _, o := range r.owners {
		out = append(out, o)
	}
	return out
}

// waitAll waits for the given owners to exit.
func waitAll(ctx context.Context, owners []*owner) error {
	for _, o := range owners {
		select {
		case <-o.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
