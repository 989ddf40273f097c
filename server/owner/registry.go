package owner

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Registry maps document ids to their owners: exactly one owner per
// document per process. It owns the owners' goroutines (and theirs):
// Shutdown cancels them and Wait waits for every one. A session holds a reference on every owner it has joined and
// sends requests only to those; an owner unloads only when it has no
// references and an empty inbox, checked under the registry lock, so no
// request can reach an owner that is going away.
//
// It is also the memory governor: at most maxDocs owners are loaded, and
// their estimated replica bytes stay under maxBytes. A load past either cap
// first asks the least recently used unreferenced owners to unload, waits a
// moment for them, and otherwise fails with errBusy (the caller answers with
// the retryable CodeOverloaded and a retry hint).
type Registry struct {
	cfg    Config
	ctx    context.Context // cancelled by Shutdown: owners flush and exit
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the registry's owners start

	mu     sync.Mutex // guards owners, every owner's refs and idleSince, freed and closed
	owners map[string]*Owner
	freed  chan struct{} // closed and replaced whenever an owner leaves the map
	closed bool

	maxDocs  int
	maxBytes int64
	wait     time.Duration // how long a load at a cap waits for evicted owners
	bytes    atomic.Int64  // estimated replica bytes of every loaded document (owners add theirs)
	sleeping atomic.Int64  // loaded documents whose owner sleeps (no goroutine: sleep.go)
}

// ErrCapacity is returned by Acquire when a cap is reached and no
// unreferenced document could be unloaded in time.
var ErrCapacity = errors.New("owner: document capacity reached")

// ErrClosed is returned by Acquire after Shutdown.
var ErrClosed = errors.New("owner: registry shut down")

// RegistryLimits are the memory governor's caps.
type RegistryLimits struct {
	MaxDocs   int           // documents loaded at once
	MaxBytes  int64         // estimated replica bytes of the loaded documents
	EvictWait time.Duration // how long a load at a cap waits for idle documents to unload
}

// NewRegistry returns a registry whose owners share cfg.
func NewRegistry(cfg Config, lim RegistryLimits) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{cfg: cfg, ctx: ctx, cancel: cancel, owners: make(map[string]*Owner), freed: make(chan struct{}),
		maxDocs: lim.MaxDocs, maxBytes: lim.MaxBytes, wait: lim.EvictWait}
}

// goroutine runs f on a goroutine the registry waits for.
func (r *Registry) goroutine(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// startLocked creates and starts the owner of id.
func (r *Registry) startLocked(id string) *Owner {
	o := newOwner(id, &r.cfg, r)
	r.owners[id] = o
	r.goroutine(func() { o.run(r.ctx) })
	return o
}

// Acquire returns the owner of id, starting one if needed, with one more
// reference held by the caller (Release it). At a cap it evicts idle
// documents and waits for them (until ctx ends or the registry's wait
// passes), else ErrCapacity.
func (r *Registry) Acquire(ctx context.Context, id string) (*Owner, error) {
	var deadline <-chan time.Time
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		if o := r.owners[id]; o != nil {
			o.refs++
			r.mu.Unlock()
			return o, nil
		}
		victims := r.victimsLocked()
		if victims == nil {
			o := r.startLocked(id)
			o.refs++
			r.mu.Unlock()
			return o, nil
		}
		freed := r.freed
		r.mu.Unlock()
		if len(victims) == 0 {
			return nil, ErrCapacity
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
			return nil, ErrCapacity
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// victimsLocked returns nil when a new owner fits under the caps, else the
// unreferenced owners to unload, least recently used first (empty when
// there are none).
func (r *Registry) victimsLocked() []*Owner {
	overDocs := len(r.owners) + 1 - r.maxDocs
	overBytes := r.bytes.Load() - r.maxBytes
	if overDocs <= 0 && overBytes < 0 {
		return nil
	}
	idle := make([]*Owner, 0, 16)
	for _, o := range r.owners {
		if o.refs == 0 {
			idle = append(idle, o)
		}
	}
	slices.SortFunc(idle, func(a, b *Owner) int { return a.idleSince.Compare(b.idleSince) })
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

// Release drops a reference taken by Acquire. Messages the caller sent
// before Release are already in the owner's inbox.
func (r *Registry) Release(o *Owner) {
	r.mu.Lock()
	if o.refs--; o.refs == 0 {
		o.idleSince = time.Now()
	}
	r.mu.Unlock()
}

// tryRemove unregisters o if nobody references it and its inbox is empty. It
// reports whether o may exit.
func (r *Registry) tryRemove(o *Owner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.refs > 0 || len(o.inbox) > 0 || o.queued.Load() > 0 {
		return false
	}
	r.removeLocked(o)
	return true
}

// remove unregisters o unconditionally (a failed owner, shutdown).
func (r *Registry) remove(o *Owner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(o)
}

func (r *Registry) removeLocked(o *Owner) {
	if r.owners[o.id] == o {
		delete(r.owners, o.id)
		close(r.freed)
		r.freed = make(chan struct{})
	}
}

// Loaded is the number of loaded documents.
func (r *Registry) Loaded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.owners)
}

// Bytes is the estimated replica memory of the loaded documents.
func (r *Registry) Bytes() int64 { return r.bytes.Load() }

// Sleeping is the number of loaded documents whose owner sleeps: no
// goroutine runs them until a message comes (sleep.go).
func (r *Registry) Sleeping() int { return int(r.sleeping.Load()) }

// Shutdown refuses new loads and tells every owner to flush its commits and
// exit; it returns when they (and every goroutine they started) have, or
// when ctx ends.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	owners := make([]*Owner, 0, len(r.owners))
	for _, o := range r.owners {
		owners = append(owners, o)
	}
	r.mu.Unlock()
	r.cancel()
	// Sleeping owners have no goroutine to see the cancellation: wake them
	// (for good) before waiting, so every wg.Add happens before Wait.
	for _, o := range owners {
		o.stayAwake()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
