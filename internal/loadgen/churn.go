package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Churn runs Workers loops of connect → join → edit → wait durable → leave
// → close for Duration, then checks that the server's goroutines, file
// descriptors, threads and memory return near their baseline.
type Churn struct {
	Workers  int           // concurrent loops (default 20)
	Docs     int           // documents the loops pick from (default 10)
	Rate     float64       // cycles a second per loop at most (default 5)
	Duration time.Duration // default 20s
	Recover  time.Duration // how long to wait for the baseline afterwards (default 45s: documents unload after 30s idle)
}

// RunChurn measures cycles and cycle time, and the server's resources
// before, right after and some time after the churn.
func RunChurn(ctx context.Context, cfg Config, p Churn) (*Result, error) {
	cfg = cfg.withDefaults()
	if p.Workers <= 0 {
		p.Workers = 20
	}
	if p.Docs <= 0 {
		p.Docs = 10
	}
	if p.Duration <= 0 {
		p.Duration = 20 * time.Second
	}
	if p.Rate <= 0 {
		p.Rate = 5
	}
	if p.Recover <= 0 {
		p.Recover = 45 * time.Second
	}
	start := time.Now()
	res := newResult("churn", param("workers", p.Workers), param("docs", p.Docs), param("rate", p.Rate), param("duration", p.Duration), param("recover", p.Recover))
	pr := newProbe(cfg)
	prefix := "churn-" + runID() + "-"
	base := pr.read(ctx)

	cfg.stage("%d workers connecting, editing and leaving for %v", p.Workers, p.Duration)
	run, cancel := context.WithTimeout(ctx, p.Duration)
	defer cancel()
	deadline, _ := run.Deadline()
	lats := make([]latencies, p.Workers)
	errs := make([]int, p.Workers)
	var firstErr error
	var mu sync.Mutex // guards firstErr
	var wg sync.WaitGroup
	smp := startSampler(ctx, pr, 500*time.Millisecond)
	for w := range p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(time.Duration(float64(time.Second) / p.Rate))
			defer tk.Stop()
			for i := 0; ; i++ {
				select {
				case <-run.Done():
					return
				case <-tk.C:
				}
				t0 := time.Now()
				err := churnCycle(run, cfg, fmt.Sprintf("%s%d", prefix, (w+i)%p.Docs), w, i)
				switch {
				case err == nil:
					lats[w].add(time.Since(t0))
				// A dial bounded by run's deadline can time out by the clock
				// before run's timer cancels it: that is the end of the
				// run, not a failed cycle.
				case run.Err() == nil && time.Now().Before(deadline):
					errs[w]++
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	use := smp.stop(ctx)
	after := pr.read(ctx)

	var lat latencies
	nerr := 0
	for w := range lats {
		lat.merge(&lats[w])
		nerr += errs[w]
	}
	res.add(metric("cycles", float64(len(lat.d)), ""), metric("cycles/s", float64(len(lat.d))/p.Duration.Seconds(), ""),
		metric("failed cycles", float64(nerr), ""))
	res.add(lat.summary("cycle")...)
	res.add(use.metrics("churn")...)

	cfg.stage("waiting up to %v for the server to return to its baseline", p.Recover)
	// Wait for the baseline (bounded); documents unload after the server's idle delay.
	near := func(s snap) bool {
		return within(s.goroutines, base.goroutines, 3) && within(s.fds, base.fds, 2) // Go keeps idle OS threads: reported, not checked
	}
	var end snap
	t0 := time.Now()
	recovered := waitUntil(ctx, p.Recover, func() bool { end = pr.read(ctx); return near(end) })
	res.add(metric("time to baseline", time.Since(t0).Seconds(), "s"))
	pr.gc(ctx) // heap "at end" is after a collection when the server's pprof is reachable
	end = pr.read(ctx)
	for _, r := range []struct {
		name          string
		b, a, e, unit float64
		label         string
	}{
		{"goroutines", base.goroutines, after.goroutines, end.goroutines, 1, ""},
		{"fds", base.fds, after.fds, end.fds, 1, ""},
		{"threads", base.threads, after.threads, end.threads, 1, ""},
		{"rss", base.rss, after.rss, end.rss, 1 << 20, "MiB"},
		{"heap in use", base.heap, after.heap, end.heap, 1 << 20, "MiB"},
	} {
		res.add(metric("server "+r.name+" before", orNaN(r.b)/r.unit, r.label),
			metric("server "+r.name+" right after", orNaN(r.a)/r.unit, r.label),
			metric("server "+r.name+" at end", orNaN(r.e)/r.unit, r.label))
	}
	if pr.debug != "" {
		res.note("heap at end is after a forced GC (pprof heap?gc=1); before and right after are not")
	}
	if base.goroutines < 0 {
		res.note("server goroutines n/a: start the server with --debug-addr and pass --debug-url, or serve /metrics")
	}
	res.check("no failed cycles", nerr == 0, "%d failed%s", nerr, firstErrText(firstErr))
	res.check("back to baseline", recovered, "goroutines ≤ +3, fds ≤ +2 within %v", p.Recover)
	res.check("rss near baseline", end.rss < 0 || end.rss <= base.rss*1.5+32<<20, "%.1f → %.1f MiB", orNaN(base.rss)/(1<<20), orNaN(end.rss)/(1<<20))
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// within reports whether v is at most slack above base (true when either
// is not available).
func within(v, base, slack float64) bool { return v < 0 || base < 0 || v <= base+slack }

// churnCycle is one connect → join → edit → durable → leave → close.
func churnCycle(ctx context.Context, cfg Config, doc string, w, i int) error {
	f, err := dialFull(ctx, cfg, doc)
	if err != nil {
		return err
	}
	defer closeFull([]*full{f})
	if err := f.d.Insert(fanRoot, 0, fmt.Sprintf("w%d.%d ", w, i)); err != nil {
		return err
	}
	if err := f.d.WaitDurable(ctx); err != nil {
		return err
	}
	return f.d.Leave(ctx)
}
