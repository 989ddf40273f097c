package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/internal/loadgen"
)

// Root is the text root every scenario edits (the HTTP API's default).
const Root = "body"

// Kill9 is the SIGKILL durability run: Writers clients append markers to
// Docs documents while the server is killed and restarted Cycles times.
type Kill9 struct {
	Serve   Serve
	Cycles  int    // kills (default 200)
	Writers int    // writer clients (default 8)
	Docs    int    // documents, each written by every writer (default 4)
	Seed    uint64 // RNG seed of the kill schedule (0: from the clock)
	// A kill comes MinUp..MaxUp after the server listens (default 50..400
	// ms); the restart follows 0..MaxDown later (default 50 ms).
	MinUp, MaxUp, MaxDown time.Duration
	// Interval is each writer's pause between inserts (default 10 ms).
	Interval time.Duration
	// MaxInflight bounds a writer's batches not yet durable per document
	// (default 64): past it the writer skips a turn.
	MaxInflight int
}

func (k *Kill9) defaults() {
	orDefault(&k.Cycles, 200)
	orDefault(&k.Writers, 8)
	orDefault(&k.Docs, 4)
	orDefault(&k.MaxInflight, 64)
	orDefault(&k.MinUp, 50*time.Millisecond)
	orDefault(&k.MaxUp, 400*time.Millisecond)
	orDefault(&k.MaxDown, 50*time.Millisecond)
	orDefault(&k.Interval, 10*time.Millisecond)
	if k.MaxUp < k.MinUp {
		k.MaxUp = k.MinUp
	}
	if k.Seed == 0 {
		k.Seed = uint64(time.Now().UnixNano())
	}
}

// writer is one client appending markers to every document. Its fields
// are owned by its goroutine until the run has waited for it.
type writer struct {
	id       int
	c        *collab.Client
	docs     []*collab.Document
	inserted [][]string // per document, in insert (= batch) order
	durable  []int      // per document: length of the durable prefix
	err      error
}

// RunKill9 runs the kill cycles and the set check. The result's checks
// fail if any marker acked durable is lost or any marker is duplicated;
// the SetCheck holds the counts.
func RunKill9(ctx context.Context, k Kill9) (*loadgen.Result, SetCheck, error) {
	k.defaults()
	start := time.Now()
	rng := rand.New(rand.NewPCG(k.Seed, 0x6b696c6c39))
	res := newResult("chaos kill9", param("cycles", k.Cycles), param("writers", k.Writers), param("docs", k.Docs),
		param("seed", k.Seed), param("up", fmt.Sprintf("%v..%v", k.MinUp, k.MaxUp)), param("down", fmt.Sprintf("0..%v", k.MaxDown)),
		param("interval", k.Interval))
	p, err := startServe(ctx, k.Serve, "127.0.0.1:0")
	if err != nil {
		return nil, SetCheck{}, err
	}
	addr := p.addr
	defer func() { p.kill() }()
	docIDs := runDocIDs("kill9", fmt.Sprintf("%x", rng.Uint32()), k.Docs)
	ws := make([]*writer, k.Writers)
	defer func() {
		for _, w := range ws {
			if w != nil && w.c != nil {
				_ = w.c.Close()
			}
		}
	}()
	for i := range ws {
		w, err := dialWriter(ctx, p.wsURL(), i, docIDs)
		if err != nil {
			return nil, SetCheck{}, err
		}
		ws[i] = w
	}

	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, k.Interval, k.MaxInflight) }()
	}
	var restarts []time.Duration
	kills := 0
	for cycle := 0; cycle < k.Cycles && ctx.Err() == nil; cycle++ {
		k.Serve.stage("kill/restart cycle %d of %d (%d writers)", cycle+1, k.Cycles, k.Writers)
		up := k.MinUp + time.Duration(rng.Int64N(int64(k.MaxUp-k.MinUp)+1))
		down := time.Duration(rng.Int64N(int64(k.MaxDown) + 1))
		if !sleepCtx(ctx, up) {
			break
		}
		p.kill()
		kills++
		if cycle == k.Cycles-1 || !sleepCtx(ctx, down) {
			break // the last kill leaves the server down until the check
		}
		t0 := time.Now()
		if p, err = restart(ctx, k.Serve, addr); err != nil {
			stopWriters()
			wg.Wait()
			return nil, SetCheck{}, fmt.Errorf("chaos: restart after kill %d: %w", kills, err)
		}
		restarts = append(restarts, time.Since(t0))
	}
	stopWriters()
	wg.Wait()

	// Record what each writer knows is durable; the server is down, so
	// nothing changes any more. Then drop the writers: batches never acked
	// durable may or may not be on disk.
	written := map[string]string{}
	acked := map[string]bool{}
	var werrs []string
	for _, w := range ws {
		w.record()
		for d, ms := range w.inserted {
			for i, m := range ms {
				written[m] = docIDs[d]
				if i < w.durable[d] {
					acked[m] = true
				}
			}
		}
		if w.err != nil {
			werrs = append(werrs, fmt.Sprintf("writer %d: %v", w.id, w.err))
		}
		_ = w.c.Close()
		w.c = nil
	}
	if p.alive() {
		p.kill()
	}
	t0 := time.Now()
	if p, err = restart(ctx, k.Serve, addr); err != nil {
		return nil, SetCheck{}, fmt.Errorf("chaos: final restart: %w", err)
	}
	restarts = append(restarts, time.Since(t0))
	texts, agree, err := readTexts(ctx, p, docIDs)
	if err != nil {
		return nil, SetCheck{}, err
	}
	sc := checkSet(texts, written, acked)
	if d, ok := p.term(15 * time.Second); !ok {
		note(res, "the final server did not exit cleanly on SIGTERM within %v", d)
	}

	res.Metrics = append(res.Metrics,
		metric("kills", float64(kills), ""),
		metric("markers written", float64(len(written)), ""),
		metric("acked durable", float64(sc.Acked), ""),
		metric("ok", float64(sc.OK), "acked, present once"),
		metric("lost", float64(sc.Lost), "acked, absent"),
		metric("duplicated", float64(sc.Duplicated), "present more than once"),
		metric("recovered", float64(sc.Recovered), "present, never acked durable (fine)"),
		metric("absent unacked", float64(sc.Absent), "never acked, absent (fine)"),
	)
	res.Metrics = append(res.Metrics, durations("restart to listening", restarts, 0.5, 0.99)...)
	check(res, "no acked marker lost", sc.Lost == 0, "%d of %d acked durable markers missing %v", sc.Lost, sc.Acked, sc.LostExamples)
	check(res, "no marker duplicated", sc.Duplicated == 0, "%d duplicated %v", sc.Duplicated, sc.DupExamples)
	check(res, "texts clean", sc.Misplaced == 0 && sc.Unknown == 0 && sc.Junk == 0,
		"misplaced %d, unknown %d, junk bytes %d", sc.Misplaced, sc.Unknown, sc.Junk)
	check(res, "client and HTTP texts agree", agree, "fresh clients/go join vs GET /v1/docs/{id}/text")
	check(res, "writers made progress", sc.Acked > 0, "%d markers acked durable", sc.Acked)
	check(res, "writers healthy", len(werrs) == 0, "%s", strings.Join(werrs, "; "))
	if !sc.Pass() {
		note(res, "reproduce with --seed %d (the kill schedule; writer timing still varies)", k.Seed)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, sc, nil
}

func dialWriter(ctx context.Context, url string, id int, docIDs []string) (*writer, error) {
	c, err := collab.Dial(ctx, url, collab.Options{BackoffBase: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("chaos: writer %d: %w", id, err)
	}
	w := &writer{id: id, c: c, inserted: make([][]string, len(docIDs)), durable: make([]int, len(docIDs))}
	for _, id := range docIDs {
		d, err := c.Join(ctx, id)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("chaos: writer %d: join %s: %w", w.id, id, err)
		}
		w.docs = append(w.docs, d)
	}
	return w, nil
}

// run appends one marker per interval, round robin over the documents,
// until ctx ends or the client fails.
func (w *writer) run(ctx context.Context, interval time.Duration, maxInflight int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		di := n % len(w.docs)
		d := w.docs[di]
		st := d.Status()
		w.durable[di] = max(w.durable[di], len(w.inserted[di])-st.Undurable)
		if st.Undurable >= maxInflight {
			continue
		}
		m := marker(w.id, n)
		if err := appendMarker(d, m); err != nil {
			if err != errClosed {
				w.err = err
			}
			return
		}
		w.inserted[di] = append(w.inserted[di], m)
	}
}

// record reads the final durable prefix of every document.
func (w *writer) record() {
	for di, d := range w.docs {
		if err := d.Err(); err != nil && w.err == nil {
			w.err = err
		}
		st := d.Status()
		w.durable[di] = max(w.durable[di], len(w.inserted[di])-st.Undurable)
	}
}

// readTexts reads every document through a fresh clients/go join and
// through GET /v1/docs/{id}/text, and reports whether the two agree.
func readTexts(ctx context.Context, p *proc, docIDs []string) (map[string]string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := collab.Dial(ctx, p.wsURL(), collab.Options{})
	if err != nil {
		return nil, false, fmt.Errorf("chaos: reader: %w", err)
	}
	defer c.Close()
	hc := &http.Client{Timeout: 30 * time.Second}
	texts := map[string]string{}
	agree := true
	for _, id := range docIDs {
		d, err := c.Join(ctx, id)
		if err != nil {
			return nil, false, fmt.Errorf("chaos: reader: join %s: %w", id, err)
		}
		texts[id] = d.String(Root)
		if h, err := docText(ctx, hc, p.httpURL(), id); err != nil || h != texts[id] {
			agree = false
		}
	}
	return texts, agree, nil
}
