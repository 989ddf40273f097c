package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// TestNoAckedLossOnNodeKill: a three-node cluster, a stream of three
// replicas; the stream leader's node is killed while updates are being
// written. Every update acked before, during and after is loaded back from
// the survivors, once, in order. The node then restarts, catches up, and
// carries the quorum when another node is killed.
func TestNoAckedLossOnNodeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := natstest.Start(t, 3)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{Replicas: 3, WriteTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const doc = "survivor"
	if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}

	var acked []string // in submission order
	failed := 0
	next := 0
	// write submits n updates, up to 16 in flight, and waits for them.
	write := func(n int) {
		t.Helper()
		for done := 0; done < n; {
			var ps []*jetstream.Pending
			var us []string
			for range 16 {
				u := fmt.Sprintf("u%d", next)
				p, err := s.Submit(doc, []byte(u))
				if errors.Is(err, jetstream.ErrBusy) {
					break
				}
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				next++
				ps, us = append(ps, p), append(us, u)
			}
			for i, p := range ps {
				select {
				case <-p.Done():
				case <-ctx.Done():
					t.Fatal("writes stalled")
				}
				if _, err := p.Result(); err == nil {
					acked = append(acked, us[i])
					done++
				} else if errors.Is(err, jetstream.ErrUnavailable) {
					failed++ // not acked: it may or may not be stored
				} else {
					t.Fatalf("update %s: %v", us[i], err)
				}
			}
		}
	}
	write(200)

	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, "collabd_ops")
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	leader := -1
	for i, n := range c.Nodes {
		if n.Name() == info.Cluster.Leader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("stream leader %q is not a node", info.Cluster.Leader)
	}
	start := time.Now()
	c.Kill(leader)
	write(200)
	t.Logf("killed the stream leader %s; 200 more acked after %v (%d unconfirmed)", info.Cluster.Leader, time.Since(start), failed)

	check(t, ctx, newStore(t, c.Connect(), jetstream.Options{Replicas: 3}), doc, acked, 400)

	// The killed node comes back and catches up; then another node dies,
	// so that the restarted one is needed for a quorum.
	start = time.Now()
	c.Restart(leader)
	t.Logf("restarted %s in %v", info.Cluster.Leader, time.Since(start))
	write(100)
	start, failed = time.Now(), 0
	c.Kill((leader + 1) % 3)
	write(100)
	t.Logf("killed another node; 100 more acked after %v (%d unconfirmed)", time.Since(start), failed)
	start = time.Now()
	check(t, ctx, s, doc, acked, 600)
	t.Logf("loaded in %v", time.Since(start))
}

// check loads doc and checks that every acked update is in it, once, in
// order.
func check(t *testing.T, ctx context.Context, s *jetstream.Store, doc string, acked []string, want int) {
	t.Helper()
	st, err := s.Load(ctx, doc)
	if err != nil {
		t.Fatalf("Load from the survivors: %v", err)
	}
	seen := map[string]int{}
	pos := map[string]int{}
	for i, e := range st.Tail {
		seen[string(e.Data)]++
		pos[string(e.Data)] = i
	}
	prev := -1
	for _, u := range acked {
		switch {
		case seen[u] == 0:
			t.Errorf("acked update %s lost", u)
		case seen[u] > 1:
			t.Errorf("acked update %s stored %d times", u, seen[u])
		case pos[u] < prev:
			t.Errorf("acked update %s out of order", u)
		default:
			prev = pos[u]
		}
	}
	if len(acked) < want {
		t.Errorf("%d acked, want %d", len(acked), want)
	}
}
