package storage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/collabd/collabd/storage"
)

// TestRetentionDrop: the rule of Retention applied to a list of versions:
// everything younger than All kept, the newest automatic one of each day
// until Daily, of each week after; named ones always kept.
func TestRetentionDrop(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	r := storage.Retention{All: 2 * day, Daily: 10 * day}
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	times := []time.Time{
		at(40*day + time.Hour), at(40 * day), // 0, 1: one week (both the same week): 0 dropped
		at(5*day + 3*time.Hour), at(5*day + 2*time.Hour), at(5*day + time.Hour), // 2, 3, 4: one day, 3 is named: 2 dropped
		at(time.Hour), at(30 * time.Minute), // 5, 6: recent, kept
	}
	auto := []bool{true, true, true, false, true, true, true}
	if got := r.Drop(now, times, auto); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("Drop = %v, want [0 2]", got)
	}
	if got := (storage.Retention{}).Drop(now, times, auto); got != nil {
		t.Errorf("the zero Retention drops %v", got)
	}
	if got := r.Drop(now, times, auto[:2]); got != nil {
		t.Errorf("mismatched lengths drop %v", got)
	}
}
