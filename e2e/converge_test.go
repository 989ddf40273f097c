package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server"
)

// checkConverged waits until every replica in reps has the server's state
// for doc (a fresh client's view), then compares them byte for byte. It
// returns the server's view.
func checkConverged(t *testing.T, seed uint64, url, doc string, reps []*collab.Document) snapshot {
	t.Helper()
	fresh := dialClient(t, url, 0, nil)
	fd := join(t, fresh, doc)
	want := snap(fd)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, d := range reps {
		if err := waitSV(ctx, d, fd.StateVector()); err != nil {
			t.Fatalf("seed %d: doc %s: replica %d never reached the server's state: %v", seed, doc, i, err)
		}
		if got := snap(d); !got.equal(want) {
			t.Fatalf("seed %d: doc %s: replica %d = %q (sv %x), server %q (sv %x)", seed, doc, i, got.texts, got.sv, want.texts, want.sv)
		}
	}
	_ = fresh.Close()
	return want
}

// randomEdit makes one random edit of d's root "body" or "title".
func randomEdit(r *rand.Rand, d *collab.Document, tag string) error {
	root := "body"
	if r.IntN(4) == 0 {
		root = "title"
	}
	return d.Edit(func(doc *crdt.Doc) error {
		x := doc.Text(root)
		n := x.Len()
		if n > 0 && r.IntN(3) == 0 {
			pos := r.IntN(n)
			return x.Delete(pos, 1+r.IntN(min(n-pos, 5)))
		}
		return x.Insert(r.IntN(n+1), tag)
	})
}

// TestConvergeWithDisconnects: several clients edit several documents
// concurrently while their connections are cut at random; at quiescence
// every client, the server, and a server restarted from the same file agree.
func TestConvergeWithDisconnects(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const clients, docs, edits = 5, 3, 400
	ts := startServer(t, server.Config{})

	sws := make([]*netSwitch, clients)
	reps := make([][]*collab.Document, docs) // reps[doc][client]
	cls := make([]*collab.Client, clients)
	for i := range clients {
		sws[i] = &netSwitch{}
		cls[i] = dialClient(t, ts.url(), 0, sws[i])
		for j := range docs {
			reps[j] = append(reps[j], join(t, cls[i], fmt.Sprintf("doc-%d", j)))
		}
	}

	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for k := range edits {
				d := reps[r.IntN(docs)][i]
				if err := randomEdit(r, d, fmt.Sprintf("<%d.%d>", i, k)); err != nil {
					errs <- fmt.Errorf("client %d edit %d: %w", i, k, err)
					return
				}
				if r.IntN(20) == 0 {
					sws[i].cut()
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	for range clients {
		if err := <-errs; err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for j := range docs {
		for i, d := range reps[j] {
			if err := d.WaitDurable(ctx); err != nil {
				t.Fatalf("seed %d: client %d doc %d: WaitDurable: %v (status %+v)", seed, i, j, err, d.Status())
			}
		}
	}
	views := make([]snapshot, docs)
	for j := range docs {
		views[j] = checkConverged(t, seed, ts.url(), fmt.Sprintf("doc-%d", j), reps[j])
	}
	for _, c := range cls {
		_ = c.Close()
	}
	ts.restart()
	for j := range docs {
		got := checkConverged(t, seed, ts.url(), fmt.Sprintf("doc-%d", j), nil)
		if !got.equal(views[j]) {
			t.Fatalf("seed %d: doc %d after restart = %q, before %q", seed, j, got.texts, views[j].texts)
		}
	}
}

// TestOfflineEditsMerge: edits made while a client cannot connect merge
// with concurrent edits once it is back.
func TestOfflineEditsMerge(t *testing.T) {
	ts := startServer(t, server.Config{})
	swA := &netSwitch{}
	a := dialClient(t, ts.url(), 0, swA)
	b := dialClient(t, ts.url(), 0, nil)
	da, db := join(t, a, "offline"), join(t, b, "offline")
	if err := da.Insert("body", 0, "hello world"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := da.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitSV(ctx, db, da.StateVector()); err != nil {
		t.Fatal(err)
	}

	swA.setOffline(true)
	swA.cut()
	if err := da.Insert("body", 5, ", offline"); err != nil {
		t.Fatal(err)
	}
	if err := da.Delete("body", 0, 1); err != nil {
		t.Fatal(err)
	}
	if st := da.Status(); st.Undurable == 0 {
		t.Fatalf("offline edits reported durable: %+v", st)
	}
	if err := db.Insert("body", len([]rune(db.String("body"))), "!"); err != nil { // at the end
		t.Fatal(err)
	}
	if err := db.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	swA.setOffline(false)
	if err := da.WaitDurable(ctx); err != nil {
		t.Fatalf("WaitDurable after reconnect: %v (status %+v)", err, da.Status())
	}
	got := checkConverged(t, 0, ts.url(), "offline", []*collab.Document{da, db})
	if want := "ello, offline world!"; got.texts["body"] != want {
		t.Fatalf("merged text %q, want %q", got.texts["body"], want)
	}
}

// TestDurableSurvivesRestart: every edit reported durable is present, once,
// after the server restarts — also when restarts happen while clients write.
func TestDurableSurvivesRestart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ts := startServer(t, server.Config{})
	const writers, rounds = 3, 6
	cls := make([]*collab.Document, writers)
	sws := make([]*netSwitch, writers)
	for i := range writers {
		sws[i] = &netSwitch{}
		cls[i] = join(t, dialClient(t, ts.url(), 0, sws[i]), "durable")
	}
	type result struct {
		durable []string
		err     error
	}
	start := make(chan struct{})
	results := make(chan result, writers)
	for i := range writers {
		go func() {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			d := cls[i]
			var durable []string
			<-start
			for k := range rounds * 5 {
				mark := fmt.Sprintf("[%d:%d]", i, k)
				if err := d.Insert("body", 0, mark); err != nil {
					results <- result{err: err}
					return
				}
				if r.IntN(10) == 0 {
					sws[i].cut()
				}
				if k%5 == 4 {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					err := d.WaitDurable(ctx)
					cancel()
					if err != nil {
						results <- result{err: fmt.Errorf("writer %d: WaitDurable: %w", i, err)}
						return
					}
					for j := k - 4; j <= k; j++ {
						durable = append(durable, fmt.Sprintf("[%d:%d]", i, j))
					}
				}
			}
			results <- result{durable: durable}
		}()
	}
	close(start)
	// Restart the server while the writers write (clients reconnect to the
	// same address).
	ts.restart()
	ts.restart()
	var marks []string
	for range writers {
		res := <-results
		if res.err != nil {
			t.Fatalf("seed %d: %v", seed, res.err)
		}
		marks = append(marks, res.durable...)
	}
	ts.restart()
	fresh := dialClient(t, ts.url(), 0, nil)
	body := join(t, fresh, "durable").String("body")
	for _, m := range marks {
		if n := strings.Count(body, m); n != 1 {
			t.Errorf("seed %d: durable mark %s present %d times after restart", seed, m, n)
		}
	}
	if len(marks) != writers*rounds*5 {
		t.Fatalf("seed %d: %d marks reported durable, want %d", seed, len(marks), writers*rounds*5)
	}
}
