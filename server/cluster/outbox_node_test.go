package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// TestOutboxDropsNode: the outbox to a subscriber node cannot publish
// (blocked); the owner's deliveries to that node's subscribers never
// wait; past the bound every subscriber of the node is dropped (Deliver
// false: the owner forgets them) and told to rejoin with CodeSlow, once
// publishing resumes.
func TestOutboxDropsNode(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases, err := NewLeases(ctx, nc, LeaseOptions{Node: "own", TTL: 5 * time.Second, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = leases.Close(ctx) }()
	members, err := Join(ctx, nc, MemberOptions{Node: "own", TTL: 5 * time.Second, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = members.Leave(ctx) }()
	// The subscriber node is a live member (its subscribers are not
	// dropped for being of a node that left).
	subNode, err := Join(ctx, nc, MemberOptions{Node: "sub", TTL: 5 * time.Second, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = subNode.Leave(ctx) }()
	for {
		live, changed := members.Live()
		if len(live) == 2 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("live %v, want own and sub", live)
		}
	}
	n, err := NewNode(NodeConfig{Conn: nc, Leases: leases, Members: members, OutboxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Close(ctx) }()

	// Two subscribers of node "sub", whose outbox publishes into published
	// once release is closed.
	release := make(chan struct{})
	published := make(chan []byte, 16)
	o := newOutbox(1000, func(b []byte) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		published <- b
		return nil
	}, func(reason string) { n.dropSubscribersOf("sub", reason) })
	octx, ocancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { o.run(octx); close(done) }()
	defer func() { ocancel(); <-done }()
	var subs []*remoteSub
	n.mu.Lock()
	n.outboxes["sub"] = o
	for key := range uint64(2) {
		rs := &remoteSub{n: n, k: remoteKey{"sub", key + 1}, doc: "d", in: newFwdQueue(1), quit: make(chan struct{})}
		n.remotes[rs.k] = rs
		subs = append(subs, rs)
	}
	n.mu.Unlock()

	update := func() *owner.UpdateEvent {
		return &owner.UpdateEvent{Doc: "d", Updates: [][]byte{make([]byte, 600)}, From: 1, Version: 2}
	}
	u1 := update()
	if !subs[0].Deliver(u1) || !subs[1].Deliver(u1) {
		t.Fatal("the first update (in full, then a reference) was refused")
	}
	if subs[0].Deliver(update()) {
		t.Fatal("an update past the bound was taken")
	}
	if subs[1].Deliver(&owner.AckEvent{Doc: "d", Batch: 1, Status: protocol.AckDurable}) {
		t.Error("the node's other subscriber was not dropped")
	}
	if got := n.Stats().OutboxDrops; got != 1 {
		t.Errorf("OutboxDrops = %d, want 1", got)
	}
	close(release)
	// The update in full, its reference, then a notice per subscriber.
	var notices []uint64
	for len(notices) < 2 {
		select {
		case b := <-published:
			e, err := decodeEvt(b, protocol.DecodeLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if ev, ok := e.ev.(*owner.ErrorEvent); ok {
				if ev.Code != protocol.CodeSlow || !ev.End {
					t.Errorf("notice to %d: %+v, want code %d and End", e.key, ev, protocol.CodeSlow)
				}
				notices = append(notices, e.key)
			}
		case <-ctx.Done():
			t.Fatalf("notices received: %v, want one per subscriber", notices)
		}
	}
	if notices[0] == notices[1] {
		t.Errorf("notices to %v, want one to each subscriber", notices)
	}
}
