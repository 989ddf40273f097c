package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func nodes(n int) []string {
	var ns []string
	for i := range n {
		ns = append(ns, fmt.Sprintf("node-%d", i+1))
	}
	return ns
}

func keys(n int) []string {
	var ks []string
	for i := range n {
		ks = append(ks, fmt.Sprintf("doc/%d", i))
	}
	return ks
}

// TestPlaceSpread: documents spread within ±10 % of the mean.
func TestPlaceSpread(t *testing.T) {
	ks := keys(20000)
	for _, n := range []int{2, 3, 5, 8} {
		ns := nodes(n)
		count := map[string]int{}
		for _, k := range ks {
			count[Place(k, ns)]++
		}
		mean := float64(len(ks)) / float64(n)
		for _, node := range ns {
			if d := float64(count[node])/mean - 1; d > 0.1 || d < -0.1 {
				t.Errorf("%d nodes: %s has %d documents, mean %.0f (%+.1f%%)", n, node, count[node], mean, 100*d)
			}
		}
	}
}

// TestPlaceMinimalMovement: a node joining takes only documents that move
// to it (about 1/n of them); a node leaving moves only its own.
func TestPlaceMinimalMovement(t *testing.T) {
	ks := keys(20000)
	ns := nodes(4)
	joined := append(slices.Clone(ns), "node-new")
	moved := 0
	for _, k := range ks {
		before, after := Place(k, ns), Place(k, joined)
		if before != after {
			moved++
			if after != "node-new" {
				t.Fatalf("join: %s moved from %s to %s, not to the new node", k, before, after)
			}
		}
	}
	if want := len(ks) / 5; moved < want*9/10 || moved > want*11/10 {
		t.Errorf("join: %d of %d moved, want about %d", moved, len(ks), want)
	}
	left := slices.DeleteFunc(slices.Clone(ns), func(n string) bool { return n == "node-2" })
	for _, k := range ks {
		before, after := Place(k, ns), Place(k, left)
		if before != after && before != "node-2" {
			t.Fatalf("leave: %s moved from %s, which did not leave", k, before)
		}
		if before == "node-2" && after != Rank(k, ns)[1] {
			t.Fatalf("leave: %s went to %s, not its second choice %s", k, after, Rank(k, ns)[1])
		}
	}
}

// TestPlaceDeterministic: the order of the node list does not matter, and
// the hash is pinned (every node, every version, must agree).
func TestPlaceDeterministic(t *testing.T) {
	ns := nodes(5)
	rev := slices.Clone(ns)
	slices.Reverse(rev)
	for _, k := range keys(1000) {
		if a, b := Place(k, ns), Place(k, rev); a != b {
			t.Fatalf("Place(%s) = %s or %s by node order", k, a, b)
		}
		if r := Rank(k, ns); r[0] != Place(k, ns) || len(r) != len(ns) {
			t.Fatalf("Rank(%s) = %v, Place = %s", k, r, Place(k, ns))
		}
	}
	if Place("x", nil) != "" {
		t.Error("Place over no nodes is not empty")
	}
	// Pinned values: changing score moves every document of a running
	// cluster, and nodes of two versions would disagree.
	for _, tc := range []struct {
		node, key string
		want      uint64
	}{{"n1", "doc", 0xa0a0498fedb6de75}, {"node-2", "a/b", 0x5136062bf0d62e70}} {
		if got := score(tc.node, tc.key); got != tc.want {
			t.Errorf("score(%q, %q) = %#x, want %#x", tc.node, tc.key, got, tc.want)
		}
	}
	if got := Place("doc/1", nodes(5)); got != "node-1" {
		t.Errorf("Place(doc/1, 5 nodes) = %s, want node-1", got)
	}
}
