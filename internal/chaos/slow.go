package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/loadgen"
	"github.com/collabd/collabd/internal/rawclient"
)

// Slow is the slow-consumer run: Subscribers readers and one writer on a
// document, first alone (baseline), then with one more subscriber that
// stops reading.
type Slow struct {
	Serve       Serve
	Subscribers int           // subscribers that keep reading (default 20)
	Writers     int           // writer clients (default 2)
	Rate        int           // inserts per second per writer (default 100)
	Payload     int           // code points per insert (default 64; 4 UTF-8 bytes each)
	QueueBytes  int           // server --queue-bytes (default 64 KiB; < 0: the server's own default, 4 MiB)
	RcvBuf      int           // SO_RCVBUF of the slow subscriber (default 4096)
	Duration    time.Duration // typing time per phase (default 10s)
	Within      time.Duration // bound for the slow close (default 10s)
	Factor      float64       // allowed p99 ratio (default 1.5)
}

func (p *Slow) defaults() {
	if p.Subscribers <= 0 {
		p.Subscribers = 20
	}
	if p.Writers <= 0 {
		p.Writers = 2
	}
	if p.Rate <= 0 {
		p.Rate = 100
	}
	if p.Payload <= 0 {
		p.Payload = 64
	}
	if p.QueueBytes == 0 {
		p.QueueBytes = 64 << 10
	}
	if p.RcvBuf <= 0 {
		p.RcvBuf = 4096
	}
	if p.Duration <= 0 {
		p.Duration = 10 * time.Second
	}
	if p.Within <= 0 {
		p.Within = 10 * time.Second
	}
	if p.Factor <= 0 {
		p.Factor = 1.5
	}
}

// phase is what one phase measured.
type phase struct {
	lat      []time.Duration
	sent     int
	complete int // subscribers that saw every insert
	// slow phase only
	closedAfter time.Duration // pause → slow close counted; 0: not seen
	closeCode   int           // what the slow client read once it resumed
}

// RunSlow runs the baseline and the slow phase on one server.
func RunSlow(ctx context.Context, p Slow) (*loadgen.Result, error) {
	p.defaults()
	start := time.Now()
	res := newResult("chaos slow", param("subscribers", p.Subscribers), param("writers", p.Writers), param("rate", p.Rate), param("payload", p.Payload),
		param("queue-bytes", p.QueueBytes), param("rcvbuf", p.RcvBuf), param("duration", p.Duration))
	s := p.Serve
	if p.QueueBytes > 0 {
		s.Extra = append(append([]string{}, s.Extra...), "--queue-bytes", strconv.Itoa(p.QueueBytes))
	}
	srv, err := startServe(ctx, s, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	s.stage("baseline: %d subscribers reading for %v", p.Subscribers, p.Duration)
	base, err := slowPhase(ctx, srv, p, false)
	if err != nil {
		return nil, fmt.Errorf("chaos: baseline: %w", err)
	}
	s.stage("slow phase: one subscriber stopped reading")
	with, err := slowPhase(ctx, srv, p, true)
	if err != nil {
		return nil, fmt.Errorf("chaos: slow phase: %w", err)
	}
	alive := srv.alive()
	if d, ok := srv.term(15 * time.Second); !ok {
		note(res, "the server did not exit cleanly on SIGTERM within %v", d)
	}
	res.Metrics = append(res.Metrics, durations("baseline latency", base.lat, 0.5, 0.99)...)
	res.Metrics = append(res.Metrics, durations("with slow latency", with.lat, 0.5, 0.99)...)
	b99, w99 := ms(quantile(sorted(base.lat), 0.99)), ms(quantile(sorted(with.lat), 0.99))
	ratio := w99 / b99
	res.Metrics = append(res.Metrics, metric("p99 ratio", ratio, "with slow / baseline"),
		metric("slow closed after", ms(with.closedAfter), "ms after it stopped reading"),
		metric("slow close code seen by the client", float64(with.closeCode), "0: connection reset without a close frame"))
	closed := with.closedAfter > 0 && with.closedAfter <= p.Within
	check(res, "slow subscriber closed as slow", closed,
		"collabd_slow_closes_total rose %v after it stopped reading (bound %v)", with.closedAfter.Round(time.Millisecond), p.Within)
	check(res, "others' p99 within factor", ratio <= p.Factor, "p99 %.2f ms vs baseline %.2f ms: x%.2f (bound x%.2f)", w99, b99, ratio, p.Factor)
	check(res, "others saw every insert", base.complete == p.Subscribers && with.complete == p.Subscribers,
		"baseline %d/%d, with slow %d/%d subscribers", base.complete, p.Subscribers, with.complete, p.Subscribers)
	check(res, "server stayed up", alive, "")
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func sorted(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

// slowPhase types for p.Duration into a fresh document read by the
// subscribers (and, if slow, by one subscriber that never reads).
func slowPhase(ctx context.Context, srv *proc, p Slow, slow bool) (phase, error) {
	var ph phase
	doc := fmt.Sprintf("slow-%v-%d", slow, time.Now().UnixNano())
	subs := make([]*rawclient.Conn, p.Subscribers)
	defer func() {
		for _, r := range subs {
			if r != nil {
				r.Close()
			}
		}
	}()
	for i := range subs {
		r, err := dialSubscriber(ctx, srv.wsURL(), 0)
		if err != nil {
			return ph, err
		}
		subs[i] = r
		if err := r.Join(ctx, doc); err != nil {
			return ph, err
		}
	}
	wds := make([]*collab.Document, p.Writers)
	for i := range wds {
		w, err := collab.Dial(ctx, srv.wsURL(), collab.Options{})
		if err != nil {
			return ph, err
		}
		defer w.Close()
		if wds[i], err = w.Join(ctx, doc); err != nil {
			return ph, err
		}
	}
	var laggard *rawclient.Conn
	var closed atomic.Bool // the laggard was cut off
	if slow {
		var err error
		if laggard, err = dialSubscriber(ctx, srv.wsURL(), p.RcvBuf); err != nil {
			return ph, err
		}
		defer laggard.Close()
		if err := laggard.Join(ctx, doc); err != nil {
			return ph, err
		}
	}
	total := min(p.Writers*p.Rate*int((p.Duration+p.Within)/time.Second+1), 0x9FFF-0x4E00+1)
	sent := make([]atomic.Int64, total) // send time (ns since t0) + 1 of insert k
	t0 := time.Now()
	lats := make([][]time.Duration, len(subs))
	seen := make([]atomic.Int64, len(subs))
	var wg sync.WaitGroup
	for i, r := range subs {
		wg.Add(1)
		go func() { // ends when the connection closes
			defer wg.Done()
			_, _ = r.Run(func(ops []crdt.Op, at time.Time) { // ends with the connection; seen counts what arrived
				for _, op := range ops {
					if op.Kind != crdt.OpInsert {
						continue
					}
					for _, c := range op.Text {
						k := markerIndex(c)
						if k < 0 || k >= total {
							continue
						}
						seen[i].Add(1)
						if s := sent[k].Load(); s > 0 {
							lats[i] = append(lats[i], at.Sub(t0)-time.Duration(s-1))
						}
					}
				}
			})
		}()
	}
	// Both phases poll the server's slow counter (the same monitoring load);
	// in the slow phase the laggard reads nothing from now on and the poll
	// tells when the server cut it off.
	hc := &http.Client{Timeout: 2 * time.Second}
	before, err := scrapeCounter(ctx, hc, srv.httpURL(), "collabd_slow_closes_total")
	if err != nil {
		return ph, err
	}
	paused := time.Now()
	wctx, cancelWatch := context.WithTimeout(ctx, p.Duration+p.Within)
	defer cancelWatch()
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if n, err := scrapeCounter(wctx, hc, srv.httpURL(), "collabd_slow_closes_total"); err == nil && n > before {
				ph.closedAfter = time.Since(paused)
				closed.Store(true)
				if laggard != nil {
					ph.closeCode, _ = laggard.Run(nil) // resume: drain what was buffered, then the close
				}
				return
			}
		}
	}()
	// Each writer types Rate inserts a second for Duration; in the slow
	// phase they go on until the laggard is cut off or Within has passed
	// (no traffic, no backpressure).
	pad := strings.Repeat("\U0001F600", max(p.Payload-1, 0)) // 4 UTF-8 bytes, one op each
	var next, nsent atomic.Int64
	var wwg sync.WaitGroup
	for _, wd := range wds {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			tick := time.NewTicker(time.Second / time.Duration(p.Rate))
			defer tick.Stop()
			for ctx.Err() == nil {
				el := time.Since(t0)
				if el >= p.Duration && (!slow || closed.Load() || el >= p.Within) {
					return
				}
				<-tick.C
				k := int(next.Add(1)) - 1
				if k >= total {
					return
				}
				sent[k].Store(int64(time.Since(t0)) + 1)
				s := string(markerRune(k)) + pad
				if err := wd.Edit(func(d *crdt.Doc) error { t := d.Text(Root); return t.Insert(t.Len(), s) }); err != nil {
					return
				}
				nsent.Add(1)
			}
		}()
	}
	wwg.Wait()
	ph.sent = int(nsent.Load())
	// Let the subscribers catch up (bounded), then close them.
	settle, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, wd := range wds {
		_ = wd.WaitDurable(settle)
	}
	t := time.NewTicker(20 * time.Millisecond)
	for caughtUp := false; !caughtUp && settle.Err() == nil; {
		caughtUp = true
		for i := range seen {
			caughtUp = caughtUp && seen[i].Load() >= int64(ph.sent)
		}
		select {
		case <-settle.Done():
		case <-t.C:
		}
	}
	t.Stop()
	if !slow {
		cancelWatch()
	}
	watch.Wait()
	for _, r := range subs {
		r.Close()
	}
	wg.Wait()
	for i := range subs {
		ph.lat = append(ph.lat, lats[i]...)
		if seen[i].Load() >= int64(ph.sent) {
			ph.complete++
		}
	}
	return ph, nil
}

// dialSubscriber connects a read-only raw subscriber (no replica: it only
// watches the markers go by). rcvbuf > 0 makes it a narrow socket, the
// slow consumer (see rawclient.Options.RcvBuf).
func dialSubscriber(ctx context.Context, url string, rcvbuf int) (*rawclient.Conn, error) {
	return rawclient.Dial(ctx, url, rawclient.Options{Client: "collabd-chaos", ReadOnly: true, RcvBuf: rcvbuf, Timeout: 10 * time.Second})
}

// markerRune is the unique character of insert k: CJK ideographs, as in
// loadgen.
func markerRune(k int) rune { return rune(0x4E00 + k) }

func markerIndex(r rune) int {
	if r < 0x4E00 || r > 0x9FFF {
		return -1
	}
	return int(r - 0x4E00)
}
