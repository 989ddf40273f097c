package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
)

// chanSub is a subscriber whose events go to a channel (never full in
// these tests: 256 events).
type chanSub struct {
	id string
	ev chan owner.Event
}

func newChanSub(id string) *chanSub { return &chanSub{id: id, ev: make(chan owner.Event, 256)} }

func (s *chanSub) ID() string      { return s.id }
func (s *chanSub) Seen() time.Time { return time.Now() }
func (s *chanSub) Deliver(ev owner.Event) bool {
	select {
	case s.ev <- ev:
		return true
	default:
		return false
	}
}
func (s *chanSub) DeliverSoft(ev owner.Event) bool { return s.Deliver(ev) }

// await returns the first event ok accepts, skipping the others, or fails
// the test at ctx's end.
func (s *chanSub) await(ctx context.Context, t *testing.T, what string, ok func(owner.Event) bool) owner.Event {
	t.Helper()
	for {
		select {
		case ev := <-s.ev:
			if ok(ev) {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("%s: no %s", s.id, what)
			return nil
		}
	}
}

func finalSync(ev owner.Event) bool {
	s, ok := ev.(*owner.SyncEvent)
	return ok && s.Final
}

func rejoinNotice(ev owner.Event) bool {
	e, ok := ev.(*owner.ErrorEvent)
	return ok && e.End && e.Code.Retry()
}

// viewNode is a whole cluster.Node on a shared NATS server.
type viewNode struct {
	node
	members *cluster.Members
	reg     *owner.Registry
	n       *cluster.Node
}

func startViewNode(t *testing.T, c *natstest.Cluster, id string, beat <-chan time.Time) *viewNode {
	t.Helper()
	return startViewNodeTTL(t, c, id, beat, time.Second)
}

// startViewNodeTTL is startViewNode with a lease and membership TTL.
func startViewNodeTTL(t *testing.T, c *natstest.Cluster, id string, beat <-chan time.Time, ttl time.Duration) *viewNode {
	t.Helper()
	nc := c.Connect()
	v := &viewNode{node: newNode(t, nc, cluster.LeaseOptions{Node: id, TTL: ttl})}
	v.members = join(t, nc, cluster.MemberOptions{Node: id, TTL: ttl, Beat: beat})
	v.reg = registry(t, v.store)
	var err error
	v.n, err = cluster.NewNode(cluster.NodeConfig{Conn: nc, Leases: v.leases, Members: v.members, Logs: v.js,
		Registry: v.reg, IdleUnload: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the owners first, then the node (NodeConfig)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = v.reg.Shutdown(ctx)
		_ = v.n.Close(ctx)
	})
	return v
}

// TestForwardedSubscriberOfNodeOutOfView: the owner node's membership view
// loses a node that is alive and still routes a session here (its watcher
// missed the heartbeats; the other node still sees the owner node). The
// subscriber forwarded from it is dropped, and told to rejoin; its rejoin
// is answered with a sync although the owner node still does not see its
// node. Found by collabd chaos cluster: dropped in silence, the forwarded
// sessions of a document waited for the sync of their Join for minutes
// (live=false, no error) after an owner's SIGKILL, whose election stalled
// the new owner's membership watcher.
func TestForwardedSubscriberOfNodeOutOfView(t *testing.T) {
	c := natstest.Single(t)
	ctx := ctxT(t, 60*time.Second)
	// b heartbeats until its ticker stops: then only a's view loses it
	// (a node never leaves its own view; a goes on heartbeating).
	bBeat := time.NewTicker(300 * time.Millisecond)
	defer bBeat.Stop()
	a := startViewNode(t, c, "a", nil)
	b := startViewNode(t, c, "b", bBeat.C)
	waitLive(t, a.members, "a", "b")
	waitLive(t, b.members, "a", "b")

	// A document whose place is a, owned there (a local user holds it).
	doc := ""
	for i := 0; doc == ""; i++ {
		if d := fmt.Sprintf("view-%d", i); cluster.Place(d, []string{"a", "b"}) == "a" {
			doc = d
		}
	}
	local, err := a.n.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Release()
	if local.Remote() {
		t.Fatalf("%s is not owned by a", doc)
	}

	// A session of b joins it: forwarded to a, synced.
	ref, err := b.n.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	if !ref.Remote() {
		t.Fatalf("%s is owned by b, want forwarded to a", doc)
	}
	sub := newChanSub("s1")
	if !ref.Send(ctx, owner.Join{Sub: sub}) {
		t.Fatal("join not sent")
	}
	sub.await(ctx, t, "sync of the first join", finalSync)
	if got := a.n.Stats().ForwardedIn; got != 1 {
		t.Fatalf("a serves %d forwarded subscribers, want 1", got)
	}

	// b stops heartbeating: a's view loses it, b's keeps a.
	bBeat.Stop()
	waitLive(t, a.members, "a")
	if live, _ := b.members.Live(); !slices.Contains(live, "a") {
		t.Fatalf("b sees %v, want a among them", live)
	}

	// The forwarded subscriber is dropped and told so.
	wait := ctxT(t, 10*time.Second)
	ev := sub.await(wait, t, "rejoin notice after a lost sight of b", rejoinNotice).(*owner.ErrorEvent)
	if ev.Code != protocol.CodeDocUnloading {
		t.Errorf("notice %+v, want code %d", ev, protocol.CodeDocUnloading)
	}
	// Its rejoin is answered: b still routes to a, a serves it.
	if !ref.Send(ctx, owner.Join{Sub: sub}) {
		t.Fatal("rejoin not sent")
	}
	sub.await(wait, t, "sync of the rejoin", finalSync)
}

// TestRoutedToRenewingNodeOutOfView: a document's lease is held, and
// renewed, by a node that this node's view has lost (its membership
// watcher missed the heartbeats). Acquire does not wait for the lease to
// expire for as long as the view is wrong (it never expires: it is
// renewed): a renewal seen while it waited shows the holder alive, and the
// document is routed there; the Join is answered.
func TestRoutedToRenewingNodeOutOfView(t *testing.T) {
	c := natstest.Single(t)
	ctx := ctxT(t, 60*time.Second)
	bBeat := time.NewTicker(300 * time.Millisecond)
	defer bBeat.Stop()
	a := startViewNode(t, c, "a", nil)
	b := startViewNode(t, c, "b", bBeat.C)
	waitLive(t, a.members, "a", "b")
	waitLive(t, b.members, "a", "b")

	doc := ""
	for i := 0; doc == ""; i++ {
		if d := fmt.Sprintf("view-%d", i); cluster.Place(d, []string{"a", "b"}) == "b" {
			doc = d
		}
	}
	local, err := b.n.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Release()
	if local.Remote() {
		t.Fatalf("%s is not owned by b", doc)
	}
	bBeat.Stop()
	waitLive(t, a.members, "a")

	// Within a few TTLs (the wait for a dead node's lease is one TTL), not
	// when a's view comes back (never, here).
	actx := ctxT(t, 5*time.Second)
	ref, err := a.n.Acquire(actx, doc)
	if err != nil {
		t.Fatalf("acquire of a document whose holder renews but is not in the view: %v", err)
	}
	defer ref.Release()
	if !ref.Remote() {
		t.Fatalf("%s claimed by a while b holds it", doc)
	}
	sub := newChanSub("s1")
	if !ref.Send(ctx, owner.Join{Sub: sub}) {
		t.Fatal("join not sent")
	}
	sub.await(actx, t, "sync of the join forwarded to b", finalSync)
}
