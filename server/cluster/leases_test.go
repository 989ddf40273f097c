package cluster_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/server/cluster"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newLeases(t *testing.T, nc *nats.Conn, opts cluster.LeaseOptions) *cluster.Leases {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	l, err := cluster.NewLeases(ctxT(t, 30*time.Second), nc, opts)
	if err != nil {
		t.Fatalf("NewLeases: %v", err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) }) // a test may have closed it
	return l
}

// waitClosed waits for ch with a ceiling.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not within 20s", what)
	}
}

// TestLeaseHandOver: one holder at a time; Release hands over at once (no
// TTL wait), with a higher epoch.
func TestLeaseHandOver(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	a := newLeases(t, nc, cluster.LeaseOptions{Node: "a", TTL: time.Minute})
	b := newLeases(t, nc, cluster.LeaseOptions{Node: "b", TTL: time.Minute})
	ctx := ctxT(t, 20*time.Second)
	const doc = "doc/1 with spaces.*>"

	la, err := a.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.Acquire(ctx, doc); err != nil || again != la {
		t.Fatalf("Acquire by the holder = %v, %v; want its lease", again, err)
	}
	var held *cluster.HeldError
	if _, err := b.Acquire(ctx, doc); !errors.As(err, &held) || !errors.Is(err, cluster.ErrHeld) || held.Holder != "a" {
		t.Fatalf("Acquire of a held lease = %v, want a HeldError naming a", err)
	}
	free := make(chan error, 1)
	go func() { free <- b.AwaitFree(ctx, doc) }()
	start := time.Now()
	if err := a.Release(ctx, la); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, la.Lost(), "released lease's Lost")
	if !errors.Is(la.Err(), cluster.ErrReleased) {
		t.Errorf("released lease's Err = %v", la.Err())
	}
	select {
	case err := <-free:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("AwaitFree did not return after Release")
	}
	lb, err := b.Acquire(ctx, doc)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hand-over took %v (the TTL is a minute: it must not wait for it)", d)
	}
	if lb.Epoch <= la.Epoch {
		t.Errorf("epochs %d then %d: not increasing", la.Epoch, lb.Epoch)
	}
	// Close releases what it holds.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, lb.Lost(), "lease of a closed Leases")
	if _, err := a.Acquire(ctx, doc); err != nil {
		t.Errorf("Acquire after the holder closed: %v", err)
	}
	if _, err := b.Acquire(ctx, doc); !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Acquire on a closed Leases = %v, want ErrClosed", err)
	}
}

// TestLeaseExpiry: a holder that stops renewing loses the lease after the
// TTL: the servers expire the key, another node takes it with a higher
// epoch, and the old holder's next renewal reports the loss.
func TestLeaseExpiry(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	renew := make(chan time.Time)
	a := newLeases(t, nc, cluster.LeaseOptions{Node: "a", TTL: time.Second, Renew: renew})
	b := newLeases(t, nc, cluster.LeaseOptions{Node: "b", TTL: time.Second})
	ctx := ctxT(t, 20*time.Second)

	la, err := a.Acquire(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.AwaitFree(ctx, "d"); err != nil {
		t.Fatalf("AwaitFree: %v", err)
	}
	expired := time.Since(start)
	lb, err := b.Acquire(ctx, "d")
	if err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
	if lb.Epoch <= la.Epoch {
		t.Errorf("epochs %d then %d: not increasing", la.Epoch, lb.Epoch)
	}
	renew <- time.Now()
	waitClosed(t, la.Lost(), "expired lease's Lost")
	if !errors.Is(la.Err(), cluster.ErrLeaseLost) {
		t.Errorf("expired lease's Err = %v, want ErrLeaseLost", la.Err())
	}
	t.Logf("expired after %v (TTL 1s)", expired)
	if expired < 900*time.Millisecond {
		t.Errorf("expired after %v, before the TTL", expired)
	}
	// b renews (its own ticker): it keeps the lease past several TTLs.
	wctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	if err := a.AwaitFree(wctx, "d"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a renewed lease became free: %v", err)
	}
	if lb.Err() != nil {
		t.Errorf("renewed lease: %v", lb.Err())
	}
}

// TestLeaseHeldPastTTL: a holder whose clock says the TTL has passed
// since its last renewal (a pause, a leaderless bucket) still asks the
// servers, and keeps the lease when its revision is still current: only
// the servers' answer loses a lease (docs/CLUSTER.md, "a lease bucket
// without a leader is not a lost lease").
func TestLeaseHeldPastTTL(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	t0 := time.Unix(1000, 0)
	renew := make(chan time.Time)
	a := newLeases(t, nc, cluster.LeaseOptions{Node: "a", TTL: time.Minute, Renew: renew, Now: func() time.Time { return t0 }})
	ctx := ctxT(t, 20*time.Second)
	la, err := a.Acquire(ctx, "d") // renewed at t0
	if err != nil {
		t.Fatal(err)
	}
	renew <- t0.Add(85 * time.Second) // past the TTL by the holder's clock
	renew <- t0.Add(85 * time.Second) // taken once the first renewal is done
	if la.Err() != nil {
		t.Fatalf("lease whose revision is current lost: %v", la.Err())
	}
	if h, _, err := a.Holder(ctx, "d"); err != nil || h != "a" {
		t.Errorf("Holder = %q, %v; want a", h, err)
	}
}

// TestLeaseRenewalLandedLate: a renewal whose request timed out but which
// landed (its answer came too late) moved the key's revision; the next
// renewal, by the old revision, is refused — and must not lose the lease.
// Another node's value at a later revision still does.
func TestLeaseRenewalLandedLate(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	renew := make(chan time.Time)
	a := newLeases(t, nc, cluster.LeaseOptions{Node: "a", TTL: time.Minute, Renew: renew})
	ctx := ctxT(t, 20*time.Second)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "collabd_leases")
	if err != nil {
		t.Fatal(err)
	}
	key := func(doc string) string { return base64.RawURLEncoding.EncodeToString([]byte(doc)) }
	la, err := a.Acquire(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	// The lost answer: the write of a's renewal is in, a never saw it.
	landed, err := kv.Update(ctx, key("late"), []byte("a"), la.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	renew <- time.Now()
	renew <- time.Now() // taken once the first round is done
	if la.Err() != nil {
		t.Fatalf("lease lost after its own late renewal: %v", la.Err())
	}
	if _, rev, err := a.Holder(ctx, "late"); err != nil || rev <= landed {
		t.Errorf("revision %d, %v; want renewed past the landed %d", rev, err, landed)
	}
	if la.Epoch == landed {
		t.Errorf("epoch moved to %d", landed)
	}

	// A later revision written by another node is a takeover.
	lb, err := a.Acquire(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, key("taken"), []byte("b"), lb.Epoch); err != nil {
		t.Fatal(err)
	}
	renew <- time.Now()
	waitClosed(t, lb.Lost(), "lease overwritten by another node")
	if !errors.Is(lb.Err(), cluster.ErrLeaseLost) {
		t.Errorf("Err = %v, want ErrLeaseLost", lb.Err())
	}
	if la.Err() != nil {
		t.Errorf("the other lease lost too: %v", la.Err())
	}
}

// TestLeaseExclusive: nodes on the three servers of a cluster race for one
// document, four goroutines each, over several rounds: exactly one epoch
// wins each round, and epochs increase.
func TestLeaseExclusive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := natstest.Start(t, 3)
	var nodes []*cluster.Leases
	for i := range 3 {
		nc := c.ConnectTo(i)
		nodes = append(nodes, newLeases(t, nc, cluster.LeaseOptions{Node: fmt.Sprintf("n%d", i+1), Replicas: 3, TTL: time.Minute}))
	}
	ctx := ctxT(t, 60*time.Second)
	var prev uint64
	for round := range 10 {
		var mu sync.Mutex
		won := map[*cluster.Lease]int{}
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i, l := range nodes {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-startGate
					lease, err := l.Acquire(ctx, "contended")
					if err == nil {
						mu.Lock()
						won[lease] = i
						mu.Unlock()
					} else if !errors.Is(err, cluster.ErrHeld) {
						t.Errorf("round %d node %d: %v", round, i, err)
					}
				}()
			}
		}
		close(startGate)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d leases won, want 1", round, len(won))
		}
		for lease, i := range won {
			if lease.Epoch <= prev {
				t.Fatalf("round %d: epoch %d after %d", round, lease.Epoch, prev)
			}
			prev = lease.Epoch
			if err := nodes[i].Release(ctx, lease); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLeaseSurvivesNodeLoss: the NATS node a holder is connected to
// stops; the client moves to another node and renewals go on (the bucket
// has three replicas): the lease is kept. The stopped node is not the
// bucket's raft leader: a leader's loss costs an election (4 to 9 s in
// nats-server 2.15), longer than the default TTL (docs/CLUSTER.md).
func TestLeaseSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := natstest.Start(t, 3)
	renew := make(chan time.Time)
	l := newLeases(t, c.Connect(), cluster.LeaseOptions{Node: "a", Replicas: 3, Renew: renew})
	ctx := ctxT(t, 30*time.Second)
	js, err := jetstream.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, "KV_collabd_leases")
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("bucket info: %v", err)
	}
	// The holder's own connection goes first to a node that is not the
	// bucket's leader, then to the others.
	var urls []string
	victim := -1
	for i, n := range c.Nodes {
		if n.Name() != info.Cluster.Leader && victim < 0 {
			victim = i
			urls = append([]string{n.ClientURL()}, urls...)
		} else {
			urls = append(urls, n.ClientURL())
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = l.Close(ctx) // the first one only created the bucket
	l = newLeases(t, nc, cluster.LeaseOptions{Node: "a", Replicas: 3, Renew: renew})
	lease, err := l.Acquire(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if nc.ConnectedServerName() != c.Nodes[victim].Name() {
		t.Fatalf("connected to %s, want %s", nc.ConnectedServerName(), c.Nodes[victim].Name())
	}
	c.Kill(victim)
	start := time.Now()
	for {
		renew <- time.Now() // returns once the renewer takes it: the previous renewal is done
		// A direct get routed to the stopped node's lingering interest
		// is never answered: a short deadline per read.
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		_, rev, err := l.Holder(hctx, "d")
		hcancel()
		if err == nil && rev > lease.Epoch {
			break
		}
		if lease.Err() != nil {
			t.Fatalf("lease lost after the node loss: %v", lease.Err())
		}
		if ctx.Err() != nil {
			t.Fatal("no renewal after the node loss")
		}
	}
	t.Logf("renewed %v after the node loss (now on %s)", time.Since(start), nc.ConnectedServerName())
	if lease.Err() != nil {
		t.Fatal(lease.Err())
	}
}

// TestLeaseRenewMany: one renewal round renews every held lease (in
// parallel, so that many leases fit in a third of the TTL).
func TestLeaseRenewMany(t *testing.T) {
	c := natstest.Single(t)
	renew := make(chan time.Time)
	l := newLeases(t, c.Connect(), cluster.LeaseOptions{Node: "a", Renew: renew, RenewParallel: 8})
	ctx := ctxT(t, 30*time.Second)
	var leases []*cluster.Lease
	for i := range 100 {
		lease, err := l.Acquire(ctx, fmt.Sprintf("doc-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, lease)
	}
	start := time.Now()
	renew <- time.Now()
	renew <- time.Now() // taken once the first round is done
	t.Logf("two rounds over %d leases in %v", len(leases), time.Since(start))
	for _, lease := range leases {
		_, rev, err := l.Holder(ctx, lease.Doc)
		if err != nil || rev == lease.Epoch || lease.Err() != nil {
			t.Fatalf("%s: revision %d (epoch %d), %v, %v: not renewed", lease.Doc, rev, lease.Epoch, err, lease.Err())
		}
	}
}
