package cluster

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// An outbox is the owner node's queue of events to one subscriber node
// (docs/CLUSTER.md "A slow subscriber node"). Owners enqueue without
// blocking (push); one goroutine per subscriber node hands the events to
// NATS in order. The queue is bounded in bytes (queued plus being
// published): past the bound the queue is dropped and every subscriber of
// that node is dropped and told to rejoin (CodeSlow, 4008), as a session
// that does not read is on one node. An owner never waits for a subscriber
// node, nor for nats.go's buffer.
type outbox struct {
	max     int
	publish func([]byte) error // hands one message to NATS (may block)
	// overflow drops the node's subscribers; it is called without mu held,
	// on the goroutine of the push (or of a publish) that found the bound.
	overflow func(reason string)
	wake     chan struct{} // capacity 1

	mu       sync.Mutex // guards q, queued, inflight, drops
	q        [][]byte
	queued   int // bytes in q
	inflight int // bytes taken by run and not yet published
	drops    int // overflows
}

func newOutbox(max int, publish func([]byte) error, overflow func(string)) *outbox {
	return &outbox{max: max, publish: publish, overflow: overflow, wake: make(chan struct{}, 1)}
}

// push queues b; it reports false (and queues nothing) when the bound is
// reached. A soft event (presence) past the bound is only dropped; any
// other drops the queue and the node's subscribers. A message is always
// taken by an empty outbox, however large (it is bounded by maxReqBytes;
// past one NATS message it is published in parts): otherwise a node could never get a sync larger than the bound,
// and its subscribers would rejoin for ever.
func (o *outbox) push(b []byte, soft bool) bool {
	o.mu.Lock()
	if held := o.queued + o.inflight; held > 0 && held+len(b) > o.max {
		if soft {
			o.mu.Unlock()
			return false
		}
		o.q, o.queued = nil, 0
		o.drops++
		o.mu.Unlock()
		o.overflow("the document's node has more than " + byteSize(o.max) + " queued for this node")
		return false
	}
	o.q = append(o.q, b)
	o.queued += len(b)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// notice queues a small control message past the bound (a rejoin notice
// of a dropped subscriber: one per subscriber).
func (o *outbox) notice(b []byte) {
	o.mu.Lock()
	o.q = append(o.q, b)
	o.queued += len(b)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// bytes is what the outbox holds (queued and being published).
func (o *outbox) bytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued + o.inflight
}

// run publishes the queue in order until ctx ends. A publish that fails
// (the connection closed, its reconnect buffer full) drops the node's
// subscribers, as an overflow does: their events are lost.
func (o *outbox) run(ctx context.Context) {
	for {
		select {
		case <-o.wake:
		case <-ctx.Done():
			return
		}
		o.mu.Lock()
		q := o.q
		o.q, o.inflight, o.queued = nil, o.inflight+o.queued, 0
		o.mu.Unlock()
		failed := false
		for _, b := range q {
			if !failed && o.publish(b) != nil {
				failed = true
			}
			o.mu.Lock()
			o.inflight -= len(b)
			o.mu.Unlock()
		}
		if failed {
			o.overflow("the document's node could not publish to this node")
		}
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// outboxFor is the outbox to node, started on first use.
func (n *Node) outboxFor(node string) *outbox {
	n.mu.Lock()
	defer n.mu.Unlock()
	if o := n.outboxes[node]; o != nil {
		return o
	}
	if n.closed { // closing: nothing is published any more (Close tells the subscribers itself)
		return newOutbox(0, nil, func(string) {})
	}
	subject := n.evSubject(node)
	o := newOutbox(n.cfg.OutboxBytes,
		func(b []byte) error { return n.publish(subject, b) },
		func(reason string) { n.dropSubscribersOf(node, reason) })
	n.outboxes[node] = o
	ctx, cancel := context.WithCancel(n.ctx)
	n.outboxStop[node] = cancel
	n.goroutine(func() { o.run(ctx) })
	return o
}

// stopOutbox stops the outbox to a node that left (what it held is lost:
// the node's subscribers were told to rejoin by their own node).
func (n *Node) stopOutboxLocked(node string) {
	if cancel := n.outboxStop[node]; cancel != nil {
		cancel()
		delete(n.outboxStop, node)
		delete(n.outboxes, node)
	}
}

// dropSubscribersOf drops every subscriber of node forwarded here (their
// workers leave their owners) and queues each a notice to rejoin.
func (n *Node) dropSubscribersOf(node, reason string) {
	var rss []*remoteSub
	n.mu.Lock()
	o := n.outboxes[node]
	for k, rs := range n.remotes {
		if k.origin == node {
			rss = append(rss, rs)
		}
	}
	n.mu.Unlock()
	dropped := 0
	for _, rs := range rss {
		select {
		case <-rs.quit:
			continue // dropped already
		default:
		}
		rs.stop()
		dropped++
		if o == nil {
			continue
		}
		if b, ok := encodeEvt(rs.k.key, false, &owner.ErrorEvent{Doc: rs.doc, Code: protocol.CodeSlow,
			Message: reason + "; rejoin", RetryAfter: time.Second, End: true}, rs.root, rs.follower); ok {
			o.notice(b)
		}
	}
	if dropped > 0 {
		n.outboxDrops.Add(1)
		n.log.Warn("cluster: subscriber node too far behind: its subscribers dropped", "node", node, "subscribers", dropped, "reason", reason)
	}
}
