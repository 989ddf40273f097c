package cluster

import (
	"context"
	"time"

	"github.com/collabd/collabd/server/owner"
)

// Finding a document's owner can take a while: the lease of a node that
// died must expire, the lease bucket may be electing a leader, the
// document must be loaded. A session's read loop serves every document of
// its connection; if it waited for one document's owner, the other
// documents would wait with it (a client editing ten documents would see
// all ten stop while one fails over). So a Ref from Subscribe finds its
// owner in the background: the Join (or Follow) that needs it starts a
// resolution, the subscriber's later messages for the document queue
// behind it (bounded), and once the owner is found they go to it in
// order. A resolution that fails tells the subscriber to rejoin, as a
// failed Join always has.

// Bounds of what a subscriber may send while its document's owner is being
// found; past them a message is bounced (the subscriber is told to rejoin,
// an update is rejected: the client resends it after its rejoin).
const (
	maxResolveQueue      = 1024
	maxResolveQueueBytes = 4 << 20
)

// resolveTimeout bounds a resolution: past it the subscriber is told to
// rejoin (each step of the search is bounded too; this is the backstop
// that keeps a document from waiting for ever on a step that is not).
const resolveTimeout = 30 * time.Second

// resolution is a Ref's background search for its owner.
type resolution struct {
	running bool
	queue   []owner.Msg // sent to the owner once found, in order
	bytes   int
	cancel  context.CancelFunc // cuts the search short (Release)
}

// Subscribe returns a Ref for a subscriber (a session's document) without
// waiting for anything: the first Join or Follow sent on it finds the
// owner, claiming the document when this node is its place and nobody
// holds it, in the background (see above); so does a later one after the
// owner moved.
func (n *Node) Subscribe(doc string) (*Ref, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNodeClosed
	}
	n.nextKey++
	r := &Ref{n: n, doc: doc, key: n.nextKey, stale: true, async: true}
	n.refs[r.key] = r
	n.refDocLocked(doc, 1)
	return r, nil
}

// queueOrResolve queues m behind a running resolution, or starts one for a
// Join or Follow whose owner must be found. It reports whether m was taken
// (queued, or bounced past the bounds); false: send it now.
func (r *Ref) queueOrResolve(m owner.Msg) bool {
	r.mu.Lock()
	if r.res.running {
		size := msgBytes(m)
		if len(r.res.queue) >= maxResolveQueue || r.res.bytes+size > maxResolveQueueBytes {
			r.mu.Unlock()
			r.bounce(m, "the document's owner is still being located; rejoin")
			return true
		}
		r.res.queue = append(r.res.queue, m)
		r.res.bytes += size
		r.mu.Unlock()
		return true
	}
	e, stale := r.e, r.stale
	r.mu.Unlock()
	switch m.(type) {
	case owner.Join, owner.Follow:
	default:
		return false
	}
	// As retarget decides: nothing to find while the owner is in place.
	if e != nil && !stale && !r.n.closingEntry(e) {
		return false
	}
	if e == nil && !stale {
		return false
	}
	ctx, cancel := context.WithTimeout(r.n.ctx, resolveTimeout)
	r.mu.Lock()
	r.res = resolution{running: true, queue: []owner.Msg{m}, bytes: msgBytes(m), cancel: cancel}
	r.mu.Unlock()
	r.n.goroutine(func() { r.resolve(ctx) })
	return true
}

// resolve finds the owner, then sends what was queued meanwhile, in order,
// until the queue is empty; then the Ref sends directly again. A Ref
// released meanwhile gives up the owner it found after the queue (its
// Leave) went out; one released before the owner was found drops the
// queue (nothing of it reached an owner).
func (r *Ref) resolve(ctx context.Context) {
	err := r.retarget(ctx)
	for {
		r.mu.Lock()
		q, released := r.res.queue, r.released
		r.res.queue, r.res.bytes = nil, 0
		if len(q) == 0 {
			cancel := r.res.cancel
			r.res = resolution{}
			var e *entry
			if released {
				e, r.e = r.e, nil
			}
			r.mu.Unlock()
			cancel()
			if e != nil {
				r.n.unuse(e)
			}
			return
		}
		r.mu.Unlock()
		for _, m := range q {
			switch {
			case err == nil:
				r.sendNow(r.n.ctx, m)
			case !released:
				r.bounce(m, "the document's owner is not reachable now; rejoin: "+err.Error())
			}
		}
	}
}

// msgBytes is what m holds beyond its fixed size, for the queue's bound.
func msgBytes(m owner.Msg) int {
	const fixed = 64
	switch m := m.(type) {
	case owner.Update:
		return fixed + len(m.Update)
	case owner.SetPresence:
		n := fixed
		for k, v := range m.State.Meta {
			n += len(k) + len(v)
		}
		return n
	case owner.Awareness:
		return fixed + len(m.Update)
	case owner.Broadcast:
		return fixed + len(m.Data)
	case owner.Join:
		return fixed + len(m.SV)
	case owner.Sync:
		return fixed + len(m.SV)
	}
	return fixed
}
