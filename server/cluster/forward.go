package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// Claimer is implemented by subscribers whose updates are checked against
// the agents they claimed (native sessions): forwarded, the owner node
// checks them (the session's node cannot, the owner decodes updates).
type Claimer interface{ Agents() []uint64 }

// A Ref is one subscriber's way to a document's owner (a session's joined
// document, a follower's feed, an HTTP request): Send delivers owner
// messages to the owner, here or on another node, and the owner's events
// reach the subscriber. A Join (or Follow) after the owner moved (lease
// lost, owner node gone, owner unloaded) finds the new owner: at once for
// a Ref from Acquire, in the background for one from Subscribe
// (resolve.go). Release it when done. Send and Release are called by the
// subscriber's goroutine.
type Ref struct {
	n   *Node
	doc string
	key uint64

	mu       sync.Mutex // guards e, node, stale, sub, root, follower, released and the resolution below
	e        *entry     // the owner is here
	node     string     // else: the owner's node
	stale    bool       // the owner is gone: the next Join or Follow finds the new one
	sub      owner.Subscriber
	root     string
	follower bool
	released bool

	async bool        // from Subscribe: a Join or Follow finds the owner in the background
	res   resolution  // while it does
	watch answerWatch // a forwarded Join or Follow waiting for its first answer (answer.go)

	dmu sync.Mutex // serialises deliveries made here (Deliver never blocks)
}

// Acquire returns a Ref to the owner of doc, claiming the document when
// this node is its place and nobody holds it.
func (n *Node) Acquire(ctx context.Context, doc string) (*Ref, error) {
	e, node, err := n.use(ctx, doc, true)
	if err != nil {
		return nil, err
	}
	n.log.Debug("cluster: document routed", "doc", doc, "local", e != nil, "node", node)
	n.mu.Lock()
	n.nextKey++
	r := &Ref{n: n, doc: doc, key: n.nextKey, e: e, node: node}
	n.refs[r.key] = r
	n.refDocLocked(doc, 1)
	n.mu.Unlock()
	return r, nil
}

// Remote reports whether the owner is on another node.
func (r *Ref) Remote() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e == nil
}

// Done is closed when the local owner exits; nil (never) when the owner is
// remote: a request to it is answered by Send itself.
func (r *Ref) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.e != nil {
		return r.e.o.Done()
	}
	return nil
}

// Release gives the Ref up. While a resolution runs, it is cut short if
// it still looks for the owner, and it gives up the owner it found once
// the messages queued before the Release are sent (a Leave among them).
func (r *Ref) Release() {
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return
	}
	r.released = true
	r.watch.stop()
	if r.res.running {
		cancel := r.res.cancel
		r.mu.Unlock()
		cancel()
		r.forget()
		return
	}
	e := r.e
	r.e = nil
	r.mu.Unlock()
	r.forget()
	if e != nil {
		r.n.unuse(e)
	}
}

// forget removes a released Ref from the node's.
func (r *Ref) forget() {
	r.n.mu.Lock()
	delete(r.n.refs, r.key)
	r.n.refDocLocked(r.doc, -1)
	r.n.mu.Unlock()
}

// subOf is the subscriber a message is from.
func subOf(m owner.Msg) owner.Subscriber {
	switch m := m.(type) {
	case owner.Join:
		return m.Sub
	case owner.Leave:
		return m.Sub
	case owner.ReadOnly:
		return m.Sub
	case owner.Update:
		return m.Sub
	case owner.SetPresence:
		return m.Sub
	case owner.Sync:
		return m.Sub
	case owner.Awareness:
		return m.Sub
	case owner.Follow:
		return m.Sub
	case owner.Unfollow:
		return m.Sub
	case owner.Broadcast:
		return m.From
	}
	return nil
}

// Send delivers m to the document's owner. It reports false only when the
// caller must stop (ctx ended, the node is closing); a message the owner
// can no longer take is answered here (the subscriber is told to rejoin,
// a request gets a retryable refusal).
func (r *Ref) Send(ctx context.Context, m owner.Msg) bool {
	sub := subOf(m)
	r.mu.Lock()
	if sub != nil {
		r.sub = sub
	}
	if f, ok := m.(owner.Follow); ok {
		r.root, r.follower = f.Root, true
	}
	r.mu.Unlock()
	if r.async && r.queueOrResolve(m) {
		return true
	}
	return r.sendNow(ctx, m)
}

// sendNow is Send once the message is not queued behind a resolution: a
// Join or Follow finds a moved owner first, on the caller's goroutine.
func (r *Ref) sendNow(ctx context.Context, m owner.Msg) bool {
	switch m.(type) {
	case owner.Join, owner.Follow:
		if err := r.retarget(ctx); err != nil {
			if ctx.Err() != nil {
				return false
			}
			r.bounce(m, "the document's owner is not reachable now; rejoin: "+err.Error())
			return true
		}
	}
	r.mu.Lock()
	e, node := r.e, r.node
	r.mu.Unlock()
	if e != nil {
		if e.o.Send(ctx, m) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.markStale()
		r.bounce(m, "the document moved; rejoin")
		return true
	}
	if node == "" { // released
		return false
	}
	if r.forwardRequest(ctx, node, m) {
		return true
	}
	f := r.toFwd(m)
	if f == nil {
		failRequest(m, &owner.Refused{Code: protocol.CodeDocUnloading,
			Message: "the document is owned by node " + node + "; this request is not forwarded: retry on that node"})
		return true
	}
	if err := r.n.publish(r.n.fwdSubject(node), encodeFwd(f)); err != nil {
		r.markStale()
		r.bounce(m, "the document's node is not reachable; rejoin")
		return true
	}
	if f.kind == fwdJoin || f.kind == fwdFollow {
		r.awaitAnswer(node)
	}
	return true
}

func (r *Ref) markStale() {
	r.mu.Lock()
	r.stale = true
	r.mu.Unlock()
}

// retarget finds the owner again if it moved, leaving the old one.
func (r *Ref) retarget(ctx context.Context) error {
	r.mu.Lock()
	e, node, stale, sub := r.e, r.node, r.stale, r.sub
	r.mu.Unlock()
	if e != nil && !stale && !r.n.closingEntry(e) {
		return nil
	}
	if e == nil && !stale {
		return nil
	}
	if e != nil {
		if sub != nil {
			lctx, cancel := context.WithTimeout(ctx, time.Second)
			e.o.Send(lctx, owner.Leave{Sub: sub})
			cancel()
		}
		r.n.unuse(e)
	} else if node != "" {
		r.publishLeave(node)
	}
	r.mu.Lock()
	r.e, r.node = nil, ""
	r.mu.Unlock()
	ne, nnode, err := r.n.use(ctx, r.doc, true)
	if err != nil {
		r.markStale()
		return err
	}
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		if ne != nil {
			r.n.unuse(ne)
		}
		return ErrNodeClosed
	}
	r.e, r.node, r.stale = ne, nnode, false
	r.mu.Unlock()
	return nil
}

func (r *Ref) publishLeave(node string) {
	r.mu.Lock()
	kind := byte(fwdLeave)
	if r.follower {
		kind = fwdUnfollow
	}
	r.mu.Unlock()
	_ = r.n.cfg.Conn.Publish(r.n.fwdSubject(node), encodeFwd(&fwd{kind: kind, origin: r.n.id, key: r.key, doc: r.doc})) // best effort: the owner node drops subscribers of dead nodes
}

// bounce answers m here: the subscriber is told to rejoin (retryable), a
// request gets a retryable refusal.
func (r *Ref) bounce(m owner.Msg, msg string) {
	failRequest(m, &owner.Refused{Code: protocol.CodeDocUnloading, Message: msg})
	sub := subOf(m)
	if sub == nil {
		return
	}
	var batch uint64
	if u, ok := m.(owner.Update); ok {
		batch = u.Batch
		r.deliver(sub, &owner.AckEvent{Doc: r.doc, Batch: batch, Status: protocol.AckRejected}, false)
	}
	switch m.(type) {
	case owner.Leave, owner.Unfollow:
		return
	}
	r.deliver(sub, &owner.ErrorEvent{Doc: r.doc, Batch: batch, Code: protocol.CodeDocUnloading, Message: msg, RetryAfter: time.Second, End: true}, false)
}

func (r *Ref) deliver(sub owner.Subscriber, ev owner.Event, soft bool) bool {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if soft {
		return sub.DeliverSoft(ev)
	}
	return sub.Deliver(ev)
}

// failRequest answers a request message with err (others are left alone).
func failRequest(m owner.Msg, err error) {
	switch m := m.(type) {
	case owner.Read:
		answer(m.Reply, owner.ReadResult{Err: err})
	case owner.Edit:
		answer(m.Reply, owner.EditResult{Err: err})
	case owner.Import:
		answer(m.Reply, owner.ImportResult{Err: err})
	case owner.Delete:
		answer(m.Reply, err)
	case owner.Create:
		answer(m.Reply, err)
	case owner.Broadcast:
		if m.Reply != nil {
			answer(m.Reply, owner.BroadcastResult{Err: err})
		}
	case owner.Checkpoint:
		answer(m.Reply, owner.CheckpointResult{Err: err})
	case owner.Restore:
		answer(m.Reply, owner.RestoreResult{Err: err})
	}
}

func answer[T any](reply chan<- T, v T) {
	select {
	case reply <- v:
	default:
	}
}

// toFwd encodes a subscriber's message for the owner node (nil: a request
// that is not forwarded).
func (r *Ref) toFwd(m owner.Msg) *fwd {
	f := &fwd{origin: r.n.id, key: r.key, doc: r.doc}
	switch m := m.(type) {
	case owner.Join:
		f.kind, f.subID, f.docKind, f.noSync, f.sv, f.readOnly, f.user = fwdJoin, m.Sub.ID(), m.Kind, m.NoSync, m.SV, m.ReadOnly, m.User
		if a, ok := m.Sub.(owner.Authored); ok {
			f.subject = a.Subject()
		}
		if c, ok := m.Sub.(Claimer); ok {
			f.checkOps, f.agents = true, c.Agents()
		}
	case owner.Leave:
		f.kind = fwdLeave
	case owner.ReadOnly:
		f.kind = fwdReadOnly
	case owner.Update:
		f.kind, f.batch, f.data = fwdUpdate, m.Batch, m.Update
	case owner.SetPresence:
		f.kind, f.data = fwdPresence, protocol.Encode(&protocol.PresenceSet{Doc: r.doc, State: m.State})
	case owner.Sync:
		f.kind, f.sv = fwdSync, m.SV
	case owner.Awareness:
		f.kind, f.data = fwdAwareness, m.Update
	case owner.Follow:
		f.kind, f.root, f.since, f.maxSteps = fwdFollow, m.Root, m.Since, uint64(max(0, m.MaxSteps))
	case owner.Unfollow:
		f.kind = fwdUnfollow
	case owner.Broadcast:
		if m.From == nil {
			return nil
		}
		f.kind, f.data = fwdBroadcast, m.Data
	default:
		return nil
	}
	return f
}

// onEvt delivers an event from an owner node to its subscriber here.
func (n *Node) onEvt(msg *nats.Msg) {
	data, release := n.reassemble(msg.Data)
	if data == nil {
		return
	}
	e, err := decodeEvt(data, n.cfg.DecodeLimits)
	if release != nil {
		release()
	}
	if err != nil {
		n.log.Warn("forwarded event refused", "err", err)
		return
	}
	if e.fan || e.ref {
		ev := n.fanned(e)
		if ev == nil {
			ev = missedFanOut(e.doc)
		}
		e.ev = ev
	}
	n.mu.Lock()
	r := n.refs[e.key]
	n.mu.Unlock()
	if r == nil {
		return // released meanwhile
	}
	r.mu.Lock()
	sub, root, follower := r.sub, r.root, r.follower
	r.watch.answered()
	if ev, ok := e.ev.(*owner.ErrorEvent); ok && ev.End {
		r.stale = true // the owner forgot the subscriber: its rejoin looks again
	}
	r.mu.Unlock()
	if sub == nil {
		return
	}
	if follower {
		switch ev := e.ev.(type) {
		case *owner.UpdateEvent:
			ev.SetJSON(root, e.json)
		case *owner.PresenceEvent:
			ev.SetCursors(root, e.cursors)
		}
	}
	r.deliver(sub, e.ev, e.soft)
}

// watchMembers tells the subscribers forwarded to a node that left to
// rejoin, and drops the subscribers forwarded here from a node that left
// (telling them to rejoin too: the node may have left only this node's
// view).
func (n *Node) watchMembers() {
	for {
		live, changed := n.cfg.Members.Live()
		if len(live) > 0 {
			n.dropDead(live)
		}
		select {
		case <-changed:
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) dropDead(live []string) {
	var refs []*Ref
	var rss []*remoteSub
	var claim, from []string // documents to claim, the node each was on
	n.mu.Lock()
	for _, r := range n.refs {
		r.mu.Lock()
		if r.e == nil && r.node != "" && !r.stale && !slices.Contains(live, r.node) {
			r.stale = true
			if r.sub != nil {
				refs = append(refs, r)
			}
			// The failover loop: a document of a node that left, with
			// subscribers here, that placement now gives this node, is
			// claimed at once (as soon as its lease is free), before the
			// rejoins arrive, by one goroutine per document.
			if !n.claims[r.doc] && Place(r.doc, live) == n.id && n.local[r.doc] == nil {
				n.claims[r.doc] = true
				claim, from = append(claim, r.doc), append(from, r.node)
			}
		}
		r.mu.Unlock()
	}
	for k, rs := range n.remotes {
		if !slices.Contains(live, k.origin) {
			rss = append(rss, rs)
		}
	}
	for node := range n.outboxes {
		if !slices.Contains(live, node) {
			n.stopOutboxLocked(node)
		}
	}
	n.mu.Unlock()
	for i, doc := range claim {
		n.goroutine(func() {
			defer func() {
				n.mu.Lock()
				delete(n.claims, doc)
				n.mu.Unlock()
			}()
			n.claimAfterLeave(doc, from[i])
		})
	}
	for _, r := range refs {
		r.mu.Lock()
		sub := r.sub
		r.mu.Unlock()
		r.deliver(sub, &owner.ErrorEvent{Doc: r.doc, Code: protocol.CodeDocUnloading, Message: "the document's node left; rejoin", End: true}, false) // no wait: the rejoin waits for the lease
	}
	for _, rs := range rss {
		if rs.stopped() {
			continue
		}
		rs.stop()
		// The node may not be dead: only this node's view lost it (its
		// membership watcher missed the heartbeats, e.g. while the
		// membership bucket elected a leader after a crash), and that node
		// may still route its subscribers here. Dropped in silence, a
		// subscriber that waits for the sync of its forwarded Join (it sends
		// nothing until then) would wait forever: found by collabd chaos
		// cluster. It is told to rejoin, directly (the node's outbox is
		// stopped); a dead node's subject has no listener.
		rs.publish(&owner.ErrorEvent{Doc: rs.doc, Code: protocol.CodeDocUnloading,
			Message: "the document's node lost sight of this node; rejoin", RetryAfter: 0, End: true})
	}
}

// onReconnect runs when this node's NATS connection came back: what was
// published to or by this node meanwhile is lost, so every subscriber here
// whose owner is on another node is told to rejoin (4002; its rejoin
// resyncs by state vector and resends what was not acked), and every
// subscriber forwarded here from another node is dropped and its node told
// to make it rejoin. It runs on nats.go's callback goroutine and never
// blocks.
func (n *Node) onReconnect() {
	var refs []*Ref
	var rss []*remoteSub
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	for _, r := range n.refs {
		r.mu.Lock()
		if r.e == nil && r.node != "" && !r.stale {
			r.stale = true
			if r.sub != nil {
				refs = append(refs, r)
			}
		}
		r.mu.Unlock()
	}
	for _, rs := range n.remotes {
		rss = append(rss, rs)
	}
	n.mu.Unlock()
	if len(refs)+len(rss) > 0 {
		n.log.Warn("cluster: reconnected to NATS: forwarded subscribers rejoin", "routed", len(refs), "forwarded_in", len(rss))
	}
	for _, r := range refs {
		r.mu.Lock()
		sub := r.sub
		r.mu.Unlock()
		r.deliver(sub, &owner.ErrorEvent{Doc: r.doc, Code: protocol.CodeDocUnloading,
			Message: "this node's connection to the cluster was re-established; rejoin", RetryAfter: 0, End: true}, false)
	}
	for _, rs := range rss {
		select {
		case <-rs.quit:
			continue
		default:
		}
		// The notice first (send refuses once stopped), then the stop: the
		// worker leaves the owner.
		rs.send(&owner.ErrorEvent{Doc: rs.doc, Code: protocol.CodeDocUnloading,
			Message: "the document's node reconnected to the cluster; rejoin", End: true}, false)
		rs.stop()
	}
}
