package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	collab "github.com/collabd/collabd/clients/go"
)

// clusterWriter is one client appending markers to every document of the
// cluster run, through the balancer. Its insert log is owned by its
// goroutine until the run has waited for it; the watch (failover times) is
// shared with the run under mu.
type clusterWriter struct {
	id   int
	home int          // the node the balancer prefers for it
	node atomic.Int32 // the node of its current connection
	c    *collab.Client
	docs []*collab.Document

	inserted   [][]string    // per document, in insert (= batch) order
	insertedAt [][]time.Time // when each was inserted
	durable    []int         // per document: length of the durable prefix
	err        error

	mu    sync.Mutex  // guards since and acked
	since time.Time   // the watched fault's time; zero: no watch
	acked []time.Time // per document: when a marker inserted after since was first seen durable
}

func dialClusterWriter(ctx context.Context, b *balancer, id, home int, docIDs []string) (*clusterWriter, error) {
	w := &clusterWriter{id: id, home: home, inserted: make([][]string, len(docIDs)),
		insertedAt: make([][]time.Time, len(docIDs)), durable: make([]int, len(docIDs)), acked: make([]time.Time, len(docIDs))}
	c, err := collab.Dial(ctx, "ws://"+b.addrs[home]+"/v1/ws", collab.Options{
		BackoffBase: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond, Dialer: b.dialer(home, &w.node)})
	if err != nil {
		return nil, fmt.Errorf("chaos: writer %d: %w", id, err)
	}
	w.c = c
	for _, d := range docIDs {
		doc, err := c.Join(ctx, d)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("chaos: writer %d: join %s: %w", id, d, err)
		}
		w.docs = append(w.docs, doc)
	}
	return w, nil
}

// watch starts measuring from t: acked[d] is set when a marker of document
// d inserted after t is first seen durable.
func (w *clusterWriter) watch(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = t
	clear(w.acked)
}

// recovered reports the time by which every document had a marker
// inserted after the watch acked durable, and whether each had.
func (w *clusterWriter) recovered() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, t := range w.acked {
		if t.IsZero() {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

// run appends one marker per interval, round robin over the documents,
// and follows every document's durable prefix, until ctx ends or the
// client fails.
func (w *clusterWriter) run(ctx context.Context, interval time.Duration, maxInflight int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		und := w.refresh()
		di := n % len(w.docs)
		if und[di] >= maxInflight {
			continue
		}
		m := marker(w.id, n)
		if err := appendMarker(w.docs[di], m); err != nil {
			if err != errClosed {
				w.err = err
			}
			return
		}
		w.inserted[di] = append(w.inserted[di], m)
		w.insertedAt[di] = append(w.insertedAt[di], time.Now())
	}
}

// refresh reads every document's durable prefix and updates the watch;
// it returns the batches not yet durable per document.
func (w *clusterWriter) refresh() []int {
	now := time.Now()
	und := make([]int, len(w.docs))
	for di, d := range w.docs {
		st := d.Status()
		und[di] = st.Undurable
		dur := len(w.inserted[di]) - st.Undurable
		if dur <= w.durable[di] {
			continue
		}
		w.durable[di] = dur
		at := w.insertedAt[di][dur-1]
		w.mu.Lock()
		if !w.since.IsZero() && w.acked[di].IsZero() && at.After(w.since) {
			w.acked[di] = now
		}
		w.mu.Unlock()
	}
	return und
}

// stuck describes the documents of w not acked again since the watch: the
// node of its connection, whether the document is live, its batches not
// yet durable and its error.
func (w *clusterWriter) stuck(nodes []*clusterNode) []string {
	w.mu.Lock()
	acked := append([]time.Time(nil), w.acked...)
	w.mu.Unlock()
	var out []string
	for di, t := range acked {
		if !t.IsZero() {
			continue
		}
		d := w.docs[di]
		st := d.Status()
		out = append(out, fmt.Sprintf("writer %d on %s: %s live=%v undurable=%d err=%v", w.id, nodes[w.node.Load()].id, d.ID(), st.Live, st.Undurable, d.Err()))
	}
	return out
}
