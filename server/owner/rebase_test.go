package owner

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/collabd/collabd/crdt"
)

func applyPrims(t *testing.T, s []rune, ps []Prim) []rune {
	t.Helper()
	for _, p := range ps {
		if p.Ins != "" {
			if p.Pos < 0 || p.Pos > len(s) {
				t.Fatalf("insert at %d in %d", p.Pos, len(s))
			}
			s = slices.Insert(s, p.Pos, []rune(p.Ins)...)
		} else {
			if p.Pos < 0 || p.Pos+p.N > len(s) {
				t.Fatalf("delete %d at %d in %d", p.N, p.Pos, len(s))
			}
			s = slices.Delete(s, p.Pos, p.Pos+p.N)
		}
	}
	return s
}

func TestRebaseExamples(t *testing.T) {
	base := "hello world"
	cases := []struct {
		name           string
		edits, changes []Splice
		want           string
	}{
		{"insert after a concurrent insert before it", []Splice{{6, 0, "big "}}, []Splice{{0, 0, ">> "}}, ">> hello big world"},
		{"same position: the change first", []Splice{{5, 0, "A"}}, []Splice{{5, 0, "B"}}, "helloBA world"},
		{"delete around a concurrent insert", []Splice{{0, 11, ""}}, []Splice{{5, 0, "X"}}, "X"},
		{"delete overlapping a concurrent delete", []Splice{{3, 5, ""}}, []Splice{{0, 5, ""}}, "rld"},
		{"replace a word deleted concurrently", []Splice{{6, 5, "there"}}, []Splice{{5, 6, ""}}, "hellothere"},
		{"sequential edits", []Splice{{0, 1, "J"}, {11, 0, "!"}}, []Splice{{5, 0, ","}}, "Jello, world!"},
	}
	for _, c := range cases {
		got := applyPrims(t, applyPrims(t, []rune(base), Prims(c.changes)), rebase(c.edits, c.changes))
		if string(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, string(got), c.want)
		}
	}
}

// Rebasing agrees with the CRDT: edits made on a replica at version V and
// merged with concurrent changes give the same text as rebasing the edits'
// positions over the changes, whenever the CRDT's order of concurrent
// insertions at one place puts the server's text first — so this checks
// the invariants that hold whatever the order: every character inserted by
// either side is there once, and none deleted by either side is.
func TestRebaseProperty(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 3))
		base := []rune(strings.Repeat("abcdefghij", 1+rng.IntN(3)))
		// Mark every character with an id so presence can be checked.
		edits := randomSplices(rng, len(base), "E")
		changes := randomSplices(rng, len(base), "C")
		got := applyPrims(t, applyPrims(t, slices.Clone(base), Prims(changes)), rebase(edits, changes))
		// Same result through the CRDT (which never interleaves or loses).
		d := crdt.NewDoc(crdt.Options{Agent: 1})
		_ = d.Text("t").Insert(0, string(base))
		server := crdt.NewDoc(crdt.Options{Agent: 2})
		_ = server.ApplyUpdate(d.TakeUpdate())
		for _, s := range edits {
			_ = d.Text("t").Delete(s.Pos, s.Del)
			_ = d.Text("t").Insert(s.Pos, s.Ins)
		}
		for _, s := range changes {
			_ = server.Text("t").Delete(s.Pos, s.Del)
			_ = server.Text("t").Insert(s.Pos, s.Ins)
		}
		_ = server.ApplyUpdate(d.TakeUpdate())
		want := server.Text("t").String()
		if !sameMultiset(string(got), want) {
			t.Fatalf("seed %d: rebased %q, CRDT merge %q (edits %v, changes %v)", seed, string(got), want, edits, changes)
		}
	}
}

func randomSplices(rng *rand.Rand, n int, tag string) []Splice {
	var out []Splice
	for i := range 1 + rng.IntN(4) {
		pos := rng.IntN(n + 1)
		del := 0
		if pos < n && rng.IntN(2) == 0 {
			del = 1 + rng.IntN(min(4, n-pos))
		}
		ins := ""
		if rng.IntN(3) > 0 {
			ins = fmt.Sprintf("%s%d", tag, i)
		}
		out = append(out, Splice{Pos: pos, Del: del, Ins: ins})
		n = n - del + len([]rune(ins))
	}
	return out
}

func sameMultiset(a, b string) bool {
	x, y := []rune(a), []rune(b)
	slices.Sort(x)
	slices.Sort(y)
	return string(x) == string(y)
}
