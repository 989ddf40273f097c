package crdt_test

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/collabd/collabd/crdt"
)

// Convergence tests of package crdt (convergence, causality, non-interleaving):
//
//   - TestDifferential (C5): seeded 1–5-peer histories replayed into a fresh
//     Doc and into refDoc (reference_test.go); texts must match after every
//     update. A failure names the seed and the first mismatching step; rerun
//     it with -run 'TestDifferential/peers=N/seed=S$'.
//     TestDifferentialCraftedOrigins does the same with hand-encoded inserts
//     whose origins are not adjacent.
//   - TestConvergence (C1, C6a) and TestSnapshotFidelity (C6b): rapid
//     properties over replicas exchanging updates with reordering,
//     duplication, loss, delay, state-vector diffs and snapshot reloads. rapid
//     prints the seed of a failure (-rapid.seed=...) and a minimized trace.
//     They run rapid's default 100 checks each; a nightly run should pass
//     -rapid.checks=10000 (30,000 checks take about 4 minutes on 2 cores).
//   - TestConvergencePermutations (C2): one op set, 128 delivery orders with
//     duplicates, one final state.
//   - TestNonInterleaving (C4) and TestRegressionScenarios (C3): fixed tables.
//   - TestRegression_*: minimal repros of bugs these tests found (fixed).

// cvT is what the helpers need of *testing.T and *rapid.T.
type cvT interface {
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// cvPieces are the strings random inserts are made of: ASCII, 2-, 3- and
// 4-byte UTF-8, a combining mark and an emoji with a skin-tone modifier (two
// code points).
var cvPieces = []string{"a", "b", "c", "x", " ", "é", "ß", "ж", "中", "文", "🎉", "👍", "\u0301", "👍🏽"}

// cvRoots are the root names random edits pick from.
var cvRoots = []string{"t", "notes", "ü"}

// cvString is the text of root in d, "" when d has no such root (without
// creating it).
func cvString(d *crdt.Doc, root string) string {
	if !slices.Contains(d.Roots(), root) {
		return ""
	}
	return d.Text(root).String()
}

// cvRootsOf is the sorted union of the root names of docs and references.
func cvRootsOf(docs []*crdt.Doc, refs ...*refDoc) []string {
	set := map[string]bool{}
	for _, d := range docs {
		for _, r := range d.Roots() {
			set[r] = true
		}
	}
	for _, r := range refs {
		for name := range r.texts {
			set[name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// cvMatchRef fails unless d has the texts and state vector of r, and both or
// neither have ops waiting.
func cvMatchRef(t cvT, what string, d *crdt.Doc, r *refDoc) {
	for _, root := range cvRootsOf([]*crdt.Doc{d}, r) {
		if got, want := cvString(d, root), r.String(root); got != want {
			t.Fatalf("%s: root %q: crdt %q, reference %q", what, root, got, want)
		}
	}
	if got, want := d.StateVector(), r.stateVector(); !got.Equal(want) {
		t.Fatalf("%s: state vector: crdt %v, reference %v", what, got, want)
	}
	if got, want := d.Pending(), r.Pending(); (got == 0) != (want == 0) {
		t.Fatalf("%s: pending: crdt %d ops, reference %d ops", what, got, want)
	}
}

// cvSame fails unless a and b have the same texts and state vectors.
func cvSame(t cvT, what string, a, b *crdt.Doc) {
	for _, root := range cvRootsOf([]*crdt.Doc{a, b}) {
		if x, y := cvString(a, root), cvString(b, root); x != y {
			t.Fatalf("%s: root %q: %q != %q", what, root, x, y)
		}
	}
	if x, y := a.StateVector(), b.StateVector(); !x.Equal(y) {
		t.Fatalf("%s: state vectors differ: %v != %v", what, x, y)
	}
}

// cvConverged fails unless all docs have the same texts and state vectors and
// nothing pending.
func cvConverged(t cvT, what string, docs []*crdt.Doc) {
	for i, d := range docs {
		if d.Pending() != 0 {
			t.Fatalf("%s: replica %d has %d pending ops at quiescence", what, i, d.Pending())
		}
		cvSame(t, fmt.Sprintf("%s: replica 0 vs %d", what, i), docs[0], d)
	}
}

// cvRandAgents returns n distinct agents, mixing small ids with ids that
// need all 64 bits (FugueMax compares agents as unsigned integers).
func cvRandAgents(rng *rand.Rand, n int) []crdt.AgentID {
	pool := []uint64{1, 2, 3, 1 << 31, 1<<32 + 1, 1<<63 - 1, 1 << 63, 1<<63 + 5, math.MaxUint64, rng.Uint64() | 1, rng.Uint64()>>32 | 1}
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	var out []crdt.AgentID
	for _, a := range pool {
		if len(out) < n && a != 0 && !slices.Contains(out, crdt.AgentID(a)) {
			out = append(out, crdt.AgentID(a))
		}
	}
	return out
}

// Kinds of local edit (cvEditAt): each makes a different shape of run in the
// history and in the updates.
const (
	cvInsert    = iota // insert text at pos
	cvTyping           // type text one code point at a time from pos
	cvDelete           // delete count code points at pos
	cvBackspace        // count backspaces with the cursor at pos (reverse delete run)
	cvForward          // count forward deletes at pos
	cvKinds
)

// cvEditAt applies one local edit to x and returns the cursor after it.
// Positions and counts must fit x. each, if not nil, runs after every
// keystroke of a typing or deleting run.
func cvEditAt(t cvT, x *crdt.Text, kind, pos, count int, text string, each func()) int {
	key := func(err error) {
		if err != nil {
			t.Fatalf("edit kind %d at %d (count %d, text %q) of %q with length %d: %v", kind, pos, count, text, x.Name(), x.Len(), err)
		}
		if each != nil {
			each()
		}
	}
	switch kind {
	case cvInsert:
		key(x.Insert(pos, text))
	case cvTyping:
		for k, c := range []rune(text) {
			key(x.Insert(pos+k, string(c)))
		}
	case cvDelete:
		key(x.Delete(pos, count))
	case cvBackspace:
		for k := range count {
			key(x.Delete(pos-1-k, 1))
		}
		return pos - count
	case cvForward:
		for range count {
			key(x.Delete(pos, 1))
		}
	}
	return pos + len([]rune(text))
}

// cvMarker is the code point whose position is a hot spot for edits: every
// session starts with it, so concurrent edits often land at the same place.
const cvMarker = '|'

// cvHot returns the hot spots of x for a replica: its cursor in x (if
// cursor >= 0) and the position of cvMarker (if present).
func cvHot(x *crdt.Text, cursor int) []int {
	var hot []int
	if cursor >= 0 {
		hot = append(hot, cursor)
	}
	if i := slices.Index(x.Runes(), cvMarker); i >= 0 {
		hot = append(hot, i, i+1)
	}
	return hot
}

// cvRandEdit makes one random local edit of x, half the time at a hot spot
// (clamped to the text), and returns the cursor after it (each: see
// cvEditAt).
func cvRandEdit(t cvT, rng *rand.Rand, x *crdt.Text, hot []int, each func()) int {
	n := x.Len()
	kind := rng.IntN(cvKinds)
	if n == 0 || rng.IntN(2) == 0 {
		kind = rng.IntN(2) // more inserts than deletes
	}
	pick := func(lo, hi int) int {
		if len(hot) > 0 && rng.IntN(2) == 0 {
			return min(max(hot[rng.IntN(len(hot))], lo), hi)
		}
		return lo + rng.IntN(hi-lo+1)
	}
	switch kind {
	case cvInsert, cvTyping:
		pos := pick(0, n)
		if rng.IntN(4) == 0 {
			pos = n
		}
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(cvPieces[rng.IntN(len(cvPieces))])
		}
		return cvEditAt(t, x, kind, pos, 0, b.String(), each)
	case cvBackspace:
		pos := pick(1, n)
		return cvEditAt(t, x, kind, pos, 1+rng.IntN(min(4, pos)), "", each)
	default:
		pos := pick(0, n-1)
		return cvEditAt(t, x, kind, pos, 1+rng.IntN(min(4, n-pos)), "", each)
	}
}

// cvEntry is one update of a recorded history.
type cvEntry struct {
	from   int    // replica that produced it
	diff   bool   // made by EncodeDiff (else TakeUpdate)
	update []byte // encoded update
}

// cvHistory runs a seeded session of `peers` replicas for `steps` steps:
// random local edits on random roots (each batch taken with TakeUpdate) and
// partial syncs (a peer applies a prefix of another peer's updates it has not
// seen, which may leave ops waiting, or an EncodeDiff of another peer). It
// returns every update in the order made (a causal order) and the replicas
// after a full sync, which it checks converge.
func cvHistory(t cvT, seed uint64, peers, steps int) ([]cvEntry, []*crdt.Doc) {
	rng := rand.New(rand.NewPCG(seed, uint64(peers)))
	agents := cvRandAgents(rng, peers)
	docs := make([]*crdt.Doc, peers)
	for i := range docs {
		docs[i] = crdt.NewDoc(crdt.Options{Agent: agents[i]})
	}
	var log []cvEntry
	byAuthor := make([][][]byte, peers)
	seen := make([][]int, peers) // seen[j][i]: how many of i's updates j applied
	for j := range seen {
		seen[j] = make([]int, peers)
	}
	apply := func(j int, u []byte) {
		if err := docs[j].ApplyUpdate(u); err != nil {
			t.Fatalf("seed %d: replica %d: ApplyUpdate: %v", seed, j, err)
		}
	}
	// Every peer starts from the marker, and edits near its own cursor.
	if err := docs[0].Text(cvRoots[0]).Insert(0, string(cvMarker)); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	marker := docs[0].TakeUpdate()
	log = append(log, cvEntry{update: marker})
	byAuthor[0] = append(byAuthor[0], marker)
	for j := range docs {
		if j > 0 {
			apply(j, marker)
		}
		seen[j][0] = 1
	}
	cursors := make([]map[string]int, peers)
	for i := range cursors {
		cursors[i] = map[string]int{}
	}
	for range steps {
		p := rng.IntN(peers)
		switch r := rng.IntN(10); {
		case r < 6 || peers == 1:
			root := cvRoots[0]
			if rng.IntN(4) == 0 {
				root = cvRoots[rng.IntN(len(cvRoots))]
			}
			take := func() {
				if u := docs[p].TakeUpdate(); u != nil {
					log = append(log, cvEntry{from: p, update: u})
					byAuthor[p] = append(byAuthor[p], u)
					seen[p][p]++
				}
			}
			var each func() // sometimes one update per keystroke
			if rng.IntN(3) == 0 {
				each = take
			}
			for range 1 + rng.IntN(3) {
				x := docs[p].Text(root)
				cur, ok := cursors[p][root]
				if !ok {
					cur = -1
				}
				cursors[p][root] = cvRandEdit(t, rng, x, cvHot(x, cur), each)
			}
			take()
		case r < 9:
			i := rng.IntN(peers)
			if i == p {
				continue
			}
			left := len(byAuthor[i]) - seen[p][i]
			if left == 0 {
				continue
			}
			for range 1 + rng.IntN(left) {
				apply(p, byAuthor[i][seen[p][i]])
				seen[p][i]++
			}
		default:
			i := rng.IntN(peers)
			if i == p {
				continue
			}
			u := docs[i].EncodeDiff(docs[p].StateVector())
			log = append(log, cvEntry{from: i, diff: true, update: u})
			apply(p, u)
		}
	}
	for j := range docs {
		for i := range docs {
			for ; seen[j][i] < len(byAuthor[i]); seen[j][i]++ {
				apply(j, byAuthor[i][seen[j][i]])
			}
		}
	}
	cvConverged(t, fmt.Sprintf("seed %d: after full sync", seed), docs)
	return log, docs
}
