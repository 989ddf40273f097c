package cluster

import (
	"fmt"
	"testing"
	"time"
)

// TestJoinsHysteresis: a newcomer is due only once it has been live for
// `after` without a break; one that leaves before starts over when it
// returns; the nodes live at the start and this node are never newcomers.
func TestJoinsHysteresis(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const after = 5 * time.Second
	j := newJoins("a", after, []string{"a", "b"})
	steps := []struct {
		at      time.Duration
		live    []string // nil: no membership change, only a look at what is due
		joined  []string
		left    []string
		due     []string
		nextDue time.Duration // -1: nothing waits
	}{
		{at: 0, due: nil, nextDue: -1},
		{at: time.Second, live: []string{"a", "b", "c"}, joined: []string{"c"}, nextDue: 6 * time.Second},
		{at: 5 * time.Second, due: nil, nextDue: 6 * time.Second},
		// c flaps: it leaves before it is due, then returns and starts over.
		{at: 5500 * time.Millisecond, live: []string{"a", "b"}, left: []string{"c"}, nextDue: -1},
		{at: 6 * time.Second, due: nil, nextDue: -1},
		{at: 7 * time.Second, live: []string{"a", "b", "c"}, joined: []string{"c"}, nextDue: 12 * time.Second},
		{at: 11 * time.Second, due: nil, nextDue: 12 * time.Second},
		// d joins meanwhile; c is due first, d later.
		{at: 11500 * time.Millisecond, live: []string{"a", "b", "c", "d"}, joined: []string{"d"}, nextDue: 12 * time.Second},
		{at: 12 * time.Second, due: []string{"c"}, nextDue: 16500 * time.Millisecond},
		{at: 20 * time.Second, due: []string{"d"}, nextDue: -1},
		// Once handed, c is not due again while it stays; a's own id never.
		{at: 30 * time.Second, live: []string{"b", "c", "d"}, left: []string{"a"}, nextDue: -1},
		{at: 31 * time.Second, live: []string{"a", "b", "c", "d"}, nextDue: -1},
	}
	for i, s := range steps {
		now := at(s.at)
		if s.live != nil {
			joined, left := j.observe(s.live, now)
			if fmt.Sprint(joined) != fmt.Sprint(s.joined) || fmt.Sprint(left) != fmt.Sprint(s.left) {
				t.Errorf("step %d: observe(%v) = joined %v, left %v; want %v, %v", i, s.live, joined, left, s.joined, s.left)
			}
		} else if due := j.due(now); fmt.Sprint(due) != fmt.Sprint(s.due) {
			t.Errorf("step %d: due at %v = %v, want %v", i, s.at, due, s.due)
		}
		want := time.Time{}
		if s.nextDue >= 0 {
			want = at(s.nextDue)
		}
		if got := j.next(); !got.Equal(want) {
			t.Errorf("step %d: next() = %v, want %v", i, got.Sub(t0), s.nextDue)
		}
	}
}
