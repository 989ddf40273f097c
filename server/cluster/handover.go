package cluster

import (
	"context"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// Hand-over to a joining node (docs/CLUSTER.md "Joins and failover").
// Placement is rendezvous hashing over the live nodes, so a node that
// joins wins about 1/n of the documents. Each node gives up the documents
// it owns that placement now gives to a newcomer (disown: subscribers told
// to rejoin; the lease released at once), and they move at once instead of
// when they go idle.
//
// Against a flapping member: a newcomer is handed documents only once it
// has been live for HandoverAfter without a break (a node that leaves
// before gets nothing and starts over when it returns), documents are
// given up at most HandoverRate a second (a rejoin storm is spread out),
// and a node refuses, for a lease TTL, to claim again a document it has
// just handed over (a forwarded join that raced the hand-over cannot
// bring it back).

// joins tracks the nodes that joined and are not handed anything yet.
// It is pure: the caller passes the membership and the time.
type joins struct {
	self  string
	after time.Duration
	prev  []string             // the live nodes last observed
	since map[string]time.Time // newcomer → live since
}

func newJoins(self string, after time.Duration, live []string) *joins {
	return &joins{self: self, after: after, prev: live, since: map[string]time.Time{}}
}

// observe takes the live nodes at now: it returns the nodes that joined
// and those that left since the last observation. A newcomer that leaves
// before it was handed anything is forgotten (it starts over).
func (j *joins) observe(live []string, now time.Time) (joined, left []string) {
	for _, id := range live {
		if id != j.self && !slices.Contains(j.prev, id) {
			j.since[id] = now
			joined = append(joined, id)
		}
	}
	for _, id := range j.prev {
		if !slices.Contains(live, id) {
			left = append(left, id)
			delete(j.since, id)
		}
	}
	j.prev = live
	return joined, left
}

// due returns (and forgets) the newcomers live for after at now.
func (j *joins) due(now time.Time) []string {
	var ready []string
	for id, t := range j.since {
		if !now.Before(t.Add(j.after)) {
			ready = append(ready, id)
			delete(j.since, id)
		}
	}
	slices.Sort(ready)
	return ready
}

// next is when the next newcomer is due (zero: none waits).
func (j *joins) next() time.Time {
	var next time.Time
	for _, t := range j.since {
		if at := t.Add(j.after); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// handoverLoop watches the membership for newcomers and hands each the
// documents it wins once it has been live for HandoverAfter.
func (n *Node) handoverLoop() {
	live, changed := n.cfg.Members.Live()
	j := newJoins(n.id, n.cfg.HandoverAfter, live)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	lim := rate.NewLimiter(rate.Limit(n.cfg.HandoverRate), max(1, int(n.cfg.HandoverRate)))
	arm := func(now time.Time) {
		timer.Stop()
		if next := j.next(); !next.IsZero() {
			timer.Reset(max(0, next.Sub(now)))
		}
	}
	for {
		select {
		case <-changed:
			live, changed = n.cfg.Members.Live()
			now := time.Now()
			joined, left := j.observe(live, now)
			for _, id := range joined {
				n.log.Info("cluster: a node joined", "joined", id, "handover_after", n.cfg.HandoverAfter)
			}
			if len(left) > 0 {
				n.forgetHandedTo(left)
			}
			arm(now)
		case now := <-timer.C:
			ready := j.due(now)
			arm(now)
			if len(ready) > 0 {
				n.handOver(ready, lim)
			}
		case <-n.ctx.Done():
			return
		}
	}
}

// handOver gives up the documents owned here that placement over the
// live nodes gives to one of to, at most lim's rate.
func (n *Node) handOver(to []string, lim *rate.Limiter) {
	live, _ := n.cfg.Members.Live()
	type move struct {
		e  *entry
		to string
	}
	var moves []move
	n.mu.Lock()
	for doc, e := range n.local {
		if e.closing || !loaded(e) {
			continue
		}
		if p := Place(doc, live); slices.Contains(to, p) {
			moves = append(moves, move{e, p})
		}
	}
	n.mu.Unlock()
	if len(moves) == 0 {
		return
	}
	n.log.Info("cluster: handing documents over to joined nodes", "to", to, "documents", len(moves))
	for _, m := range moves {
		if err := lim.Wait(n.ctx); err != nil {
			return
		}
		// The placement again: the newcomer may have left meanwhile.
		live, _ := n.cfg.Members.Live()
		if Place(m.e.doc, live) != m.to {
			continue
		}
		select {
		case m.e.handover <- m.to:
		default: // asked already
		}
	}
}

// loaded reports whether e's owner runs (its lease and owner are set).
func loaded(e *entry) bool {
	select {
	case <-e.ready:
		return e.err == nil
	default:
		return false
	}
}

// markHanded records that doc was handed over to node: it is not claimed
// here again for a lease TTL (use).
func (n *Node) markHanded(doc, node string) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.handed) >= 1024 {
		for d, h := range n.handed {
			if now.After(h.until) {
				delete(n.handed, d)
			}
		}
	}
	n.handed[doc] = handedDoc{to: node, until: now.Add(n.cfg.Leases.TTL())}
}

// handedToLocked is the node doc was just handed over to ("" if none).
func (n *Node) handedToLocked(doc string) string {
	h, ok := n.handed[doc]
	if !ok {
		return ""
	}
	if time.Now().After(h.until) {
		delete(n.handed, doc)
		return ""
	}
	return h.to
}

// forgetHandedTo forgets the hand-overs to nodes that left: their
// documents may be claimed here again at once (failover).
func (n *Node) forgetHandedTo(nodes []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for d, h := range n.handed {
		if slices.Contains(nodes, h.to) {
			delete(n.handed, d)
		}
	}
}

type handedDoc struct {
	to    string
	until time.Time
}

// claimAfterLeave is the failover loop's part for one document: doc's
// owner node left and placement gives the document to this node, which
// claims it as soon as its lease is free (bounded by the TTL: ownerOf), so
// that it is loaded before its subscribers' rejoins arrive.
func (n *Node) claimAfterLeave(doc string, left string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(n.ctx, 3*n.cfg.Leases.TTL())
	defer cancel()
	e, node, err := n.use(ctx, doc, true)
	if err != nil {
		n.log.Info("cluster: failover claim failed", "doc", doc, "left", left, "err", err)
		return
	}
	if e == nil {
		n.log.Info("cluster: failover: the document went to another node", "doc", doc, "left", left, "node", node)
		return
	}
	n.log.Info("cluster: failover: document claimed", "doc", doc, "left", left, "took", time.Since(start))
	n.unuse(e) // its subscribers take it over; nobody: it is given up after IdleUnload
}
