package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/rawclient"
)

// Fanout is one document, Subscribers readers and one writer typing Rate
// single-character inserts a second for Duration. The writer is a raw
// client that sends one batch per insert and times its applied and durable
// acks; subscriber i connects to Config.URLs[i % len] (Config.URL if none).
type Fanout struct {
	Subscribers int           // default 100
	Full        int           // subscribers that are clients/go clients (default 5; the rest are light)
	Rate        int           // inserts per second (default 50)
	Duration    time.Duration // typing time (default 20s)
	Doc         string        // the document; "" is a fresh one per run ("fanout-<random>")
	WriterURL   string        // where the writer connects; "" is Config.URL
}

const fanRoot = "body"

func (p Fanout) withDefaults() Fanout {
	if p.Subscribers <= 0 {
		p.Subscribers = 100
	}
	if p.Full < 0 || p.Full > p.Subscribers {
		p.Full = min(5, p.Subscribers)
	}
	if p.Rate <= 0 {
		p.Rate = 50
	}
	if p.Duration <= 0 {
		p.Duration = 20 * time.Second
	}
	return p
}

// RunFanout measures end-to-end latency from the writer's edit to each
// subscriber seeing it, and checks that every subscriber converges.
func RunFanout(ctx context.Context, cfg Config, p Fanout) (*Result, error) {
	cfg, p = cfg.withDefaults(), p.withDefaults()
	start := time.Now()
	res := newResult("fanout", param("subscribers", p.Subscribers), param("full", p.Full), param("rate", p.Rate), param("duration", p.Duration))
	doc := p.Doc
	if doc == "" {
		doc = "fanout-" + runID()
	}
	pr := newProbe(cfg)
	total := min(p.Rate*int(p.Duration/time.Second), markerCount)

	wcfg := cfg
	if p.WriterURL != "" {
		wcfg.URL = p.WriterURL
	}
	writer, err := dialWriter(ctx, wcfg, doc, total)
	if err != nil {
		return nil, err
	}
	defer writer.close()
	fulls := make([]*full, p.Full)
	lights := make([]*rawclient.Conn, p.Subscribers-p.Full)
	defer closeFull(fulls)
	defer closeLight(lights)
	t0 := time.Now()
	cfg.stage("connecting %d subscribers", p.Subscribers)
	if err := Bounded(ctx, p.Subscribers, cfg.Dial, func(ctx context.Context, i int) error {
		if i < p.Full {
			f, err := dialFull(ctx, cfg.at(i), doc)
			fulls[i] = f
			return err
		}
		l, err := dialLight(ctx, cfg.at(i), 4096)
		if err != nil {
			return err
		}
		lights[i-p.Full] = l
		return l.Join(ctx, doc)
	}); err != nil {
		return nil, err
	}
	res.add(metric("subscribers connected in", time.Since(t0).Seconds(), "s"))

	clk := newClock(total)
	writerDone := make(chan struct{})
	finished := func(n int) bool {
		select {
		case <-writerDone:
			return n >= clk.used()
		default:
			return false
		}
	}
	progress := make([]atomic.Int64, p.Subscribers)
	obs := make([]*observer, p.Subscribers)
	for i := range obs {
		obs[i] = newObserver(clk)
	}
	settle, cancelSettle := context.WithTimeout(ctx, p.Duration+cfg.Settle+10*time.Second)
	defer cancelSettle()
	var wg sync.WaitGroup
	for i, f := range fulls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i].watch(settle, f.d, fanRoot, func(n int) bool { progress[i].Store(int64(n)); return finished(n) })
		}()
	}
	for j, l := range lights {
		i := p.Full + j
		wg.Add(1)
		go func() { // ends when the connection is closed
			defer wg.Done()
			_, _ = l.Run(func(ops []crdt.Op, at time.Time) { // a subscriber that stops early shows as missing progress
				obs[i].sawOps(ops, at)
				progress[i].Store(int64(obs[i].n))
			})
		}()
	}

	smp := startSampler(ctx, pr, 500*time.Millisecond)
	nodes0 := readNodes(cfg.NodePIDs)
	cfg.stage("typing %d inserts/s for %v", p.Rate, p.Duration)
	sent := typeAppend(ctx, writer, clk, p.Rate, total)
	close(writerDone)
	use := smp.stop(ctx)
	nodes1 := readNodes(cfg.NodePIDs)
	lastSend := time.Now()
	cfg.stage("waiting for %d subscribers to see every insert", p.Subscribers)
	allSeen := waitUntil(settle, cfg.Settle, func() bool {
		for i := range progress {
			if int(progress[i].Load()) < sent {
				return false
			}
		}
		return true
	})
	caughtUp := time.Since(lastSend)
	allDurable := waitUntil(settle, cfg.Settle, writer.allDurable)
	cancelSettle()
	closeLight(lights)
	wg.Wait()
	writer.close() // its latencies are ours from here on

	want := writer.text(fanRoot)
	var got []string
	var all, fullLat latencies
	observed := 0
	for i, o := range obs {
		all.merge(&o.lat)
		observed += o.n
		if i < p.Full {
			fullLat.merge(&o.lat)
			got = append(got, fulls[i].d.String(fanRoot))
		} else {
			got = append(got, lights[i-p.Full].Doc().Text(fanRoot).String())
		}
	}
	var bytesIn, framesIn int64
	for _, l := range lights {
		bytesIn += l.Bytes()
		framesIn += l.Frames()
	}
	secs := time.Since(clk.base).Seconds()
	res.add(metric("inserts sent", float64(sent), ""),
		metric("observed / expected", float64(observed)/float64(max(sent*p.Subscribers, 1))*100, "%"))
	res.add(all.summary("latency all")...)
	res.add(fullLat.summary("latency full clients")...)
	res.add(metric("last subscriber caught up after last send", float64(caughtUp.Milliseconds()), "ms"))
	res.add(writer.applied.summary("applied ack")...)
	res.add(writer.durable.summary("durable ack")...)
	res.add(use.metrics("load")...)
	res.add(nodeCPU(nodes0, nodes1, sent)...)
	if len(lights) > 0 {
		res.add(metric("frames in per light subscriber", float64(framesIn)/float64(len(lights))/secs, "/s"),
			metric("bytes in per light subscriber", float64(bytesIn)/float64(len(lights))/secs, "B/s"))
	}
	bad := differing(want, got)
	res.check("all inserts seen", allSeen, "%d of %d subscribers saw all %d inserts", countAtLeast(progress, sent), p.Subscribers, sent)
	res.check("converged", bad == 0 && len([]rune(want)) == sent, "%d of %d texts differ from the writer's (%d chars)", bad, len(got), len([]rune(want)))
	res.check("writer durable", allDurable, "%d of %d batches acked durable", writer.durableN.Load(), sent)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func countAtLeast(ps []atomic.Int64, n int) int {
	c := 0
	for i := range ps {
		if int(ps[i].Load()) >= n {
			c++
		}
	}
	return c
}

// typeAppend types total markers at the end of the writer's text, rate a
// second, one batch each, and returns how many it sent.
func typeAppend(ctx context.Context, w *ackWriter, clk *clock, rate, total int) int {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for n := 0; n < total; n++ {
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
		k := clk.take()
		if k < 0 {
			return n
		}
		clk.stamp(k)
		if err := w.insert(fanRoot, string(markerRune(k))); err != nil {
			return n
		}
	}
	return total
}
