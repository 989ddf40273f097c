package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ManyDocs is Docs documents with PerDoc clients each, every client typing
// Rate characters a second at random positions and moving its cursor.
type ManyDocs struct {
	Docs     int           // default 200
	PerDoc   int           // default 5
	Rate     float64       // inserts per second per client (default 2)
	Duration time.Duration // typing time (default 30s)
	Cursors  bool          // move the cursor after every insert
}

func (p ManyDocs) withDefaults() ManyDocs {
	if p.Docs <= 0 {
		p.Docs = 200
	}
	if p.PerDoc <= 0 {
		p.PerDoc = 5
	}
	if p.Rate <= 0 {
		p.Rate = 2
	}
	if p.Duration <= 0 {
		p.Duration = 30 * time.Second
	}
	return p
}

// typist is one full client of one document with its observer; owned by
// one goroutine at a time.
type typist struct {
	f   *full
	doc int
	obs *observer
	rng *rand.Rand
}

// RunManyDocs measures latency from an insert to each other client of its
// document seeing it, and checks that every document converges.
func RunManyDocs(ctx context.Context, cfg Config, p ManyDocs) (*Result, error) {
	cfg, p = cfg.withDefaults(), p.withDefaults()
	start := time.Now()
	res := newResult("manydocs", param("docs", p.Docs), param("per-doc", p.PerDoc), param("rate", p.Rate),
		param("duration", p.Duration), param("cursors", p.Cursors))
	prefix := "many-" + runID() + "-"
	perDocInserts := int(p.Rate*p.Duration.Seconds()+1) * p.PerDoc
	clks := make([]*clock, p.Docs)
	for i := range clks {
		clks[i] = newClock(perDocInserts)
	}
	ts := make([]*typist, p.Docs*p.PerDoc)
	fulls := make([]*full, len(ts))
	defer closeFull(fulls)
	t0 := time.Now()
	cfg.stage("connecting %d clients to %d documents", len(ts), p.Docs)
	if err := Bounded(ctx, len(ts), cfg.Dial, func(ctx context.Context, i int) error {
		f, err := dialFull(ctx, cfg.at(i), fmt.Sprintf("%s%d", prefix, i/p.PerDoc))
		if err != nil {
			return err
		}
		fulls[i] = f
		ts[i] = &typist{f: f, doc: i / p.PerDoc, obs: newObserver(clks[i/p.PerDoc]), rng: rand.New(rand.NewPCG(uint64(i), 7))}
		return nil
	}); err != nil {
		return nil, err
	}
	res.add(metric("clients connected in", time.Since(t0).Seconds(), "s"))

	smp := startSampler(ctx, newProbe(cfg), 500*time.Millisecond)
	nodes0 := readNodes(cfg.NodePIDs)
	cfg.stage("typing for %v", p.Duration)
	typing, cancel := context.WithTimeout(ctx, p.Duration)
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.typeRandom(typing, p.Rate, p.Cursors)
		}()
	}
	wg.Wait()
	cancel()
	use := smp.stop(ctx)
	nodes1 := readNodes(cfg.NodePIDs)
	stopped := time.Now()

	// Every client waits until it has every insert of its document.
	cfg.stage("waiting for every client to see every insert")
	settle, cancelSettle := context.WithTimeout(ctx, cfg.Settle)
	defer cancelSettle()
	caught := make([]time.Duration, len(ts))
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := t.obs.clk.used()
			if t.obs.watch(settle, t.f.d, fanRoot, func(n int) bool { return n >= want }) {
				caught[i] = time.Since(stopped)
			} else {
				caught[i] = -1
			}
		}()
	}
	wg.Wait()

	var lat latencies
	missing, diverged, sent := 0, 0, 0
	var worst time.Duration
	for d := range p.Docs {
		sent += clks[d].used()
		var texts []string
		for i := d * p.PerDoc; i < (d+1)*p.PerDoc; i++ {
			lat.merge(&ts[i].obs.lat)
			texts = append(texts, ts[i].f.d.String(fanRoot))
			if caught[i] < 0 {
				missing++
			}
			worst = max(worst, caught[i])
		}
		if differing(texts[0], texts[1:]) > 0 {
			diverged++
		}
	}
	res.add(metric("inserts sent", float64(sent), ""),
		metric("inserts/s", float64(sent)/p.Duration.Seconds(), ""))
	res.add(lat.summary("latency")...)
	res.add(metric("last client caught up after typing stopped", float64(worst.Milliseconds()), "ms"))
	res.add(use.metrics("load")...)
	res.add(nodeCPU(nodes0, nodes1, sent)...)
	res.check("all inserts seen", missing == 0, "%d of %d clients missed inserts after %v", missing, len(ts), cfg.Settle)
	res.check("converged", diverged == 0, "%d of %d documents have differing texts", diverged, p.Docs)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// typeRandom inserts a marker at a random position rate times a second
// (with a random phase) until ctx ends, watching remote changes meanwhile.
func (t *typist) typeRandom(ctx context.Context, rate float64, cursors bool) {
	period := time.Duration(float64(time.Second) / rate)
	phase := time.NewTimer(time.Duration(t.rng.Int64N(int64(period))))
	defer phase.Stop()
	var tick <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.f.d.Changes():
			t.obs.scan(t.f.d, fanRoot)
			continue
		case <-phase.C:
			tk := time.NewTicker(period)
			defer tk.Stop()
			tick = tk.C
		case <-tick:
		}
		k := t.obs.clk.take()
		if k < 0 {
			return
		}
		n := t.obs.n // every marker it has seen is in its text
		pos := t.rng.IntN(n + 1)
		t.obs.own(k)
		t.obs.clk.stamp(k)
		if err := t.f.d.Insert(fanRoot, pos, string(markerRune(k))); err != nil {
			return
		}
		if cursors {
			_ = t.f.d.SetCursor(fanRoot, pos+1, pos+1)
		}
	}
}
