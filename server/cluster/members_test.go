package cluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/server/cluster"
)

func join(t *testing.T, nc *nats.Conn, opts cluster.MemberOptions) *cluster.Members {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	m, err := cluster.Join(ctxT(t, 30*time.Second), nc, opts)
	if err != nil {
		t.Fatalf("Join(%s): %v", opts.Node, err)
	}
	t.Cleanup(func() { _ = m.Leave(context.Background()) }) // a test may have left already
	return m
}

// waitLive waits until m sees exactly want as live.
func waitLive(t *testing.T, m *cluster.Members, want ...string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		live, changed := m.Live()
		if slices.Equal(live, want) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s sees %v, want %v", m.Node(), live, want)
		}
	}
}

// TestMembers: nodes see each other join, leave (at once) and expire
// (after the TTL without heartbeats); placement follows.
func TestMembers(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	a := join(t, nc, cluster.MemberOptions{Node: "a", Info: []byte("addr-a"), TTL: time.Second})
	hung := make(chan time.Time) // never sent on: b stops heartbeating
	b := join(t, nc, cluster.MemberOptions{Node: "b", TTL: time.Second, Beat: hung})
	cm := join(t, nc, cluster.MemberOptions{Node: "c", TTL: time.Second})
	for _, m := range []*cluster.Members{a, b, cm} {
		waitLive(t, m, "a", "b", "c")
	}
	if info, ok := cm.Info("a"); !ok || string(info) != "addr-a" {
		t.Errorf("Info(a) = %q, %v", info, ok)
	}

	if err := cm.Leave(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitLive(t, a, "a", "b")
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("a left node was seen gone after %v, not at once", d)
	}
	// b does not heartbeat: it expires after the TTL; a heartbeats and
	// stays.
	waitLive(t, a, "a")
	live, _ := a.Live()
	if got := cluster.Place("doc", live); got != "a" {
		t.Errorf("Place over %v = %s", live, got)
	}
}

// TestMembersStuck: a node whose NATS server lost its quorum (its
// connection stays up: nats.go does not move) is told so after its
// heartbeats have failed for longer than the TTL, not before, and not
// while they land.
func TestMembersStuck(t *testing.T) {
	c := natstest.Start(t, 3)
	nc := c.ConnectTo(0, nats.MaxReconnects(-1))
	stuck := make(chan time.Time, 16)
	beats := time.NewTicker(100 * time.Millisecond)
	defer beats.Stop()
	x := join(t, nc, cluster.MemberOptions{Node: "x", TTL: time.Second, Replicas: 3, Beat: beats.C,
		Stuck: func() { stuck <- time.Now() }})
	waitLive(t, x, "x")
	cut := time.Now() // a Stuck before it, or within a TTL after it, fails below
	c.Kill(1)
	c.Kill(2)
	select {
	case at := <-stuck:
		if d := at.Sub(cut); d <= time.Second {
			t.Errorf("stuck %v after the quorum was lost, before the TTL", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("never told stuck with the quorum lost")
	}
}
