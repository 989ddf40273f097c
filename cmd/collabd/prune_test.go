package main

import (
	"slices"
	"testing"
	"time"

	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// TestPruneByRetention: the cluster's history is pruned as a single
// node's: automatic versions of one old day but the newest go, named ones
// and undecodable metadata stay; no retention, no pruning.
func TestPruneByRetention(t *testing.T) {
	now := time.Now()
	old := now.Add(-5 * 24 * time.Hour).Truncate(24 * time.Hour).Add(time.Hour) // one UTC day, 5 days ago
	v := func(seq uint64, at time.Time, named bool) jetstream.StoredVersion {
		return jetstream.StoredVersion{Seq: seq, Time: at, Meta: cluster.VersionMeta{Version: seq, Named: named, Label: map[bool]string{true: "n"}[named]}.Encode()}
	}
	vs := []jetstream.StoredVersion{
		v(1, old, false), v(2, old.Add(time.Minute), true), v(3, old.Add(2*time.Minute), false),
		{Seq: 4, Time: old.Add(3 * time.Minute), Meta: []byte("garbage")},
		v(5, old.Add(4*time.Minute), false), v(6, now, false),
	}
	prune := pruneByRetention(storage.Retention{All: 24 * time.Hour, Daily: 30 * 24 * time.Hour})
	if got := prune(now, "d", vs); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("pruned %v, want [1 3] (5 is the day's newest; 2 named, 4 undecodable, 6 recent)", got)
	}
	if pruneByRetention(storage.Retention{}) != nil {
		t.Error("no retention prunes")
	}
}
