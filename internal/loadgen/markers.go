package loadgen

import (
	"context"
	"sync/atomic"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
)

// clock holds the send time of every marker of one document, written by
// the writers and read by the observers.
type clock struct {
	base time.Time
	sent []atomic.Int64 // ns since base + 1; 0: not sent yet
	next atomic.Int64   // markers handed out
}

func newClock(n int) *clock {
	return &clock{base: time.Now(), sent: make([]atomic.Int64, min(n, markerCount))}
}

// take hands out the next marker, or -1 when they are used up.
func (c *clock) take() int {
	k := int(c.next.Add(1)) - 1
	if k >= len(c.sent) {
		return -1
	}
	return k
}

// used is how many markers were handed out.
func (c *clock) used() int { return min(int(c.next.Load()), len(c.sent)) }

// stamp records that marker k is sent now.
func (c *clock) stamp(k int) { c.sent[k].Store(int64(time.Since(c.base)) + 1) }

// since is the latency of marker k observed at at.
func (c *clock) since(k int, at time.Time) (time.Duration, bool) {
	if k < 0 || k >= len(c.sent) {
		return 0, false
	}
	s := c.sent[k].Load()
	if s == 0 {
		return 0, false
	}
	return at.Sub(c.base) - time.Duration(s-1), true
}

// observer tracks which markers of one document a client has seen. It is
// owned by one goroutine at a time.
type observer struct {
	clk  *clock
	seen []bool
	n    int // markers seen (own ones included)
	lat  latencies
}

func newObserver(clk *clock) *observer {
	return &observer{clk: clk, seen: make([]bool, len(clk.sent))}
}

// own marks a marker this client wrote (no latency).
func (o *observer) own(k int) {
	if k >= 0 && !o.seen[k] {
		o.seen[k] = true
		o.n++
	}
}

// saw records marker runes observed at at.
func (o *observer) saw(r rune, at time.Time) {
	k := markerIndex(r)
	if k < 0 || k >= len(o.seen) || o.seen[k] {
		return
	}
	o.seen[k] = true
	o.n++
	if d, ok := o.clk.since(k, at); ok {
		o.lat.add(d)
	}
}

// sawOps records the markers inserted by ops.
func (o *observer) sawOps(ops []crdt.Op, at time.Time) {
	for _, op := range ops {
		if op.Kind == crdt.OpInsert {
			for _, r := range op.Text {
				o.saw(r, at)
			}
		}
	}
}

// scan records the markers in d's root text after a change.
func (o *observer) scan(d *collab.Document, root string) {
	at := time.Now()
	_ = d.View(func(doc *crdt.Doc) {
		for _, r := range doc.Text(root).Runes() {
			o.saw(r, at)
		}
	})
}

// watch scans d on every change until done() reports true or ctx ends.
func (o *observer) watch(ctx context.Context, d *collab.Document, root string, done func(seen int) bool) bool {
	o.scan(d, root)
	tick := time.NewTicker(50 * time.Millisecond) // re-check done() while nothing changes
	defer tick.Stop()
	for !done(o.n) {
		select {
		case <-ctx.Done():
			return false
		case <-d.Changes():
			o.scan(d, root)
		case <-tick.C:
		}
	}
	return true
}
