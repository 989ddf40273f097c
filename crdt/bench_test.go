package crdt_test

import (
	"math/rand/v2"
	"testing"

	"github.com/collabd/collabd/crdt"
)

// BenchmarkTypeForward is a user typing at the end: allocations per edit must
// be O(1) amortised (runs grow in place).
func BenchmarkTypeForward(b *testing.B) {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	x := d.Text("t")
	for b.Loop() {
		if err := x.Insert(x.Len(), "a"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEditRandom inserts and deletes at random positions of a text that
// grows to about 100k code points.
func BenchmarkEditRandom(b *testing.B) {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	x := d.Text("t")
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if x.Len() > 10 && rng.IntN(3) == 0 {
			_ = x.Delete(rng.IntN(x.Len()-1), 1)
		} else {
			_ = x.Insert(rng.IntN(x.Len()+1), "é")
		}
	}
}

// BenchmarkApplyTyping applies one-character updates from another replica.
func BenchmarkApplyTyping(b *testing.B) {
	src := crdt.NewDoc(crdt.Options{Agent: 1})
	ups := make([][]byte, 4096)
	for i := range ups {
		_ = src.Text("t").Insert(i, "x")
		ups[i] = src.TakeUpdate()
	}
	b.ResetTimer()
	var d *crdt.Doc
	for i := 0; b.Loop(); i++ {
		if i%len(ups) == 0 {
			d = crdt.NewDoc(crdt.Options{Agent: 2})
		}
		if err := d.ApplyUpdate(ups[i%len(ups)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyColdJoin: a fresh replica applies the whole history of a
// 100,000-character text typed at random positions as one update (what a
// cold join receives). It was quadratic once (the update's overlay index
// was rebuilt on every lookup: 4m46s); now it is linear.
//
//	go test -run='^$' -bench=ApplyColdJoin -benchmem ./crdt
func BenchmarkApplyColdJoin(b *testing.B) {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	x := d.Text("body")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		_ = x.Insert(rng.IntN(x.Len()+1), "a")
	}
	u := d.EncodeDiff(nil)
	b.SetBytes(int64(len(u)))
	for b.Loop() {
		e := crdt.NewDoc(crdt.Options{Agent: 2})
		if err := e.ApplyUpdate(u); err != nil {
			b.Fatal(err)
		}
	}
}
