package server_test

// The cluster's failures seen by its clients: an owner node that crashes,
// stops gracefully or pauses (the tests' nodes and clients are in
// cluster_test.go).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// TestClusterOwnerCrash: the owner node dies (no release) while clients
// on the two other nodes edit; they are told to rejoin, the document moves
// once its lease expires, they resync and resend, and every edit acked
// durable is in the document exactly once.
func TestClusterOwnerCrash(t *testing.T) {
	nodes := startCluster(t, time.Second, nil)
	doc := docPlacedOn("c1")
	ws := []*writer{
		{client: dial(t, nodes[1].url, 11), doc: doc},
		{client: dial(t, nodes[2].url, 12), doc: doc},
	}
	for _, w := range ws {
		w.join(doc)
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Fatalf("the document is held by %q, want c1", h)
	}
	rounds := 12
	if testing.Short() {
		rounds = 6
	}
	var crashed time.Time
	for k := range rounds {
		if k == rounds/2 {
			nodes[0].crash()
			crashed = time.Now()
		}
		for i, w := range ws {
			w.insert(fmt.Sprintf("[%d.%d]", i, k))
		}
		if k == rounds/2 {
			t.Logf("every writer acked again %v after the crash", time.Since(crashed))
		}
	}
	if h := holder(t, nodes[1], doc); h != "c2" && h != "c3" {
		t.Errorf("after the crash the document is held by %q", h)
	}
	checkSet(t, nodes[2], doc, 13, ws...)
}

// TestClusterGracefulHandover: the owner node stops gracefully (SIGTERM):
// its lease is released at once, so the writers on the other nodes are
// acked again well within the lease TTL (5 s here), and nothing acked is lost.
func TestClusterGracefulHandover(t *testing.T) {
	const ttl = 5 * time.Second
	nodes := startCluster(t, ttl, nil)
	doc := docPlacedOn("c1")
	ws := []*writer{
		{client: dial(t, nodes[1].url, 21), doc: doc},
		{client: dial(t, nodes[2].url, 22), doc: doc},
	}
	for _, w := range ws {
		w.join(doc)
	}
	for k := range 3 {
		for i, w := range ws {
			w.insert(fmt.Sprintf("[%d.%d]", i, k))
		}
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Fatalf("the document is held by %q, want c1", h)
	}
	start := time.Now()
	nodes[0].stop()
	for i, w := range ws {
		w.insert(fmt.Sprintf("[%d.after]", i))
	}
	took := time.Since(start)
	t.Logf("stop and hand-over: every writer acked again after %v", took)
	if took >= ttl {
		t.Errorf("hand-over took %v: not before the lease TTL %v", took, ttl)
	}
	checkSet(t, nodes[1], doc, 23, ws...)
}

// pacer drives a node's lease renewals and heartbeats every period until
// paused: a paused node plays a process stopped (SIGSTOP) or cut off,
// whose goroutines do not run but whose state stays.
type pacer struct {
	renew, beat chan time.Time
	paused      chan bool
	beatsOff    chan struct{} // closed: heartbeats stop, renewals go on
	stop        chan struct{}
	done        chan struct{}
}

func newPacer(t *testing.T, period time.Duration) *pacer {
	p := &pacer{renew: make(chan time.Time), beat: make(chan time.Time), paused: make(chan bool),
		beatsOff: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		paused := false
		for {
			select {
			case paused = <-p.paused:
				continue
			case <-p.stop:
				return
			case now := <-tk.C:
				if paused {
					continue
				}
				for _, ch := range []chan time.Time{p.renew, p.beat} {
					if ch == p.beat {
						select {
						case <-p.beatsOff:
							continue
						default:
						}
					}
					select {
					case ch <- now:
					case paused = <-p.paused:
					case <-p.stop:
						return
					}
				}
			}
		}
	}()
	t.Cleanup(func() { close(p.stop); <-p.done })
	return p
}

func (p *pacer) pause()     { p.paused <- true }
func (p *pacer) stopBeats() { close(p.beatsOff) }
func (p *pacer) resume()    { p.paused <- false }

// TestClusterPausedOwner: the owner node stops running (its lease and
// membership expire) while clients edit; the others take the document
// over with a higher epoch. The paused node's own client then edits on
// the deposed owner: that edit is never acked durable (the log fences it
// off). Once the node runs again it finds its lease lost, gives the
// document up, and its client rejoins the new owner and resends; every
// edit acked durable, by either owner, is in the document exactly once.
func TestClusterPausedOwner(t *testing.T) {
	const ttl = time.Second
	pace := newPacer(t, ttl/4)
	nodes := startCluster(t, ttl, pace)
	doc := docPlacedOn("c1")
	local := &writer{client: dial(t, nodes[0].url, 31), doc: doc}
	remote := &writer{client: dial(t, nodes[1].url, 32), doc: doc}
	local.join(doc)
	remote.join(doc)
	for k := range 2 {
		local.insert(fmt.Sprintf("[l%d]", k))
		remote.insert(fmt.Sprintf("[r%d]", k))
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Fatalf("the document is held by %q, want c1", h)
	}

	pace.pause()
	// The remote client goes on editing; once c1's membership expires it
	// is told to rejoin, and the document moves.
	deadline := time.Now().Add(20 * time.Second)
	for k := 0; ; k++ {
		remote.insert(fmt.Sprintf("[p%d]", k))
		if h := holder(t, nodes[1], doc); h == "c2" || h == "c3" {
			t.Logf("taken over by %s after %d edits", h, k+1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the document did not move off the paused node")
		}
	}

	// The paused node's client edits on the deposed owner: refused, never
	// acked durable.
	local.batch++
	late := local.batch
	local.edit(doc, late, func(x *crdt.Text) error { return x.Insert(0, "[late]") })
	var refusal *protocol.Error
	for refusal == nil {
		switch m := local.read().(type) {
		case *protocol.Ack:
			if m.Batch == late && m.Status == protocol.AckDurable {
				t.Fatal("the deposed owner acked an edit durable")
			}
		case *protocol.Update:
			_ = local.doc_().ApplyUpdate(m.Update)
		case *protocol.Error:
			if !m.Code.Retry() {
				t.Fatalf("terminal error %v", m)
			}
			refusal = m
		}
	}
	t.Logf("the deposed owner refused the edit: %v", refusal)

	pace.resume()
	local.insert("[l-after]")
	remote.insert("[r-after]")
	checkSet(t, nodes[2], doc, 33, local, remote)
	c := dial(t, nodes[1].url, 34)
	c.join(doc)
	if n := strings.Count(c.doc.Text("body").String(), "[late]"); n != 1 {
		t.Errorf("the refused edit, resent after the rejoin, is in the document %d times", n)
	}
}

func nodeByID(nodes []*clusterNode, id string) *clusterNode {
	for _, n := range nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}
