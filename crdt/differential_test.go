package crdt_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/collabd/collabd/crdt"
)

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
