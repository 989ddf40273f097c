package crdt_test

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/mp"
)

// docState is what a reload must keep: the text of every root and the state
// vector. Reading it creates no root.
type docState struct {
	texts map[string]string
	sv    crdt.StateVector
}

func stateOf(d *crdt.Doc) docState {
	s := docState{texts: map[string]string{}, sv: d.StateVector()}
	for _, name := range d.Roots() {
		if txt := d.Text(name).String(); txt != "" {
			s.texts[name] = txt
		}
	}
	return s
}

func (s docState) equal(o docState) bool {
	return maps.Equal(s.texts, o.texts) && s.sv.Equal(o.sv)
}

// TestAcceptedAlwaysReloads is the invariant "anything acked can be
// reloaded" (issue 11 item 2) for package crdt: under small random Limits, a
// document takes random local edits (many roots, long root names, positions
// out of range) and remote updates (delivered out of order, so some wait in
// the pending buffer); whatever it accepts, its snapshot loads under the same
// Limits with the same texts and state vector, and SizeBound never
// underestimates the snapshot body. Whatever it refuses leaves it unchanged.
func TestAcceptedAlwaysReloads(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Sampled rather than ranged: rapid favours small values, and most
		// runs would then stop at the first limit.
		lim := crdt.Limits{
			MaxRoots:    rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "MaxRoots"),
			MaxRootName: rapid.SampledFrom([]int{1, 5, 12, 24}).Draw(t, "MaxRootName"),
			MaxAgents:   rapid.SampledFrom([]int{1, 2, 3, 6}).Draw(t, "MaxAgents"),
			MaxPending:  rapid.SampledFrom([]int{1, 3, 16}).Draw(t, "MaxPending"),
			MaxItems:    rapid.SampledFrom([]int{8, 100, 2000}).Draw(t, "MaxItems"),
			MaxSnapshot: rapid.SampledFrom([]int{64, 512, 4096, 1 << 16}).Draw(t, "MaxSnapshot"),
			MaxOps:      rapid.SampledFrom([]int{1, 4, 64}).Draw(t, "MaxOps"),
		}
		roots := []string{"t", "notes", "ü", "a-very-long-root-name", strings.Repeat("r", 12), "x", "y", "z"}
		agent := crdt.AgentID(1000)
		d := crdt.NewDoc(crdt.Options{Agent: agent, Limits: lim})
		peers := make([]*crdt.Doc, rapid.IntRange(1, 5).Draw(t, "peers"))
		outbox := make([][][]byte, len(peers))
		for i := range peers {
			peers[i] = crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(i + 1)})
		}
		accepted := 0
		reload := func(label string) {
			bound := d.SizeBound()
			snap := d.EncodeSnapshot()
			if body := bodyLen(t, snap); body > bound {
				t.Fatalf("%s: SizeBound %d underestimated the snapshot body of %d bytes", label, bound, body)
			}
			if d.SizeBound() > lim.MaxSnapshot {
				t.Fatalf("%s: SizeBound %d after encoding exceeds MaxSnapshot %d", label, d.SizeBound(), lim.MaxSnapshot)
			}
			want := stateOf(d)
			agent++
			re, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: agent, Limits: lim})
			if err != nil {
				t.Fatalf("%s: after %d accepted writes the snapshot does not load: %v", label, accepted, err)
			}
			if got := stateOf(re); !got.equal(want) {
				t.Fatalf("%s: reloaded %v %v, want %v %v", label, got.texts, got.sv, want.texts, want.sv)
			}
			if re.Pending() != d.Pending() {
				t.Fatalf("%s: reloaded with %d pending ops, want %d", label, re.Pending(), d.Pending())
			}
			d = re
		}
		steps := rapid.IntRange(1, 150).Draw(t, "steps")
		for range steps {
			before := stateOf(d)
			var err error
			switch rapid.IntRange(0, 5).Draw(t, "step") {
			case 0, 1: // local edit
				x := d.Text(rapid.SampledFrom(roots).Draw(t, "root"))
				pos := rapid.IntRange(0, x.Len()).Draw(t, "pos")
				if rapid.IntRange(0, 9).Draw(t, "out of range") == 0 {
					pos = rapid.SampledFrom([]int{-1, x.Len() + 1, math.MaxInt, math.MinInt}).Draw(t, "bad pos")
				}
				if rapid.Bool().Draw(t, "insert") {
					err = x.Insert(pos, strings.Repeat(rapid.SampledFrom(cvPieces).Draw(t, "piece"), rapid.IntRange(1, 20).Draw(t, "reps")))
				} else {
					n := rapid.IntRange(0, 5).Draw(t, "n")
					if rapid.IntRange(0, 9).Draw(t, "bad n") == 0 {
						n = rapid.SampledFrom([]int{-1, math.MaxInt, math.MinInt}).Draw(t, "huge n")
					}
					err = x.Delete(pos, n)
				}
				_ = d.TakeUpdate()
			case 2: // a peer edits
				i := rapid.IntRange(0, len(peers)-1).Draw(t, "peer")
				x := peers[i].Text(rapid.SampledFrom(roots).Draw(t, "peer root"))
				if x.Len() > 0 && rapid.Bool().Draw(t, "peer deletes") {
					p := rapid.IntRange(0, x.Len()-1).Draw(t, "peer pos")
					_ = x.Delete(p, rapid.IntRange(1, x.Len()-p).Draw(t, "peer n"))
				} else {
					_ = x.Insert(rapid.IntRange(0, x.Len()).Draw(t, "peer pos"), strings.Repeat("p", rapid.IntRange(1, 10).Draw(t, "peer n")))
				}
				outbox[i] = append(outbox[i], peers[i].TakeUpdate())
				continue
			case 3, 4: // deliver one update of a peer, in any order
				i := rapid.IntRange(0, len(peers)-1).Draw(t, "from")
				if len(outbox[i]) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(outbox[i])-1).Draw(t, "which")
				err = d.ApplyUpdate(outbox[i][k])
				if err == nil || rapid.Bool().Draw(t, "drop refused") {
					outbox[i] = slices.Delete(outbox[i], k, k+1)
				}
			case 5:
				reload("reload")
				continue
			}
			if err != nil {
				if got := stateOf(d); !got.equal(before) {
					t.Fatalf("a refused write (%v) changed the document", err)
				}
				continue
			}
			accepted++
		}
		reload("final")
	})
}

// bodyLen is the uncompressed body length a snapshot's header declares
// (docs/FORMATS.md: [1, compression, body_len, body]).
func bodyLen(t cvT, snap []byte) int {
	r := mp.NewReader(snap)
	n, err := r.ArrayLen()
	if err != nil || n != 4 {
		t.Fatalf("snapshot header: %d elements, %v", n, err)
	}
	_, _ = r.Uint() // version
	_, _ = r.Uint() // compression
	v, err := r.Uint()
	if err != nil {
		t.Fatalf("snapshot header: %v", err)
	}
	return int(v)
}
