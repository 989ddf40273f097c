package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// TestTakeoverRace: four writers keep appending to one document while it
// is taken over again and again (each takeover at a higher epoch, as
// leases give them, some of them racing a stale Open at an old epoch).
// Then: the log loads (epochs never go back: no deposed writer appended
// after a newer fence), every acked update is in it once, and the updates
// are in epoch order.
func TestTakeoverRace(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := natstest.Single(t)
	nc := c.Connect()
	const writers, takeovers = 4, 12
	var stores []*jetstream.Store
	for range writers {
		stores = append(stores, newStore(t, nc, jetstream.Options{}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const doc = "hot"

	var mu sync.Mutex
	acked := map[string]bool{}
	epochOf := make([]uint64, writers)         // the epoch each writer last opened at; guarded by mu
	reopened := make([]chan struct{}, writers) // closed and replaced when a writer is opened; guarded by mu
	for w := range reopened {
		reopened[w] = make(chan struct{})
	}
	progress := make(chan struct{}, 1<<16) // one token per acked update
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				e := epochOf[w]
				mu.Unlock()
				u := fmt.Sprintf("%d/%d/%d", e, w, i)
				p, err := stores[w].Submit(doc, []byte(u))
				if err == nil {
					<-p.Done()
					if _, err = p.Result(); err == nil {
						mu.Lock()
						acked[u] = true
						mu.Unlock()
						select {
						case progress <- struct{}{}:
						default:
						}
						continue
					}
				}
				if !errors.Is(err, jetstream.ErrFenced) && !errors.Is(err, jetstream.ErrNotOpen) {
					t.Errorf("update %s: %v", u, err)
				}
				// Not open yet, or fenced: wait until this writer is
				// opened again (unless it was since this update).
				mu.Lock()
				again := reopened[w]
				if epochOf[w] != e {
					again = nil
				}
				mu.Unlock()
				if again != nil {
					select {
					case <-stop:
						return
					case <-again:
					}
				}
			}
		}()
	}
	opened := func(w int, epoch uint64) {
		mu.Lock()
		defer mu.Unlock()
		if epoch > epochOf[w] {
			epochOf[w] = epoch
			close(reopened[w])
			reopened[w] = make(chan struct{})
		}
	}
	// Takeovers at even epochs; half of them race an Open at the odd epoch
	// below (a node that acquired the lease just before, and is deposed at
	// once): its fence may land after the newer one.
	for k := uint64(1); k <= takeovers; k++ {
		epoch := 2 * k
		w := rng.IntN(writers)
		var racer sync.WaitGroup
		if rng.IntN(2) == 0 {
			racer.Add(1)
			go func() {
				defer racer.Done()
				o := (w + 1) % writers
				if _, err := stores[o].Open(ctx, doc, epoch-1); err == nil || errors.Is(err, jetstream.ErrNotFound) {
					opened(o, epoch-1)
				}
			}()
		}
		if _, err := stores[w].Open(ctx, doc, epoch); err != nil && !errors.Is(err, jetstream.ErrNotFound) {
			t.Fatalf("takeover at epoch %d by writer %d: %v", epoch, w, err)
		}
		racer.Wait()
		opened(w, epoch)
		// Let the new owner write a little before the next takeover.
		for range len(progress) {
			<-progress
		}
		for range 20 {
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatal("no progress after a takeover")
			}
		}
	}
	close(stop)
	wg.Wait()

	st, err := stores[0].Load(ctx, doc)
	if err != nil {
		t.Fatalf("Load after the takeovers: %v", err)
	}
	seen := map[string]int{}
	var prevEpoch uint64
	for _, e := range st.Tail {
		u := string(e.Data)
		seen[u]++
		var ep uint64
		var w, i int
		if _, err := fmt.Sscanf(u, "%d/%d/%d", &ep, &w, &i); err != nil {
			t.Fatalf("update %q: %v", u, err)
		}
		if ep < prevEpoch {
			t.Errorf("update %s (epoch %d) after an update of epoch %d", u, ep, prevEpoch)
		}
		prevEpoch = ep
	}
	for u := range acked {
		if seen[u] != 1 {
			t.Errorf("acked update %s is in the log %d times", u, seen[u])
		}
	}
	t.Logf("%d updates acked, %d in the log", len(acked), len(st.Tail))
}
