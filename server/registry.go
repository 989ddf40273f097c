package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// registry maps document ids to their owners: exactly one owner per document
// per process. A session holds a reference on every owner it has joined and
// sends requests only to those; an owner unloads only when it has no
// references and an empty inbox, checked under the registry lock, so no
// request can reach an owner that is going away.
//
// It is also the memory governor: at most maxDocs owners are loaded, and
// their estimated replica bytes stay under maxBytes. A load past either cap
// first asks the least recently used unreferenced owners to unload, waits a
// moment for them, and otherwise fails with errBusy (the caller answers with
// the retryable CodeOverloaded and a retry hint).
type registry struct {
	mu     sync.Mutex // guards owners, every owner's refs, gone and idleSince, and freed
	owners map[string]*owner
	start  func(id string) *owner // creates and starts an owner (Server.startOwner)
	freed  chan struct{}          // closed and replaced whenever an owner leaves the map

	maxDocs  int
	maxBytes int64
	wait     time.Duration // how long a load at a cap waits for evicted owners
	bytes    atomic.Int64  // estimated replica bytes of every loaded document (owners add theirs)
}

// errBusy is returned by acquire when a cap is reached and no unreferenced
// document could be unloaded in time.
var errBusy = errors.New("server: document capacity reached")

func newRegistry(start func(id string) *owner, maxDocs int, maxBytes int64, wait time.Duration) *registry {
	return &registry{owners: make(map[string]*owner), start: start, freed: make(chan struct{}),
		maxDocs: maxDocs, maxBytes: maxBytes, wait: wait}
}

// acquire returns the owner of id, starting one if needed, with one more
// reference held by the caller. At a cap it evicts idle documents and waits
// for them (until ctx ends or the registry's wait passes), else errBusy.
func (r *registry) acquire(ctx context.Context, id string) (*owner, error) {
	var deadline <-chan time.Time
	for {
		r.mu.Lock()
		if o := r.owners[id]; o != nil {
			o.refs++
			r.mu.Unlock()
			return o, nil
		}
		victims := r.victimsLocked()
		if victims == nil {
			o := r.start(id)
			r.owners[id] = o
			o.refs++
			r.mu.Unlock()
			return o, nil
		}
		freed := r.freed
		r.mu.Unlock()
		if len(victims) == 0 {
			return nil, errBusy
		}
		for _, v := range victims {
			v.requestEvict()
		}
		if deadline == nil {
			t := time.NewTimer(r.wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-freed:
		case <-deadline:
			return nil, errBusy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// victimsLocked returns nil when a new owner fits under the caps, else the
// unreferenced owners to unload, least recently used first (empty when
// there are none).
func (r *registry) victimsLocked() []*owner {
	overDocs := len(r.owners) + 1 - r.maxDocs
	overBytes := r.bytes.Load() - r.maxBytes
	if overDocs <= 0 && overBytes < 0 {
		return nil
	}
	idle := make([]*owner, 0, 16)
	for _, o := range r.owners {
		if o.refs == 0 {
			idle = append(idle, o)
		}
	}
	slices.SortFunc(idle, func(a, b *owner) int { return a.idleSince.Compare(b.idleSince) })
	// Unload a few more than needed so that a stream of new documents at
	// the cap does not pay for one eviction each.
	n := 0
	for n < len(idle) && (overDocs > 0 || overBytes >= 0) {
		overDocs--
		overBytes -= idle[n].memShared.Load()
		n++
	}
	n = min(len(idle), n+len(r.owners)/64)
	return idle[:n]
}

// release drops a reference taken by acquire. Requests the caller sent
// before release are already in the owner's inbox.
func (r *registry) release(o *owner) {
	r.mu.Lock()
	if o.refs--; o.refs == 0 {
		o.idleSince = time.Now()
	}
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
	r.removeLocked(o)
	return true
}

// remove unregisters o unconditionally (a failed owner, shutdown).
func (r *registry) remove(o *owner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(o)
}

func (r *registry) removeLocked(o *owner) {
	if r.owners[o.id] == o {
		delete(r.owners, o.id)
		close(r.freed)
		r.freed = make(chan struct{})
	}
	o.gone = true
}

// loaded returns the number of loaded documents.
func (r *registry) loaded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.owners)
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
