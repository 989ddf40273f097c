package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
)

func durableAck(batch uint64) func(owner.Event) bool {
	return func(ev owner.Event) bool {
		a, ok := ev.(*owner.AckEvent)
		return ok && a.Batch == batch && a.Status == protocol.AckDurable
	}
}

// heldByDeadNode starts node a (leases and membership of the given TTL)
// and returns a document whose lease a node that then died holds: it
// never renews, never joined the membership, so the lease expires a TTL
// after its acquisition.
func heldByDeadNode(t *testing.T, ttl time.Duration) (*viewNode, string) {
	t.Helper()
	c := natstest.Single(t)
	a := startViewNodeTTL(t, c, "a", nil, ttl)
	waitLive(t, a.members, "a")
	ghost := newLeases(t, c.Connect(), cluster.LeaseOptions{Node: "ghost", TTL: ttl, Renew: make(chan time.Time)})
	held := fmt.Sprintf("resolve-held-%d", time.Now().UnixNano())
	if _, err := ghost.Acquire(ctxT(t, 30*time.Second), held); err != nil {
		t.Fatal(err)
	}
	return a, held
}

// TestSubscribeResolvesInBackground: a session's document whose lease is
// held by a dead node (it must expire: a TTL) does not hold up the
// session's other document. Send of its Join returns at once; the other
// document is joined, written and acked durable while the first one's
// owner is still being found; the first one's Join and the update queued
// behind it then reach its new owner, in order. Before, the Join waited
// on the session's read loop for the lease, and every document of the
// connection with it (collabd chaos cluster: a writer's three documents
// failed over as slowly as the slowest one).
func TestSubscribeResolvesInBackground(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	a, held := heldByDeadNode(t, 5*time.Second)

	slow, err := a.n.Subscribe(held)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Release()
	s1 := newChanSub("s1")
	if !slow.Send(ctx, owner.Join{Sub: s1}) || !slow.Send(ctx, owner.Update{Sub: s1, Batch: 1, Update: []byte("queued")}) {
		t.Fatal("join or update of the held document not taken")
	}

	free := fmt.Sprintf("resolve-free-%d", time.Now().UnixNano())
	fast, err := a.n.Subscribe(free)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Release()
	s2 := newChanSub("s2")
	if !fast.Send(ctx, owner.Join{Sub: s2}) {
		t.Fatal("join not sent")
	}
	s2.await(ctx, t, "sync of the free document", finalSync)
	if !fast.Send(ctx, owner.Update{Sub: s2, Batch: 1, Update: []byte("x")}) {
		t.Fatal("update not sent")
	}
	s2.await(ctx, t, "durable ack on the free document", durableAck(1))
	for {
		select {
		case ev := <-s1.ev:
			if finalSync(ev) {
				t.Fatal("the held document synced before the free one was acked: its lease expired already?")
			}
			continue
		default:
		}
		break
	}

	// Once the dead node's lease expires, the held document's Join and the
	// update queued behind it reach its new owner.
	s1.await(ctx, t, "sync of the held document", finalSync)
	s1.await(ctx, t, "durable ack of the queued update", durableAck(1))
	if slow.Remote() {
		t.Fatalf("%s not claimed by a", held)
	}
}

// TestSubscribeReleasedWhileResolving: a Ref released while its owner is
// still being found gives up cleanly (no goroutine or document left
// behind: the node closes, the registry shuts down), and a later
// subscriber of the document is served.
func TestSubscribeReleasedWhileResolving(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	a, held := heldByDeadNode(t, 2*time.Second)
	r, err := a.n.Subscribe(held)
	if err != nil {
		t.Fatal(err)
	}
	s1 := newChanSub("s1")
	r.Send(ctx, owner.Join{Sub: s1})
	r.Send(ctx, owner.Leave{Sub: s1})
	r.Release()

	r2, err := a.n.Subscribe(held)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Release()
	s2 := newChanSub("s2")
	r2.Send(ctx, owner.Join{Sub: s2})
	s2.await(ctx, t, "sync of a later subscriber", finalSync)
	select {
	case ev := <-s1.ev:
		if finalSync(ev) {
			t.Fatal("the released subscriber was synced")
		}
	default:
	}
}
