package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/loadgen"
)

// Storm is the reconnect storm: Clients clients/go clients spread over
// Docs documents; the server is stopped (SIGTERM: graceful, with jittered
// retry hints; or SIGKILL) and restarted at once on the same port.
type Storm struct {
	Serve    Serve
	Clients  int           // default 500
	Docs     int           // default 5
	Signal   string        // "term" (default) or "kill"
	Converge time.Duration // bound for reconnecting and converging (default 60s)
}

// RunStorm measures how long each client takes to be live again after the
// restart and checks that every replica converges.
func RunStorm(ctx context.Context, p Storm) (*loadgen.Result, error) {
	if p.Clients <= 0 {
		p.Clients = 500
	}
	if p.Docs <= 0 {
		p.Docs = 5
	}
	if p.Signal == "" {
		p.Signal = "term"
	}
	if p.Signal != "term" && p.Signal != "kill" {
		return nil, fmt.Errorf("chaos: storm: signal %q: want term or kill", p.Signal)
	}
	if p.Converge <= 0 {
		p.Converge = 60 * time.Second
	}
	start := time.Now()
	res := newResult("chaos storm", param("clients", p.Clients), param("docs", p.Docs), param("signal", p.Signal))
	s := p.Serve
	// Every client comes from 127.0.0.1: lift the per-address limit.
	s.Extra = append(append([]string{}, s.Extra...), "--max-conns-per-ip", fmt.Sprint(p.Clients+100))
	srv, err := startServe(ctx, s, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := srv.addr
	defer func() { srv.kill() }()
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	docIDs := make([]string, p.Docs)
	for i := range docIDs {
		docIDs[i] = fmt.Sprintf("storm-%s-%d", run, i)
	}
	docs := make([]*collab.Document, p.Clients)
	clients := make([]*collab.Client, p.Clients)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); _ = c.Close() }()
			}
		}
		wg.Wait()
	}()
	t0 := time.Now()
	s.stage("connecting %d clients", p.Clients)
	if err := loadgen.Bounded(ctx, p.Clients, 50, func(ctx context.Context, i int) error {
		c, err := collab.Dial(ctx, srv.wsURL(), collab.Options{})
		if err != nil {
			return err
		}
		clients[i] = c
		docs[i], err = c.Join(ctx, docIDs[i%p.Docs])
		return err
	}); err != nil {
		return nil, fmt.Errorf("chaos: storm: connecting: %w", err)
	}
	res.Metrics = append(res.Metrics, metric("clients connected in", time.Since(t0).Seconds(), "s"))
	// One edit per client before the restart.
	for i, d := range docs {
		if err := d.Insert(Root, 0, marker(i, 0)); err != nil {
			return nil, err
		}
	}

	// Stop and restart the server; meanwhile sweep the clients to see each
	// one go down and come back.
	down := make([]bool, p.Clients)
	back := make([]time.Duration, p.Clients)
	var stopped, restarted time.Time
	s.stage("stopping the server (%s)", p.Signal)
	switch p.Signal {
	case "term":
		stopped = time.Now()
		took, clean := srv.term(30 * time.Second)
		res.Metrics = append(res.Metrics, metric("graceful shutdown took", ms(took), "ms"))
		check(res, "graceful shutdown", clean, "exit status 0 within 30s (took %v)", took.Round(time.Millisecond))
	default:
		stopped = time.Now()
		srv.kill()
	}
	if srv, err = restart(ctx, s, addr); err != nil {
		return nil, fmt.Errorf("chaos: storm: restart: %w", err)
	}
	restarted = time.Now()
	res.Metrics = append(res.Metrics, metric("server down for", ms(restarted.Sub(stopped)), "ms"))
	s.stage("waiting for %d clients to reconnect (at most %v)", p.Clients, p.Converge)
	cctx, cancel := context.WithTimeout(ctx, p.Converge)
	defer cancel()
	live := 0
	sweep := time.NewTicker(25 * time.Millisecond)
	for live < p.Clients && cctx.Err() == nil {
		live = 0
		for i, d := range docs {
			if back[i] > 0 {
				live++
				continue
			}
			st := d.Status()
			if !st.Live {
				down[i] = true
			} else if down[i] {
				back[i] = time.Since(restarted)
				live++
			}
		}
		select {
		case <-cctx.Done():
		case <-sweep.C:
		}
	}
	sweep.Stop()

	var times []time.Duration
	neverDown := 0
	for i := range back {
		if back[i] > 0 {
			times = append(times, back[i])
		}
		if !down[i] {
			neverDown++
		}
	}
	res.Metrics = append(res.Metrics, durations("reconnect after restart", times, 0.5, 0.9, 0.99)...)
	check(res, "all reconnected", len(times) == p.Clients, "%d of %d live again within %v (%d never seen down)",
		len(times), p.Clients, p.Converge, neverDown)

	// A second edit per client after the restart, then convergence: every
	// replica of a document equals the server's text and holds every marker.
	for i, d := range docs {
		_ = d.Insert(Root, 0, marker(i, 1))
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	converged := false
	var detail string
	for !converged && cctx.Err() == nil {
		converged, detail = stormConverged(cctx, hc, srv.httpURL(), docIDs, docs)
		if !converged {
			sleepCtx(cctx, 100*time.Millisecond)
		}
	}
	if !converged {
		_, detail = stormConverged(ctx, hc, srv.httpURL(), docIDs, docs)
	}
	res.Metrics = append(res.Metrics, metric("converged after restart", time.Since(restarted).Seconds(), "s"))
	check(res, "converged", converged, "%s (bound %v)", detail, p.Converge)
	check(res, "server stayed up", srv.alive() && ready(ctx, hc, srv.httpURL()), "process alive and /readyz 200 after the storm")
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// stormConverged reports whether every client's text equals the server's
// text of its document and every document holds both markers of each of
// its clients.
func stormConverged(ctx context.Context, hc *http.Client, base string, docIDs []string, docs []*collab.Document) (bool, string) {
	texts := map[string]string{}
	for _, id := range docIDs {
		t, err := docText(ctx, hc, base, id)
		if err != nil {
			return false, err.Error()
		}
		texts[id] = t
	}
	differ, missing := 0, 0
	for i, d := range docs {
		want := texts[d.ID()]
		var got string
		_ = d.View(func(doc *crdt.Doc) { got = doc.Text(Root).String() })
		if got != want {
			differ++
		}
		if !strings.Contains(want, marker(i, 0)) || !strings.Contains(want, marker(i, 1)) {
			missing++
		}
	}
	return differ == 0 && missing == 0, fmt.Sprintf("%d of %d replicas differ from the server, %d clients' markers missing", differ, len(docs), missing)
}
