package loadgen

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/collabd/collabd/crdt"
)

// ColdJoin builds a document of Chars characters from Chunk-character
// inserts (each its own update), then times fresh clients joining it.
type ColdJoin struct {
	Chars   int      // default 100000
	Chunk   int      // characters per insert (default 5)
	History []string // "append", "random" (default both)
	Joins   int      // fresh clients that join one after another (default 5)
}

// RunColdJoin measures, per history layout, the time from Dial to a new
// client holding the full text (the builder stays connected, as in the
// reference harness, so the document stays loaded).
func RunColdJoin(ctx context.Context, cfg Config, p ColdJoin) (*Result, error) {
	cfg = cfg.withDefaults()
	if p.Chars <= 0 {
		p.Chars = 100000
	}
	if p.Chunk <= 0 {
		p.Chunk = 5
	}
	if len(p.History) == 0 {
		p.History = []string{"append", "random"}
	}
	if p.Joins <= 0 {
		p.Joins = 5
	}
	start := time.Now()
	res := newResult("coldjoin", param("chars", p.Chars), param("chunk", p.Chunk), param("history", join(p.History)), param("joins", p.Joins))
	pr := newProbe(cfg)
	for _, h := range p.History {
		if h != "append" && h != "random" {
			res.check("history "+h, false, "unknown layout (append or random)")
			continue
		}
		if err := coldJoinOne(ctx, cfg, p, h, pr, res); err != nil {
			return nil, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func coldJoinOne(ctx context.Context, cfg Config, p ColdJoin, layout string, pr *probe, res *Result) error {
	doc := "cold-" + layout + "-" + runID()
	b, err := dialFull(ctx, cfg, doc)
	if err != nil {
		return err
	}
	defer closeFull([]*full{b})
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := strings.Repeat("x", p.Chunk)
	cfg.stage("building a %d-character %s history", p.Chars, layout)
	t0 := time.Now()
	for n := 0; n < p.Chars; n += p.Chunk {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pos := n
		if layout == "random" {
			pos = rng.IntN(n + 1)
		}
		if err := b.d.Insert(fanRoot, pos, chunk[:min(p.Chunk, p.Chars-n)]); err != nil {
			return err
		}
	}
	built := time.Since(t0)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	durErr := b.d.WaitDurable(wctx)
	durable := time.Since(t0)
	snap := pr.read(ctx)
	want := b.d.String(fanRoot)
	// The client's share of a join: applying the whole state to a fresh replica.
	var state []byte
	_ = b.d.View(func(doc *crdt.Doc) { state = doc.EncodeDiff(crdt.StateVector{}) })
	a0 := time.Now()
	applyErr := crdt.NewDoc(crdt.Options{}).ApplyUpdate(state)
	apply := time.Since(a0)
	cfg.stage("timing %d fresh joins of the %s history", p.Joins, layout)
	var lat latencies
	var each []string
	ok := true
	for range p.Joins {
		j0 := time.Now()
		j, err := dialFull(ctx, cfg, doc)
		if err != nil {
			return err
		}
		got := j.d.String(fanRoot)
		d := time.Since(j0)
		closeFull([]*full{j})
		lat.add(d)
		each = append(each, d.Round(100*time.Microsecond).String())
		ok = ok && got == want
	}
	ds := slices.Clone(lat.d)
	slices.Sort(ds)
	res.add(metric(layout+" build (local edits queued)", built.Seconds(), "s"),
		metric(layout+" build until durable", durable.Seconds(), "s"),
		metric(layout+" server rss after build", orNaN(snap.rss)/(1<<20), "MiB"),
		metric(layout+" state bytes", float64(len(state)), "B"),
		metric(layout+" client-side apply of the state", float64(apply)/1e6, "ms"),
		metric(layout+" join median", float64(quantile(ds, 0.5))/1e6, "ms"),
		metric(layout+" join min", float64(ds[0])/1e6, "ms"),
		metric(layout+" join max", float64(ds[len(ds)-1])/1e6, "ms"))
	res.note("%s joins, in order: %s", layout, strings.Join(each, ", "))
	res.check(layout+" joiners have the full text", ok && len([]rune(want)) == p.Chars, "%d chars", len([]rune(want)))
	res.check(layout+" state applies", applyErr == nil, "%s", errText(applyErr))
	res.check(layout+" build durable", durErr == nil, "%s", errText(durErr))
	return nil
}
