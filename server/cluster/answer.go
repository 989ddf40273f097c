package cluster

import (
	"time"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// A forwarded Join or Follow is a NATS publish: if it is lost on the way
// (the owner node's server cut off from the cluster, a route down, while
// neither node's connection reconnects, so neither learns of it), the
// subscriber waits for its sync for ever, and a session sends nothing
// more for the document until then. So the Ref waits for the owner node's
// first answer (any event for it: the sync, an error) for
// NodeConfig.JoinAnswer; past it, it takes the owner as gone and tells
// the subscriber to rejoin (4002, End), and sends the owner node a Leave
// in case the Join was only late. Found by collabd chaos cluster's
// isolate-nats fault.

// answerWatch is a Ref's wait for the first answer to its forwarded Join
// or Follow. Guarded by the Ref's mu.
type answerWatch struct {
	t     *time.Timer
	armed bool // a Join or Follow went out and nothing came back yet
}

// answered records an event of the owner node for the Ref (r.mu held):
// the first one after a Join stops the wait; later ones cost a test.
func (w *answerWatch) answered() {
	if w.armed {
		w.stop()
	}
}

// stop stops the wait (r.mu held).
func (w *answerWatch) stop() {
	w.armed = false
	if w.t != nil {
		w.t.Stop()
	}
}

// awaitAnswer starts the wait for the answer to a Join or Follow just
// published to node.
func (r *Ref) awaitAnswer(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return
	}
	r.watch.stop()
	r.watch.armed = true
	r.watch.t = time.AfterFunc(r.n.cfg.JoinAnswer, func() { r.unanswered(node) })
}

// unanswered runs when the wait ended: if nothing came back from node and
// the Ref still routes there, the subscriber is told to rejoin.
func (r *Ref) unanswered(node string) {
	r.mu.Lock()
	if !r.watch.armed || r.released || r.e != nil || r.node != node {
		r.mu.Unlock()
		return
	}
	r.watch.armed = false
	r.stale = true
	sub := r.sub
	r.mu.Unlock()
	r.n.log.Warn("cluster: a forwarded join got no answer: rejoin", "doc", r.doc, "node", node, "after", r.n.cfg.JoinAnswer)
	r.publishLeave(node) // in case it was only late
	if sub != nil {
		r.deliver(sub, &owner.ErrorEvent{Doc: r.doc, Code: protocol.CodeDocUnloading,
			Message: "the document's node did not answer; rejoin", RetryAfter: 0, End: true}, false)
	}
}
