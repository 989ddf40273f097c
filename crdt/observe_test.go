package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// shadow applies observed changes to plain rune slices, one per root.
type shadow map[string][]rune

func (s shadow) apply(t *testing.T, c Change) {
	t.Helper()
	r := s[c.Root]
	if c.Pos < 0 || c.Pos+c.Del > len(r) || (c.Del > 0) == (c.Ins != "") {
		t.Fatalf("bad change %+v on a text of %d", c, len(r))
	}
	r = slices.Delete(r, c.Pos, c.Pos+c.Del)
	s[c.Root] = slices.Insert(r, c.Pos, []rune(c.Ins)...)
}

// Random concurrent editing on three replicas, updates delivered in random
// order with duplicates and missing dependencies: the changes one observed
// replica reports, applied in order to a plain copy, always give its text.
func TestObserveMatchesText(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			reps := []*Doc{NewDoc(Options{Agent: 1}), NewDoc(Options{Agent: 2}), NewDoc(Options{Agent: 3})}
			obs := reps[0]
			sh := shadow{}
			obs.Observe(func(c Change) { sh.apply(t, c) })
			check := func(when string) {
				t.Helper()
				for _, name := range obs.Roots() {
					if got, want := string(sh[name]), obs.Text(name).String(); got != want {
						t.Fatalf("%s: root %q: changes give %q, text is %q", when, name, got, want)
					}
				}
			}
			var outbox [][]byte
			for step := range 300 {
				d := reps[rng.IntN(len(reps))]
				root := []string{"a", "b"}[rng.IntN(2)]
				x := d.Text(root)
				if x.Len() > 0 && rng.IntN(3) == 0 {
					p := rng.IntN(x.Len())
					_ = x.Delete(p, 1+rng.IntN(min(5, x.Len()-p)))
				} else {
					s := []string{"x", "héllo", "😀", "ab", "🎉z"}[rng.IntN(5)]
					_ = x.Insert(rng.IntN(x.Len()+1), s)
				}
				outbox = append(outbox, d.TakeUpdate())
				check(fmt.Sprintf("local step %d", step))
				// Deliver a few random updates (possibly duplicates, out of order).
				for range rng.IntN(3) {
					u := outbox[rng.IntN(len(outbox))]
					for _, r := range reps {
						if err := r.ApplyUpdate(u); err != nil {
							t.Fatal(err)
						}
					}
					check(fmt.Sprintf("remote step %d", step))
				}
			}
			for _, u := range outbox {
				_ = obs.ApplyUpdate(u)
			}
			check("end")
		})
	}
}

// Observe(nil) stops; a snapshot load gives no changes.
func TestObserveStopAndSnapshot(t *testing.T) {
	d := NewDoc(Options{Agent: 1})
	n := 0
	d.Observe(func(Change) { n++ })
	_ = d.Text("t").Insert(0, "ab")
	d.Observe(nil)
	_ = d.Text("t").Insert(0, "c")
	if n != 1 {
		t.Fatalf("%d changes, want 1", n)
	}
	if _, err := LoadSnapshot(d.EncodeSnapshot(), Options{}); err != nil {
		t.Fatal(err)
	}
}
