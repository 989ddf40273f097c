package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/collabd/collabd/internal/rawclient"
)

// Idle ramps idle connections (hello, join, then nothing but keepalive) up
// to Conns, through Steps.
type Idle struct {
	Conns  int           // default 10000
	Steps  []int         // connection counts to stop at and measure (default 1000, 2000, 5000, Conns)
	PerDoc int           // connections per document (default 1: own document each)
	Hold   time.Duration // idle time at the top, measuring server CPU (default 10s)
}

// RunIdle measures the server's RSS per connection and the time to connect
// (dial, hello, join, final sync) at each step.
func RunIdle(ctx context.Context, cfg Config, p Idle) (*Result, error) {
	cfg = cfg.withDefaults()
	if p.Conns <= 0 {
		p.Conns = 10000
	}
	if p.PerDoc <= 0 {
		p.PerDoc = 1
	}
	if p.Hold <= 0 {
		p.Hold = 10 * time.Second
	}
	steps := slices.Clone(p.Steps)
	if len(steps) == 0 {
		steps = []int{1000, 2000, 5000}
	}
	steps = append(steps, p.Conns)
	slices.Sort(steps)
	steps = slices.Compact(slices.DeleteFunc(steps, func(n int) bool { return n <= 0 || n > p.Conns }))
	start := time.Now()
	res := newResult("idle", param("conns", p.Conns), param("steps", fmt.Sprint(steps)), param("per-doc", p.PerDoc), param("hold", p.Hold))
	if lim, err := RaiseFileLimit(); err != nil || lim < uint64(p.Conns)+100 {
		res.note("generator file limit %d may be below %d connections", lim, p.Conns)
		if err != nil {
			res.note("raising the file limit: %v", err)
		}
	}
	prefix := "idle-" + runID() + "-"
	pr := newProbe(cfg)
	conns := make([]*rawclient.Conn, p.Conns)
	var wg sync.WaitGroup
	defer func() {
		closeLight(conns)
		wg.Wait() // the readers end with their connections
	}()
	base := pr.read(ctx)
	nodes0 := readNodes(cfg.NodePIDs)
	var owned0 []float64
	if len(cfg.URLs) > 1 {
		owned0 = ownedDocs(ctx, cfg)
	}
	res.add(metric("server rss with 0 connections", orNaN(base.rss)/(1<<20), "MiB"))
	have := 0
	var failed error
	for _, n := range steps {
		t0 := time.Now()
		took := make([]time.Duration, n-have)
		cfg.stage("connecting: %d of %d open, ramping to %d", have, p.Conns, n)
		err := Bounded(ctx, n-have, cfg.Dial, func(ctx context.Context, j int) error {
			i := have + j
			c0 := time.Now()
			c, err := dialLight(ctx, cfg.at(i), 512)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conns[i] = c
			if err := c.Join(ctx, fmt.Sprintf("%s%d", prefix, i/p.PerDoc)); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			took[j] = time.Since(c0)
			// Its reader answers the server's pings from now on: a ramp can
			// take longer than the ping interval plus the pong timeout.
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = c.Run(nil) }() // a dropped connection shows in Alive
			return nil
		})
		wall := time.Since(t0)
		if err != nil {
			failed = err
			break
		}
		have = n
		s := pr.read(ctx)
		var lat latencies
		for _, d := range took {
			lat.add(d)
		}
		sum := lat.summary("connect")
		res.Steps = append(res.Steps, Step{Label: fmt.Sprint(n), Metrics: []Metric{
			metric("step wall", wall.Seconds(), "s"),
			sum[0], sum[1],
			metric("server rss MiB", orNaN(s.rss)/(1<<20), "MiB"),
			metric("rss per conn KiB", (orNaN(s.rss)-orNaN(base.rss))/float64(n)/1024, "KiB"),
			metric("server fds", orNaN(s.fds), ""),
			metric("server threads", orNaN(s.threads), ""),
		}})
	}
	res.add(metric("connections held", float64(have), ""))
	if have > 0 {
		res.add(nodeRSS(nodes0, readNodes(cfg.NodePIDs), have)...)
		if owned0 != nil {
			res.add(spread(owned0, ownedDocs(ctx, cfg))...)
		}
		nodes1 := readNodes(cfg.NodePIDs)
		smp := startSampler(ctx, pr, time.Second)
		cfg.stage("holding %d idle connections for %v", have, p.Hold)
		hold := time.NewTimer(p.Hold)
		select {
		case <-hold.C:
		case <-ctx.Done():
			hold.Stop()
		}
		use := smp.stop(ctx)
		if len(cfg.NodePIDs) > 0 {
			for _, m := range nodeCPU(nodes1, readNodes(cfg.NodePIDs), 0) {
				m.Name = "hold " + m.Name
				res.add(m)
			}
		}
		alive := 0
		for _, c := range conns[:have] {
			if c != nil && c.Alive() {
				alive++
			}
		}
		res.add(metric("rss per conn at top", (use.rss1-base.rss)/float64(have)/1024, "KiB"))
		res.add(use.metrics("hold")...)
		res.check("connections survive the hold", alive == have, "%d of %d still open", alive, have)
	}
	res.check("ramp completed", failed == nil, "%d of %d connected%s", have, p.Conns, firstErrText(failed))
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
