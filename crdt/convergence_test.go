package crdt_test

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/collabd/collabd/crdt"
)

// Convergence tests of package crdt (RELIABILITY.md §2 and §6 C1–C6):
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

// TestDifferential replays seeded histories of 1–5 peers, update by update in
// the order they were made, into a fresh Doc and into the reference
// implementation; their texts and state vectors must match after every step.
func TestDifferential(t *testing.T) {
	seeds := 100
	if testing.Short() {
		seeds = 10
	}
	for peers := 1; peers <= 5; peers++ {
		for seed := uint64(1); seed <= uint64(seeds); seed++ {
			t.Run(fmt.Sprintf("peers=%d/seed=%d", peers, seed), func(t *testing.T) {
				cvReplayDifferential(t, seed, peers, 120)
			})
		}
	}
	// Long histories grow the run tree past one level of inner nodes.
	if testing.Short() {
		return
	}
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("long/peers=3/seed=%d", seed), func(t *testing.T) {
			cvReplayDifferential(t, seed, 3, 3000)
		})
	}
}

// cvReplayDifferential makes a history (cvHistory) and replays it into a
// fresh Doc and a reference, comparing them after every update.
func cvReplayDifferential(t *testing.T, seed uint64, peers, steps int) {
	t.Helper()
	log, docs := cvHistory(t, seed, peers, steps)
	d := crdt.NewDoc(crdt.Options{Agent: 0xD1FF})
	ref := newRefDoc()
	for step, e := range log {
		if err := d.ApplyUpdate(e.update); err != nil {
			t.Fatalf("seed %d, step %d: ApplyUpdate: %v", seed, step, err)
		}
		if err := ref.apply(e.update); err != nil {
			t.Fatalf("seed %d, step %d: reference: %v", seed, step, err)
		}
		cvMatchRef(t, fmt.Sprintf("seed %d, first mismatch at step %d (update from peer %d, diff %v)", seed, step, e.from, e.diff), d, ref)
	}
	cvConverged(t, fmt.Sprintf("seed %d: replay vs peers", seed), append([]*crdt.Doc{d}, docs...))
}

// cvOp is an op to encode by hand (cvEncode), in the update format of
// docs/FORMATS.md, for ops no local edit would make.
type cvOp struct {
	del         bool
	id          crdt.ID
	text        string // insert content; "" with tomb > 0 for a tombstone insert
	tomb        uint64
	left, right crdt.ID
	target      crdt.ID // delete: removes target .. target+n-1
	n           uint64  // delete length
}

// cvEncode encodes ops on root "t" as one update with the msgpack library.
func cvEncode(t cvT, ops []cvOp) []byte {
	var agents []uint64
	ix := func(a crdt.AgentID) uint64 {
		if i := slices.Index(agents, uint64(a)); i >= 0 {
			return uint64(i)
		}
		agents = append(agents, uint64(a))
		return uint64(len(agents) - 1)
	}
	ref := func(x crdt.ID) []any {
		if x.IsZero() {
			return []any{uint64(0), uint64(0)}
		}
		return []any{ix(x.Agent) + 1, x.Seq}
	}
	var enc []any
	for _, o := range ops {
		head := []any{uint64(0), uint64(0), ix(o.id.Agent), o.id.Seq}
		if o.del {
			head[0] = uint64(1)
			enc = append(enc, append(append(head, o.n), append(ref(o.target), false)...))
			continue
		}
		var content any = o.text
		if o.tomb > 0 {
			content = o.tomb
		}
		enc = append(enc, append(append(append(head, content), ref(o.left)...), ref(o.right)...))
	}
	b, err := msgpack.Marshal([]any{uint64(1), agents, []string{"t"}, enc})
	if err != nil {
		t.Fatalf("msgpack: %v", err)
	}
	return b
}

// TestDifferentialCraftedOrigins feeds a fresh Doc and the reference the
// same inserts with origins no local edit makes: a left origin anywhere and a
// right origin anywhere after it (tombstones included), as a buggy or hostile
// peer could send. Items between the origins force the FugueMax scan through
// runs, split runs and tombstones; both implementations run the same
// algorithm, so their texts must match after every update. The Doc may reject
// an update whose origins provably were not adjacent (ErrInvalidOp, nothing
// applied); the reference then skips it too.
func TestDifferentialCraftedOrigins(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		cvCrafted(t, seed, 200)
	}
}

// cvCrafted runs one seeded TestDifferentialCraftedOrigins history.
func cvCrafted(t *testing.T, seed uint64, steps int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0xC5))
	agents := cvRandAgents(rng, 4)
	next := map[crdt.AgentID]uint64{}
	d := crdt.NewDoc(crdt.Options{Agent: 0xC5C5})
	ref := newRefDoc()
	rejected := 0
	for step := range steps {
		items := ref.text("t").items
		a := agents[rng.IntN(len(agents))]
		var ops []cvOp
		for range 1 + rng.IntN(2) {
			id := crdt.ID{Agent: a, Seq: next[a]}
			if len(items) > 0 && rng.IntN(4) == 0 {
				it := items[rng.IntN(len(items))]
				ops = append(ops, cvOp{del: true, id: id, target: it.id, n: 1})
				next[a]++
				continue
			}
			l := rng.IntN(len(items)+1) - 1 // -1: none
			r := l + 1 + rng.IntN(len(items)-l)
			o := cvOp{id: id}
			if l >= 0 {
				o.left = items[l].id
			}
			if r < len(items) {
				o.right = items[r].id
			}
			k := 1 + rng.IntN(4)
			if rng.IntN(8) == 0 {
				o.tomb = uint64(k)
			} else {
				for range k {
					o.text += cvPieces[rng.IntN(len(cvPieces))]
				}
				k = len([]rune(o.text))
			}
			ops = append(ops, o)
			next[a] += uint64(k)
			break // the next op's origins must be chosen after this one lands
		}
		u := cvEncode(t, ops)
		if err := d.ApplyUpdate(u); errors.Is(err, crdt.ErrInvalidOp) {
			// Refusing origins that cannot have been adjacent is allowed
			// (see TestRegression_NonAdjacentOriginsDiverge); the update is
			// rejected whole, so its seqs stay free.
			for _, o := range ops {
				next[o.id.Agent] = min(next[o.id.Agent], o.id.Seq)
			}
			rejected++
			cvMatchRef(t, fmt.Sprintf("seed %d, step %d: after a rejected update", seed, step), d, ref)
			continue
		} else if err != nil {
			t.Fatalf("seed %d, step %d: ApplyUpdate(%+v): %v", seed, step, ops, err)
		}
		if err := ref.apply(u); err != nil {
			t.Fatalf("seed %d, step %d: reference: %v", seed, step, err)
		}
		cvMatchRef(t, fmt.Sprintf("seed %d, first mismatch at step %d (%+v)", seed, step, ops), d, ref)
	}
	if rejected == steps {
		t.Fatalf("seed %d: all %d crafted updates rejected", seed, steps)
	}
	// The crafted history survives a diff and a snapshot.
	fresh := crdt.NewDoc(crdt.Options{Agent: 0xF5})
	if err := fresh.ApplyUpdate(d.EncodeDiff(nil)); err != nil {
		t.Fatalf("seed %d: full diff: %v", seed, err)
	}
	cvSame(t, fmt.Sprintf("seed %d: replica from EncodeDiff(nil)", seed), d, fresh)
	loaded, err := crdt.LoadSnapshot(d.EncodeSnapshot(), crdt.Options{Agent: 0xF6})
	if err != nil {
		t.Fatalf("seed %d: LoadSnapshot: %v", seed, err)
	}
	cvSame(t, fmt.Sprintf("seed %d: replica from a snapshot", seed), d, loaded)
}

// TestConvergencePermutations applies one op set (including overlapping
// EncodeDiff updates) in 128 random orders with random duplicates. Updates
// that arrive before their dependencies must wait (checked against the
// reference for the first orders), and every order must give one final state.
func TestConvergencePermutations(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			log, docs := cvHistory(t, seed, 2+int(seed%4), 60)
			roots := cvRootsOf(docs)
			var want string
			for _, root := range roots {
				want += fmt.Sprintf("%q=%q;", root, cvString(docs[0], root))
			}
			wantSV := docs[0].StateVector()
			rng := rand.New(rand.NewPCG(seed, 0xC2))
			final := map[string][]int{}
			for perm := range 128 {
				order := rng.Perm(len(log))
				for range rng.IntN(len(log)/4 + 1) { // duplicates anywhere
					k := rng.IntN(len(order) + 1)
					order = slices.Insert(order, k, rng.IntN(len(log)))
				}
				d := crdt.NewDoc(crdt.Options{Agent: 0xC2C2})
				var ref *refDoc
				if perm < 16 {
					ref = newRefDoc()
				}
				for step, k := range order {
					if err := d.ApplyUpdate(log[k].update); err != nil {
						t.Fatalf("seed %d, order %d, step %d: ApplyUpdate: %v", seed, perm, step, err)
					}
					if ref != nil {
						if err := ref.apply(log[k].update); err != nil {
							t.Fatalf("seed %d, order %d, step %d: reference: %v", seed, perm, step, err)
						}
						cvMatchRef(t, fmt.Sprintf("seed %d, order %d, step %d", seed, perm, step), d, ref)
					}
				}
				if d.Pending() != 0 {
					t.Fatalf("seed %d, order %d: %d ops still pending after all updates", seed, perm, d.Pending())
				}
				if !d.StateVector().Equal(wantSV) {
					t.Fatalf("seed %d, order %d: state vector %v, want %v", seed, perm, d.StateVector(), wantSV)
				}
				var got string
				for _, root := range roots {
					got += fmt.Sprintf("%q=%q;", root, cvString(d, root))
				}
				final[got] = append(final[got], perm)
			}
			if len(final) != 1 || final[want] == nil {
				t.Fatalf("seed %d: %d distinct final states over 128 orders, want 1 (%s); got orders by state: %v", seed, len(final), want, final)
			}
		})
	}
}

// cvReplica is one replica of the rapid network: its doc, a reference that
// has applied exactly the same updates, and an inbox of undelivered messages.
type cvReplica struct {
	agent   crdt.AgentID
	doc     *crdt.Doc
	ref     *refDoc
	inbox   [][]byte
	cursors map[string]int // root -> position after the replica's last edit there
}

// cvDrawAgents draws n distinct agents, small and full-width.
func cvDrawAgents(t *rapid.T, n int) []crdt.AgentID {
	gen := rapid.OneOf(
		rapid.Uint64Range(1, 6),
		rapid.SampledFrom([]uint64{1 << 32, 1<<63 - 1, 1 << 63, 1<<63 + 1, math.MaxUint64 - 1, math.MaxUint64}),
		rapid.Uint64Min(1),
	)
	raw := rapid.SliceOfNDistinct(gen, n, n, rapid.ID[uint64]).Draw(t, "agents")
	out := make([]crdt.AgentID, n)
	for i, a := range raw {
		out[i] = crdt.AgentID(a)
	}
	return out
}

// cvDrawEdit makes one local edit of x chosen by rapid, often at a hot spot,
// and returns the cursor after it (each: see cvEditAt).
func cvDrawEdit(t *rapid.T, x *crdt.Text, hot []int, each func()) int {
	n := x.Len()
	var kind int
	if n > 0 {
		kind = rapid.IntRange(0, cvKinds-1).Draw(t, "edit kind")
	} else {
		kind = rapid.IntRange(0, 1).Draw(t, "insert kind")
	}
	pick := func(lo, hi int, label string) int {
		if len(hot) > 0 && rapid.Bool().Draw(t, "at a hot spot") {
			return min(max(rapid.SampledFrom(hot).Draw(t, "hot spot"), lo), hi)
		}
		return rapid.IntRange(lo, hi).Draw(t, label)
	}
	var cursor int
	switch kind {
	case cvInsert, cvTyping:
		pos := pick(0, n, "pos")
		s := strings.Join(rapid.SliceOfN(rapid.SampledFrom(cvPieces), 1, 6).Draw(t, "text"), "")
		cursor = cvEditAt(t, x, kind, pos, 0, s, each)
	case cvBackspace:
		pos := pick(1, n, "cursor")
		cursor = cvEditAt(t, x, kind, pos, rapid.IntRange(1, min(5, pos)).Draw(t, "count"), "", each)
	default:
		pos := pick(0, n-1, "pos")
		cursor = cvEditAt(t, x, kind, pos, rapid.IntRange(1, min(5, n-pos)).Draw(t, "count"), "", each)
	}
	t.Logf("  %q is now %q", x.Name(), x.String())
	return cursor
}

// cvDeliver applies u to replica r and to its reference, and checks they agree.
func cvDeliver(t *rapid.T, what string, r *cvReplica, u []byte) {
	if err := r.doc.ApplyUpdate(u); err != nil {
		t.Fatalf("%s: ApplyUpdate: %v", what, err)
	}
	if err := r.ref.apply(u); err != nil {
		t.Fatalf("%s: reference: %v", what, err)
	}
	cvMatchRef(t, what, r.doc, r.ref)
}

// TestConvergence is the seeded multi-replica property (C1, C2, C6a): 2–5
// replicas edit random roots and exchange updates through inboxes that
// reorder, duplicate, delay and lose them; some exchanges are EncodeDiff
// against the receiver's state vector (applied later, so they overlap what
// arrived meanwhile); replicas are reloaded from their own snapshot mid-way
// and go on editing. After every delivery a replica must agree with a
// reference fed the same updates (so out-of-order updates wait exactly as
// they should); every local op's update applied to a clone taken just before
// it must give the same state; at quiescence all replicas are identical with
// nothing pending.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 5).Draw(t, "replicas")
		agents := cvDrawAgents(t, n)
		reps := make([]*cvReplica, n)
		for i := range reps {
			reps[i] = &cvReplica{agent: agents[i], doc: crdt.NewDoc(crdt.Options{Agent: agents[i]}), ref: newRefDoc(), cursors: map[string]int{}}
		}
		// Every replica starts from the marker (a hot spot for edits).
		if err := reps[0].doc.Text(cvRoots[0]).Insert(0, string(cvMarker)); err != nil {
			t.Fatalf("marker: %v", err)
		}
		marker := reps[0].doc.TakeUpdate()
		for i, r := range reps {
			cvDeliver(t, fmt.Sprintf("marker to replica %d", i), r, marker)
		}
		cloneAgent := crdt.AgentID(0xC10E)
		for slices.Contains(agents, cloneAgent) {
			cloneAgent++
		}
		replica := func(label string) (int, *cvReplica) {
			i := rapid.IntRange(0, n-1).Draw(t, label)
			return i, reps[i]
		}
		steps := rapid.IntRange(1, 300).Draw(t, "steps")
		for step := range steps {
			switch act := rapid.IntRange(0, 15).Draw(t, "action"); {
			case act < 6: // local edit, broadcast to every inbox
				i, r := replica("editor")
				root := rapid.SampledFrom(cvRoots).Draw(t, "root")
				var clone *crdt.Doc
				if rapid.IntRange(0, 3).Draw(t, "clone") == 0 {
					var err error
					if clone, err = crdt.LoadSnapshot(r.doc.EncodeSnapshot(), crdt.Options{Agent: cloneAgent}); err != nil {
						t.Fatalf("step %d: clone of replica %d: %v", step, i, err)
					}
				}
				// publish takes the replica's pending local ops as one update,
				// checks it against the clone (C6a) and queues it for the others.
				publish := func() {
					u := r.doc.TakeUpdate()
					if u == nil {
						t.Fatalf("step %d: replica %d: TakeUpdate after an edit = nil", step, i)
					}
					cvDeliver(t, fmt.Sprintf("step %d: replica %d, own update", step, i), r, u)
					if clone != nil {
						if err := clone.ApplyUpdate(u); err != nil {
							t.Fatalf("step %d: clone of replica %d: ApplyUpdate: %v", step, i, err)
						}
						cvSame(t, fmt.Sprintf("step %d: replica %d vs its clone after the encoded op (C6a)", step, i), r.doc, clone)
					}
					for j, o := range reps {
						if j != i {
							o.inbox = append(o.inbox, u)
							if rapid.IntRange(0, 5).Draw(t, "duplicate") == 0 {
								o.inbox = append(o.inbox, u)
							}
						}
					}
				}
				// Keystroke by keystroke, an edit's ops are split over several
				// updates while the history merges them into one span (a typing
				// or backspace run), which later diffs send whole: receivers
				// that have part of it must trim the rest.
				var each func()
				if rapid.IntRange(0, 2).Draw(t, "per keystroke") == 0 {
					each = publish
				}
				t.Logf("step %d: replica %d edits (update per keystroke: %v)", step, i, each != nil)
				x := r.doc.Text(root)
				cur, ok := r.cursors[root]
				if !ok {
					cur = -1
				}
				r.cursors[root] = cvDrawEdit(t, x, cvHot(x, cur), each)
				if each == nil {
					publish()
				}
			case act < 12: // deliver one message, in any order; maybe keep it for a duplicate
				j, r := replica("receiver")
				if len(r.inbox) == 0 {
					continue
				}
				if rapid.IntRange(0, 9).Draw(t, "flush inbox") == 9 {
					t.Logf("step %d: replica %d gets its %d queued messages in order", step, j, len(r.inbox))
					for k, u := range r.inbox {
						cvDeliver(t, fmt.Sprintf("step %d: replica %d, flushed message %d", step, j, k), r, u)
					}
					r.inbox = nil
					continue
				}
				k := rapid.IntRange(0, len(r.inbox)-1).Draw(t, "message")
				u := r.inbox[k]
				if rapid.IntRange(0, 4).Draw(t, "keep") != 0 {
					r.inbox = slices.Delete(r.inbox, k, k+1)
				}
				t.Logf("step %d: replica %d gets message %d", step, j, k)
				cvDeliver(t, fmt.Sprintf("step %d: replica %d, message %d", step, j, k), r, u)
			case act < 14: // state-vector diff, queued (delayed) at the requester
				i, src := replica("diff source")
				j, dst := replica("diff requester")
				if i != j {
					t.Logf("step %d: replica %d queues a diff from %d", step, j, i)
					dst.inbox = append(dst.inbox, src.doc.EncodeDiff(dst.doc.StateVector()))
				}
			case act < 15: // lose a message
				j, r := replica("lossy")
				if len(r.inbox) > 0 {
					k := rapid.IntRange(0, len(r.inbox)-1).Draw(t, "lost")
					t.Logf("step %d: replica %d loses message %d", step, j, k)
					r.inbox = slices.Delete(r.inbox, k, k+1)
				}
			default: // reload from its own snapshot, same agent
				i, r := replica("reloaded")
				re, err := crdt.LoadSnapshot(r.doc.EncodeSnapshot(), crdt.Options{Agent: r.agent})
				if err != nil {
					t.Fatalf("step %d: replica %d: LoadSnapshot: %v", step, i, err)
				}
				t.Logf("step %d: replica %d reloads from its snapshot (%d ops were pending)", step, i, r.doc.Pending())
				cvSame(t, fmt.Sprintf("step %d: replica %d reloaded from its snapshot", step, i), r.doc, re)
				if re.Agent() != r.agent {
					t.Fatalf("step %d: reloaded replica %d has agent %x, want %x", step, i, re.Agent(), r.agent)
				}
				r.doc = re
				if re.Pending() == 0 {
					r.ref.dropPending() // snapshots hold applied ops only
				}
			}
		}
		// Quiescence: deliver what is queued, then sync every pair by state
		// vector until nothing changes.
		for j, r := range reps {
			for k, u := range r.inbox {
				cvDeliver(t, fmt.Sprintf("flush: replica %d, message %d", j, k), r, u)
			}
			r.inbox = nil
		}
		docs := make([]*crdt.Doc, n)
		for round := 0; ; round++ {
			before := 0
			for _, r := range reps {
				before += int(r.doc.Version())
			}
			for i, src := range reps {
				for j, dst := range reps {
					if i != j {
						cvDeliver(t, fmt.Sprintf("sync round %d: %d -> %d", round, i, j), dst, src.doc.EncodeDiff(dst.doc.StateVector()))
					}
				}
			}
			after := 0
			for _, r := range reps {
				after += int(r.doc.Version())
			}
			if after == before {
				break
			}
			if round > 2 {
				t.Fatalf("no quiescence after %d sync rounds", round+1)
			}
		}
		for i, r := range reps {
			docs[i] = r.doc
			if r.ref.Pending() != 0 {
				t.Fatalf("replica %d: reference has %d pending ops at quiescence", i, r.ref.Pending())
			}
		}
		cvConverged(t, "quiescence", docs)
		// The state survives a full-history diff and a snapshot.
		fresh := crdt.NewDoc(crdt.Options{Agent: cloneAgent})
		if err := fresh.ApplyUpdate(docs[0].EncodeDiff(nil)); err != nil {
			t.Fatalf("full diff: %v", err)
		}
		cvSame(t, "fresh replica from EncodeDiff(nil)", docs[0], fresh)
		loaded, err := crdt.LoadSnapshot(docs[n-1].EncodeSnapshot(), crdt.Options{Agent: cloneAgent})
		if err != nil {
			t.Fatalf("LoadSnapshot: %v", err)
		}
		cvSame(t, "fresh replica from a snapshot", docs[0], loaded)
	})
}

// TestSnapshotFidelity (C6b, yorkie#1729): a replica loaded from a snapshot
// taken at a random point (possibly with ops pending) and the replica it came
// from receive the same later concurrent ops in the same order: they must stay
// identical, pending buffers included, and go on converging when both edit.
func TestSnapshotFidelity(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		agents := cvDrawAgents(t, 5)
		peers := make([]*crdt.Doc, 3)
		for i := range peers {
			peers[i] = crdt.NewDoc(crdt.Options{Agent: agents[i]})
		}
		sync := func(i, j int) {
			if err := peers[j].ApplyUpdate(peers[i].EncodeDiff(peers[j].StateVector())); err != nil {
				t.Fatalf("sync %d -> %d: %v", i, j, err)
			}
		}
		// History: edits, diffs between peers, and single updates delivered
		// in any order (so the snapshot may be taken with ops pending).
		pairGen := rapid.IntRange(0, 2)
		var made [][]byte
		for range rapid.IntRange(0, 120).Draw(t, "history steps") {
			i := pairGen.Draw(t, "peer")
			switch rapid.IntRange(0, 2).Draw(t, "history action") {
			case 0:
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
				made = append(made, peers[i].TakeUpdate())
			case 1:
				if j := pairGen.Draw(t, "to"); j != i {
					sync(i, j)
				}
			default:
				if len(made) > 0 {
					u := rapid.SampledFrom(made).Draw(t, "update")
					if err := peers[i].ApplyUpdate(u); err != nil {
						t.Fatalf("peer %d: %v", i, err)
					}
				}
			}
		}
		a := peers[0]
		loaded, err := crdt.LoadSnapshot(a.EncodeSnapshot(), crdt.Options{Agent: agents[3]})
		if err != nil {
			t.Fatalf("LoadSnapshot: %v", err)
		}
		t.Logf("snapshot taken with %d ops pending", a.Pending())
		cvSame(t, "just loaded", a, loaded)
		// Counts may differ: the buffer can hold one op twice (delivered
		// twice while waiting), the snapshot once.
		if got, want := loaded.Pending(), a.Pending(); (got == 0) != (want == 0) {
			t.Fatalf("loaded replica has %d pending ops, original %d", got, want)
		}
		// Later ops: peers 1 and 2 edit concurrently with each other and with
		// a, sometimes after syncing with each other, including deletes of
		// text the snapshot holds.
		var later [][]byte
		for range rapid.IntRange(1, 60).Draw(t, "later steps") {
			i := rapid.IntRange(1, 2).Draw(t, "later peer")
			if rapid.IntRange(0, 3).Draw(t, "sync first") == 0 {
				sync(3-i, i)
			}
			take := func() { later = append(later, peers[i].TakeUpdate()) }
			if rapid.Bool().Draw(t, "update per keystroke") {
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, take)
			} else {
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
				take()
			}
		}
		for k, u := range rapid.Permutation(later).Draw(t, "delivery order") {
			for _, d := range []*crdt.Doc{a, loaded} {
				if err := d.ApplyUpdate(u); err != nil {
					t.Fatalf("later update %d: %v", k, err)
				}
			}
			cvSame(t, fmt.Sprintf("after later update %d", k), a, loaded)
			if (a.Pending() == 0) != (loaded.Pending() == 0) {
				t.Fatalf("after later update %d: pending %d vs loaded %d", k, a.Pending(), loaded.Pending())
			}
		}
		// Both edit concurrently, then exchange by state vector.
		cvDrawEdit(t, a.Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
		cvDrawEdit(t, loaded.Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
		ua, ul := a.EncodeDiff(loaded.StateVector()), loaded.EncodeDiff(a.StateVector())
		if err := a.ApplyUpdate(ul); err != nil {
			t.Fatalf("loaded -> original: %v", err)
		}
		if err := loaded.ApplyUpdate(ua); err != nil {
			t.Fatalf("original -> loaded: %v", err)
		}
		// The peers catch up from the loaded replica alone (two rounds, so
		// each peer also gets what the other sent it).
		for _, i := range []int{1, 2, 1} {
			if err := peers[i].ApplyUpdate(loaded.EncodeDiff(peers[i].StateVector())); err != nil {
				t.Fatalf("loaded -> peer %d: %v", i, err)
			}
			if err := loaded.ApplyUpdate(peers[i].EncodeDiff(loaded.StateVector())); err != nil {
				t.Fatalf("peer %d -> loaded: %v", i, err)
			}
		}
		if err := a.ApplyUpdate(loaded.EncodeDiff(a.StateVector())); err != nil {
			t.Fatalf("loaded -> original: %v", err)
		}
		cvConverged(t, "after exchange", []*crdt.Doc{a, loaded, peers[1], peers[2]})
	})
}

// cvType types word into d's root "t" at index at, one code point per
// update, forwards or backwards, and returns the updates.
func cvType(t *testing.T, d *crdt.Doc, at int, word string, backward bool) [][]byte {
	t.Helper()
	x := d.Text("t")
	rs := []rune(word)
	var ups [][]byte
	for k := range rs {
		pos, c := at+k, rs[k]
		if backward {
			pos, c = at, rs[len(rs)-1-k]
		}
		if err := x.Insert(pos, string(c)); err != nil {
			t.Fatalf("Insert(%d, %q): %v", pos, c, err)
		}
		ups = append(ups, d.TakeUpdate())
	}
	return ups
}

// cvPermutations returns every ordering of words, concatenated.
func cvPermutations(words []string) []string {
	if len(words) <= 1 {
		return []string{strings.Join(words, "")}
	}
	var out []string
	for i, w := range words {
		rest := append(slices.Clone(words[:i]), words[i+1:]...)
		for _, p := range cvPermutations(rest) {
			out = append(out, w+p)
		}
	}
	return out
}

// TestNonInterleaving (C4): replicas type words concurrently at the same
// place, forwards (appending each character) or backwards (inserting each
// character at the same position). After merging, in every delivery order,
// each word must be contiguous, and the order of the words is the FugueMax
// tie-break: ascending agent.
func TestNonInterleaving(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		at       int
		words    []string // word i is typed by agent i+1
		backward bool
		want     string
	}{
		{"2 forward", "", 0, []string{"Hello", " World!"}, false, "Hello World!"},
		{"2 backward", "", 0, []string{"Hello", " World!"}, true, "Hello World!"},
		{"2 forward mid", "[]", 1, []string{"Hello", " World!"}, false, "[Hello World!]"},
		{"2 backward mid", "[]", 1, []string{"Hello", " World!"}, true, "[Hello World!]"},
		{"2 forward multibyte", "<>", 2, []string{"héllo🎉", "wörld👍🏽"}, false, "<>héllo🎉wörld👍🏽"},
		{"2 backward multibyte", "<>", 2, []string{"héllo🎉", "wörld👍🏽"}, true, "<>héllo🎉wörld👍🏽"},
		{"3 forward", "", 0, []string{"Hello", " World!", " Ciao"}, false, "Hello World! Ciao"},
		{"3 backward", "ab", 1, []string{"Hello", " World!", " Ciao"}, true, "aHello World! Ciaob"},
		{"4 forward", "ab", 1, []string{"one", "two", "three", "four"}, false, "aonetwothreefourb"},
		{"4 backward", "", 0, []string{"one", "two", "three", "four"}, true, "onetwothreefour"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.words)
			base := crdt.NewDoc(crdt.Options{Agent: 100})
			if err := base.Text("t").Insert(0, tc.base); err != nil {
				t.Fatal(err)
			}
			baseUpdate := base.TakeUpdate()
			docs := make([]*crdt.Doc, n)
			ups := make([][][]byte, n)
			for i := range docs {
				docs[i] = crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(i + 1)})
				if baseUpdate != nil {
					if err := docs[i].ApplyUpdate(baseUpdate); err != nil {
						t.Fatal(err)
					}
				}
				ups[i] = cvType(t, docs[i], tc.at, tc.words[i], tc.backward)
				rs := []rune(tc.base)
				if got, want := docs[i].Text("t").String(), string(rs[:tc.at])+tc.words[i]+string(rs[tc.at:]); got != want {
					t.Fatalf("replica %d alone: %q, want %q", i, got, want)
				}
			}
			// Replica i receives the others' updates peer by peer, starting
			// with peer i+1 (for two replicas: each one merges the other).
			for i, d := range docs {
				for k := 1; k < n; k++ {
					for _, u := range ups[(i+k)%n] {
						if err := d.ApplyUpdate(u); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			// One more replica receives every update in a shuffled order.
			shuffled := crdt.NewDoc(crdt.Options{Agent: 99})
			ref := newRefDoc()
			all := [][]byte{}
			if baseUpdate != nil {
				all = append(all, baseUpdate)
			}
			for _, u := range ups {
				all = append(all, u...)
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			for _, u := range all {
				if err := shuffled.ApplyUpdate(u); err != nil {
					t.Fatal(err)
				}
				if err := ref.apply(u); err != nil {
					t.Fatal(err)
				}
			}
			cvMatchRef(t, "shuffled delivery vs reference", shuffled, ref)
			cvConverged(t, tc.name, append(docs, shuffled))
			got := docs[0].Text("t").String()
			rs := []rune(tc.base)
			contiguous := false
			for _, p := range cvPermutations(tc.words) {
				if got == string(rs[:tc.at])+p+string(rs[tc.at:]) {
					contiguous = true
				}
			}
			if !contiguous {
				t.Errorf("merged text %q interleaves the words %q", got, tc.words)
			}
			if got != tc.want {
				t.Errorf("merged text = %q, want %q", got, tc.want)
			}
		})
	}
}

// cvApplyAll applies updates to d in order.
func cvApplyAll(t *testing.T, d *crdt.Doc, ups ...[]byte) {
	t.Helper()
	for k, u := range ups {
		if err := d.ApplyUpdate(u); err != nil {
			t.Fatalf("update %d: %v", k, err)
		}
	}
}

// cvEdit runs f on d's root "t" and returns d's update.
func cvEdit(t *testing.T, d *crdt.Doc, f func(x *crdt.Text) error) []byte {
	t.Helper()
	if err := f(d.Text("t")); err != nil {
		t.Fatal(err)
	}
	return d.TakeUpdate()
}

func cvIns(pos int, s string) func(*crdt.Text) error {
	return func(x *crdt.Text) error { return x.Insert(pos, s) }
}

func cvDel(pos, n int) func(*crdt.Text) error {
	return func(x *crdt.Text) error { return x.Delete(pos, n) }
}

// TestRegressionScenarios ports divergence bugs of other CRDTs
// (RELIABILITY.md §2.3, C3) to this API. Each scenario returns replicas that
// have all seen the same ops, and checks the intermediate states it cares
// about; all must then equal want, and a reference fed the same updates.
func TestRegressionScenarios(t *testing.T) {
	newDocs := func(n int) []*crdt.Doc {
		out := make([]*crdt.Doc, n)
		for i := range out {
			out[i] = crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(i + 1)})
		}
		return out
	}
	tests := []struct {
		name string
		want string
		run  func(t *testing.T) ([]*crdt.Doc, [][]byte)
	}{
		{
			// y-octo#53: origins of an insert next to a tombstone must be
			// adjacent items. A inserts "a"; all sync. B appends "b". A
			// inserts "c" after "a" and deletes "a"; only C syncs with A. C
			// inserts "d" at 0 (before the tombstone "a"). Then everyone
			// cross-syncs in different orders.
			name: "y-octo#53 insert at 0 before a tombstone after partial sync",
			want: "dcb",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(3)
				ua := cvEdit(t, d[0], cvIns(0, "a"))
				cvApplyAll(t, d[1], ua)
				cvApplyAll(t, d[2], ua)
				ub := cvEdit(t, d[1], cvIns(1, "b"))
				uc := cvEdit(t, d[0], cvIns(1, "c"))
				ux := cvEdit(t, d[0], cvDel(0, 1))
				cvApplyAll(t, d[2], uc, ux)
				if got := d[2].Text("t").String(); got != "c" {
					t.Fatalf("C after partial sync = %q, want %q", got, "c")
				}
				ud := cvEdit(t, d[2], cvIns(0, "d"))
				cvApplyAll(t, d[0], ud, ub)
				cvApplyAll(t, d[1], uc, ud, ux) // d arrives before the delete of its right origin
				cvApplyAll(t, d[2], ub)
				return d, [][]byte{ua, ub, uc, ux, ud}
			},
		},
		{
			// ygo#111: C's right origin was inserted by B. Delivered A, C, B,
			// C must wait for B instead of being integrated early.
			name: "ygo#111 right origin arrives late",
			want: "acb",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(4)
				ua := cvEdit(t, d[0], cvIns(0, "a"))
				cvApplyAll(t, d[1], ua)
				ub := cvEdit(t, d[1], cvIns(1, "b")) // "ab"
				cvApplyAll(t, d[2], ua, ub)
				uc := cvEdit(t, d[2], cvIns(1, "c")) // between a and b: right origin b
				r := d[3]
				cvApplyAll(t, r, ua, uc)
				if got, pending := r.Text("t").String(), r.Pending(); got != "a" || pending == 0 {
					t.Fatalf("after A, C: text %q with %d pending, want %q with C pending", got, pending, "a")
				}
				cvApplyAll(t, r, ub)
				cvApplyAll(t, d[0], uc, ub)
				cvApplyAll(t, d[1], uc)
				return d, [][]byte{ua, ub, uc}
			},
		},
		{
			// ygo#111, left-origin variant: C is typed after B's "b".
			name: "ygo#111 left origin arrives late",
			want: "abc",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(4)
				ua := cvEdit(t, d[0], cvIns(0, "a"))
				cvApplyAll(t, d[1], ua)
				ub := cvEdit(t, d[1], cvIns(1, "b"))
				cvApplyAll(t, d[2], ua, ub)
				uc := cvEdit(t, d[2], cvIns(2, "c"))
				r := d[3]
				cvApplyAll(t, r, uc, ua)
				if got, pending := r.Text("t").String(), r.Pending(); got != "a" || pending == 0 {
					t.Fatalf("after C, A: text %q with %d pending, want %q with C pending", got, pending, "a")
				}
				cvApplyAll(t, r, ub)
				cvApplyAll(t, d[0], uc, ub)
				cvApplyAll(t, d[1], uc)
				return d, [][]byte{ua, ub, uc}
			},
		},
		{
			// ygo#158: A deletes the tail "c" of "abc" and appends "d"; B
			// concurrently appends "e" after the (for A deleted) "c".
			name: "ygo#158 append after a deleted tail",
			want: "abde",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(2)
				u0 := cvEdit(t, d[0], cvIns(0, "abc"))
				cvApplyAll(t, d[1], u0)
				u1 := cvEdit(t, d[0], cvDel(2, 1))
				u2 := cvEdit(t, d[0], cvIns(2, "d"))
				u3 := cvEdit(t, d[1], cvIns(3, "e"))
				cvApplyAll(t, d[0], u3)
				cvApplyAll(t, d[1], u2, u1) // insert before the delete it follows
				return d, [][]byte{u0, u1, u2, u3}
			},
		},
		{
			// Everything deleted, then typed again at 0 on both sides.
			name: "insert into a text of tombstones",
			want: "xy",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(2)
				u0 := cvEdit(t, d[0], cvIns(0, "abc"))
				cvApplyAll(t, d[1], u0)
				u1 := cvEdit(t, d[0], cvDel(0, 3))
				u2 := cvEdit(t, d[0], cvIns(0, "x"))
				u3 := cvEdit(t, d[1], cvDel(1, 2))
				u4 := cvEdit(t, d[1], cvIns(1, "y"))
				cvApplyAll(t, d[0], u3, u4)
				cvApplyAll(t, d[1], u2, u1)
				return d, [][]byte{u0, u1, u2, u3, u4}
			},
		},
		{
			// A delete that arrives before the insert it deletes waits.
			name: "delete before its insert",
			want: "xz",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(3)
				u0 := cvEdit(t, d[0], cvIns(0, "xyz"))
				cvApplyAll(t, d[1], u0)
				u1 := cvEdit(t, d[1], cvDel(1, 1)) // another agent deletes "y"
				r := d[2]
				cvApplyAll(t, r, u1)
				if got, pending, sv := r.Text("t").String(), r.Pending(), r.StateVector(); got != "" || pending == 0 || len(sv) != 0 {
					t.Fatalf("after the delete alone: text %q, %d pending, state vector %v; want empty, the delete pending", got, pending, sv)
				}
				cvApplyAll(t, r, u1) // a duplicate while it waits
				cvApplyAll(t, r, u0)
				cvApplyAll(t, d[0], u1)
				return d, [][]byte{u0, u1}
			},
		},
		{
			// Two users at one cursor: B (agent 1) inserts X right after A's
			// "hello"; A (agent 2, higher) sees it and goes on typing at its
			// cursor, between "hello" and X. A's new text must name X as its
			// right origin, or B orders it after X by agent id.
			name: "typing on at a cursor where a concurrent insert landed",
			want: "hello worldX",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(2)
				a, b := d[1], d[0]
				u0 := cvEdit(t, a, cvIns(0, "hello"))
				cvApplyAll(t, b, u0)
				u1 := cvEdit(t, b, cvIns(5, "X"))
				cvApplyAll(t, a, u1)
				u2 := cvEdit(t, a, cvIns(5, " world"))
				cvApplyAll(t, b, u2)
				return d, [][]byte{u0, u1, u2}
			},
		},
		{
			// The same agent's later op arrives first (seq gap), then a
			// duplicate of the earlier one overlapping a diff.
			name: "seq gap and overlapping diff",
			want: "hello world",
			run: func(t *testing.T) ([]*crdt.Doc, [][]byte) {
				d := newDocs(2)
				u0 := cvEdit(t, d[0], cvIns(0, "hello"))
				u1 := cvEdit(t, d[0], cvIns(5, " world"))
				cvApplyAll(t, d[1], u1)
				if d[1].Pending() == 0 || d[1].Text("t").String() != "" {
					t.Fatalf("later op of an agent applied before its earlier op: %q", d[1].Text("t").String())
				}
				cvApplyAll(t, d[1], d[0].EncodeDiff(nil), u0, u1)
				return d, [][]byte{u0, u1}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, ups := tc.run(t)
			cvConverged(t, tc.name, docs)
			if got := docs[0].Text("t").String(); got != tc.want {
				t.Errorf("text = %q, want %q", got, tc.want)
			}
			ref := newRefDoc()
			for _, u := range ups {
				if err := ref.apply(u); err != nil {
					t.Fatal(err)
				}
			}
			if got := ref.String("t"); got != tc.want {
				t.Errorf("reference text = %q, want %q", got, tc.want)
			}
		})
	}
}

// Regressions of convergence bugs these tests found in package crdt, fixed in
// bce7f6a.

// TestRegression_SnapshotDropsPendingOps: EncodeSnapshot leaves out the
// pending buffer, although a Doc includes it ("a pending buffer for ops that
// arrived before their causal dependencies") and EncodeSnapshot promises "the
// whole document state". A replica reloaded while an op waits silently loses
// that op: when the dependency arrives, the original applies the waiting delete
// and the reloaded replica does not, so the same later ops give different
// texts and state vectors (C6b, yorkie#1729). Only a later state-vector resync
// with a peer that still has the op repairs it; a server that acked the update,
// snapshotted and compacted its log has lost it. Fixed: snapshots keep
// pending ops.
func TestRegression_SnapshotDropsPendingOps(t *testing.T) {
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	if err := a.Text("t").Insert(0, "xyz"); err != nil {
		t.Fatal(err)
	}
	insert := a.TakeUpdate()
	b := crdt.NewDoc(crdt.Options{Agent: 2})
	if err := b.ApplyUpdate(insert); err != nil {
		t.Fatal(err)
	}
	if err := b.Text("t").Delete(1, 1); err != nil { // delete "y"
		t.Fatal(err)
	}
	del := b.TakeUpdate()

	orig := crdt.NewDoc(crdt.Options{Agent: 3})
	if err := orig.ApplyUpdate(del); err != nil { // before its insert: waits
		t.Fatal(err)
	}
	loaded, err := crdt.LoadSnapshot(orig.EncodeSnapshot(), crdt.Options{Agent: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loaded.Pending(), orig.Pending(); got != want {
		t.Errorf("LoadSnapshot(EncodeSnapshot()).Pending() = %d, want %d", got, want)
	}
	for _, d := range []*crdt.Doc{orig, loaded} {
		if err := d.ApplyUpdate(insert); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := loaded.Text("t").String(), orig.Text("t").String(); got != want {
		t.Errorf("after the insert arrives, reloaded replica has %q, want %q (the original's)", got, want)
	}
	if got, want := loaded.StateVector(), orig.StateVector(); !got.Equal(want) {
		t.Errorf("after the insert arrives, reloaded state vector = %v, want %v", got, want)
	}
}

// TestRegression_NonAdjacentOriginsDiverge: doc.go promises that replicas
// that applied the same ops have the same text "whatever the delivery order",
// and that input is treated as hostile. FugueMax (like YjsMod) converges only
// if an insert's origins were adjacent when it was made, and ApplyUpdate
// accepts inserts whose origins skip items their author had seen. Four
// well-formed updates then give two texts with equal state vectors, a
// divergence no state-vector resync repairs (the class of y-crdt#632): a buggy
// or malicious client can split every other replica from the server. The
// reference implementation gives the same two texts, so this is the
// algorithm's precondition, not a bug of the scan. Each case was minimized
// from a search over random crafted 2–5-op histories. Fixed for what a replica
// can prove: ApplyUpdate refuses an insert with an item of its known causal
// past between its origins (ErrInvalidOp). A forgery that skips an item known
// only transitively is the documented limit of that check (doc.go, trust
// model); its case is skipped and should pass once ops carry causal metadata.
func TestRegression_NonAdjacentOriginsDiverge(t *testing.T) {
	id := func(a crdt.AgentID, s uint64) crdt.ID { return crdt.ID{Agent: a, Seq: s} }
	tests := []struct {
		name   string
		ops    []cvOp
		orders [][]int
		limit  string // a documented limitation: skip, saying why
	}{
		{
			// c's author saw "ab" but names (none, b): a, an earlier op of
			// b's agent, lies between. Divergent: "adcb" vs "acbd".
			name: "skips an earlier op of the right origin's agent",
			ops: []cvOp{
				{id: id(1, 0), text: "a"},
				{id: id(1, 1), text: "b", left: id(1, 0)},
				{id: id(3, 0), text: "c", right: id(1, 1)},
				{id: id(2, 0), text: "d"}, // concurrent insert into the empty text
			},
			orders: [][]int{{0, 1, 2, 3}, {0, 1, 3, 2}},
		},
		{
			// Agent 1 typed b after a, then names (none, b) for e: a is the
			// left origin of its own earlier op b, so its author had it, but
			// a is another agent's. Divergent: "aebd" vs "adeb".
			name: "skips the left origin of the author's own earlier op",
			ops: []cvOp{
				{id: id(2, 0), text: "a"},
				{id: id(1, 0), text: "b", left: id(2, 0)},
				{id: id(3, 0), text: "d"}, // concurrent insert into the empty text
				{id: id(1, 1), text: "e", right: id(1, 0)},
			},
			orders: [][]int{{0, 1, 2, 3}, {0, 1, 3, 2}},
			limit:  "doc.go trust model: a skipped item known only transitively is not detected",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.limit != "" {
				t.Skip(tc.limit)
			}
			ups := make([][]byte, len(tc.ops))
			for i, o := range tc.ops {
				ups[i] = cvEncode(t, []cvOp{o})
			}
			var docs []*crdt.Doc
			for _, order := range tc.orders {
				d := crdt.NewDoc(crdt.Options{Agent: 9})
				for _, k := range order {
					if err := d.ApplyUpdate(ups[k]); err != nil && !errors.Is(err, crdt.ErrInvalidOp) {
						t.Fatalf("order %v, update %d: %v", order, k, err)
					}
				}
				t.Logf("order %v: %q, state vector %v", order, d.Text("t").String(), d.StateVector())
				docs = append(docs, d)
			}
			for i := 1; i < len(docs); i++ {
				x, y := docs[0].Text("t").String(), docs[i].Text("t").String()
				if x != y || !docs[0].StateVector().Equal(docs[i].StateVector()) {
					t.Errorf("same updates, orders %v and %v: %q != %q (state vectors %v, %v)", tc.orders[0], tc.orders[i], x, y, docs[0].StateVector(), docs[i].StateVector())
				}
			}
		})
	}
}
