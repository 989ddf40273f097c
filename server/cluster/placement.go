package cluster

import (
	"hash/fnv"
	"slices"
)

// Place is the node that should own key among nodes, by rendezvous
// (highest random weight) hashing: every node scores (node, key) and the
// highest score wins. Every node computes the same answer from the same
// set, the spread is even, and when a node joins or leaves only the keys
// it wins or held move. "" if nodes is empty.
func Place(key string, nodes []string) string {
	best, bestScore := "", uint64(0)
	for _, n := range nodes {
		if s := score(n, key); best == "" || s > bestScore || s == bestScore && n < best {
			best, bestScore = n, s
		}
	}
	return best
}

// Rank orders nodes by preference for key: Rank(key, nodes)[0] ==
// Place(key, nodes); the next ones take over, in order, when it leaves.
func Rank(key string, nodes []string) []string {
	type scored struct {
		n string
		s uint64
	}
	ss := make([]scored, len(nodes))
	for i, n := range nodes {
		ss[i] = scored{n, score(n, key)}
	}
	slices.SortFunc(ss, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return cmpString(a.n, b.n)
	})
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.n
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// score is (node, key)'s weight: FNV-1a over the node, a separator and the
// key, finished by splitmix64's mixer (FNV alone is weak in its high bits
// for short inputs). It must never change: every node of a cluster has to
// compute the same placement, across versions.
func score(node, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node)) // hash writes never fail
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
