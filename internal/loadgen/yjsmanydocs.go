package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	yproto "github.com/collabd/collabd/protocol/yjs"
)

// RunYjsManyDocs is RunManyDocs over a Yjs wire (proto): Docs documents
// with PerDoc Go Yjs clients each, every client typing a marker at a random
// position Rate times a second; latency runs from an insert to each other
// client of its document having it; every document must converge.
// (Cursors are not sent over the Yjs wires.)
func RunYjsManyDocs(ctx context.Context, cfg Config, proto string, p ManyDocs) (*Result, error) {
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	cfg, p = cfg.withDefaults(), p.withDefaults()
	start := time.Now()
	res := newResult("manydocs", param("protocol", proto), param("docs", p.Docs), param("per-doc", p.PerDoc),
		param("rate", p.Rate), param("duration", p.Duration))
	prefix := "many-" + runID() + "-"
	perDoc := int(p.Rate*p.Duration.Seconds()+1) * p.PerDoc
	clks := make([]*clock, p.Docs)
	authors := make([][]atomic.Int32, p.Docs) // marker -> writer index + 1
	for d := range clks {
		clks[d] = newClock(perDoc)
		authors[d] = make([]atomic.Int32, len(clks[d].sent))
	}
	n := p.Docs * p.PerDoc
	conns := make([]*yjsConn, n)
	lat := make([]latencies, n)
	seen := make([]atomic.Int64, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	var readers sync.WaitGroup
	t0 := time.Now()
	cfg.stage("connecting %d clients to %d documents over %s", n, p.Docs, proto)
	err := connectYjs(ctx, cfg, proto, conns, func(i int) string { return fmt.Sprintf("%s%d", prefix, i/p.PerDoc) }, &readers,
		func(i int, c *yjsConn) {
			d := i / p.PerDoc
			got := make([]bool, len(clks[d].sent))
			count := 0
			_ = c.run(func(int, time.Time) {}, func(text string, at time.Time) {
				for _, r := range text {
					k := markerIndex(r)
					if k < 0 || k >= len(got) || got[k] {
						continue
					}
					got[k] = true
					count++
					if int(authors[d][k].Load()) != i+1 {
						if dur, ok := clks[d].since(k, at); ok {
							lat[i].add(dur)
						}
					}
				}
				seen[i].Store(int64(count))
			})
		})
	if err != nil {
		return nil, err
	}
	res.add(metric("clients connected in", time.Since(t0).Seconds(), "s"))

	smp := startSampler(ctx, newProbe(cfg), 500*time.Millisecond)
	cfg.stage("typing for %v", p.Duration)
	typing, cancel := context.WithTimeout(ctx, p.Duration)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := i / p.PerDoc
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			period := time.Duration(float64(time.Second) / p.Rate)
			select { // a random phase
			case <-typing.Done():
				return
			case <-time.After(time.Duration(rng.Int64N(int64(period)))):
			}
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				k := clks[d].take()
				if k < 0 {
					return
				}
				authors[d][k].Store(int32(i + 1))
				clks[d].stamp(k)
				if err := c.insertRandom(uint64(1000+i), rng, string(markerRune(k))); err != nil {
					return
				}
				select {
				case <-typing.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	use := smp.stop(ctx)
	stopped := time.Now()
	cfg.stage("waiting for every client to see every insert")
	settle, cancelSettle := context.WithTimeout(ctx, cfg.Settle)
	defer cancelSettle()
	// A client's own last inserts are in its text without an update from
	// the server: count markers in the texts, not only in what arrived.
	markers := func(i int) int {
		if m := int(seen[i].Load()); m >= clks[i/p.PerDoc].used() {
			return m
		}
		m := 0
		for _, r := range conns[i].text() {
			if markerIndex(r) >= 0 {
				m++
			}
		}
		return m
	}
	allSeen := waitUntil(settle, cfg.Settle, func() bool {
		for i := range conns {
			if markers(i) < clks[i/p.PerDoc].used() {
				return false
			}
		}
		return true
	})
	caught := time.Since(stopped)
	var all latencies
	diverged, missing, sent := 0, 0, 0
	for d := range p.Docs {
		sent += clks[d].used()
		var texts []string
		for i := d * p.PerDoc; i < (d+1)*p.PerDoc; i++ {
			texts = append(texts, conns[i].text())
			if markers(i) < clks[d].used() {
				missing++
			}
		}
		if differing(texts[0], texts[1:]) > 0 {
			diverged++
		}
	}
	for _, c := range conns {
		c.close()
	}
	readers.Wait()
	for i := range lat {
		all.merge(&lat[i])
	}
	res.add(metric("inserts sent", float64(sent), ""), metric("inserts/s", float64(sent)/p.Duration.Seconds(), ""))
	res.add(all.summary("latency")...)
	res.add(metric("last client caught up after typing stopped", float64(caught.Milliseconds()), "ms"))
	res.add(use.metrics("load")...)
	res.check("all inserts seen", allSeen, "%d of %d clients missed inserts after %v", missing, n, cfg.Settle)
	res.check("converged", diverged == 0, "%d of %d documents have differing texts", diverged, p.Docs)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// insertRandom inserts s at a random position of the text as client.
func (c *yjsConn) insertRandom(client uint64, rng *rand.Rand, s string) error {
	c.mu.Lock()
	pos := rng.IntN(utf8.RuneCountInString(c.doc.Text(yjsRoot)) + 1) // markers are BMP: one UTF-16 unit each
	u, err := c.doc.InsertText(client, yjsRoot, pos, s)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.sendSync(yproto.SyncUpdate, u)
}
