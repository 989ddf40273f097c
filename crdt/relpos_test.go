package crdt_test

import (
	"testing"

	"github.com/collabd/collabd/crdt"
)

func sync2(t *testing.T, a, b *crdt.Doc) {
	t.Helper()
	if err := b.ApplyUpdate(a.EncodeDiff(b.StateVector())); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyUpdate(b.EncodeDiff(a.StateVector())); err != nil {
		t.Fatal(err)
	}
}

func TestRelPosSurvivesConcurrentEdits(t *testing.T) {
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	b := crdt.NewDoc(crdt.Options{Agent: 2})
	if err := a.Text("t").Insert(0, "the quick brown fox"); err != nil {
		t.Fatal(err)
	}
	sync2(t, a, b)
	// a's cursor sits before "brown" (index 10), sticking to the 'b'.
	cur, err := a.Text("t").RelPos(10, crdt.AssocAfter)
	if err != nil {
		t.Fatal(err)
	}
	// A second position sits after "quick" (index 9), sticking to the 'k'.
	sel, err := a.Text("t").RelPos(9, crdt.AssocBefore)
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent edits before the cursor on both replicas.
	if err := b.Text("t").Insert(0, "oh, "); err != nil {
		t.Fatal(err)
	}
	if err := a.Text("t").Delete(4, 6); err != nil { // "quick "
		t.Fatal(err)
	}
	if err := a.Text("t").Insert(4, "slow "); err != nil {
		t.Fatal(err)
	}
	sync2(t, a, b)
	want := "oh, the slow brown fox"
	for _, d := range []*crdt.Doc{a, b} {
		x := d.Text("t")
		if got := x.String(); got != want {
			t.Fatalf("text %q, want %q", got, want)
		}
		// The cursor is a wire value: encode and decode it as a peer would.
		p, err := crdt.DecodeRelPos(crdt.EncodeRelPos(cur))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := x.Resolve(p)
		if !ok || got != 13 || []rune(x.String())[got] != 'b' {
			t.Errorf("cursor resolves to %d (%v), want 13 before 'b'", got, ok)
		}
		// The item the second position stuck to ("k" of quick) was deleted:
		// it resolves to where the deleted text was. "slow " was typed at the
		// same place after the deletion and sits before the tombstones.
		got, ok = x.Resolve(sel)
		if !ok || got != 13 {
			t.Errorf("position after a deleted item resolves to %d (%v), want 13", got, ok)
		}
	}
}

func TestRelPosEnds(t *testing.T) {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	x := d.Text("t")
	_ = x.Insert(0, "abc")
	end, _ := x.RelPos(3, crdt.AssocAfter)
	start, _ := x.RelPos(0, crdt.AssocBefore)
	_ = x.Insert(3, "de")
	_ = x.Insert(0, "z")
	tests := []struct {
		name string
		p    crdt.RelPos
		want int
	}{
		{"end follows appended text", end, 6},
		{"start stays at the start", start, 0},
	}
	for _, tc := range tests {
		if got, ok := x.Resolve(tc.p); !ok || got != tc.want {
			t.Errorf("%s: got %d (%v), want %d", tc.name, got, ok, tc.want)
		}
	}
	if _, err := x.RelPos(7, crdt.AssocAfter); err == nil {
		t.Error("RelPos past the end: no error")
	}
	if _, ok := x.Resolve(crdt.RelPos{Item: crdt.ID{Agent: 99, Seq: 1}}); ok {
		t.Error("position of an unknown item resolved")
	}
}

func TestRelPosStableUnderRemoteTyping(t *testing.T) {
	// A cursor placed with a relative position stays on the same character
	// while another replica inserts and deletes before it, many times.
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	b := crdt.NewDoc(crdt.Options{Agent: 2})
	_ = a.Text("t").Insert(0, "0123456789")
	sync2(t, a, b)
	p, _ := a.Text("t").RelPos(7, crdt.AssocAfter) // before '7'
	for i := 0; i < 50; i++ {
		_ = b.Text("t").Insert(i%5, "xy")
		_ = b.Text("t").Delete((i*3)%4, 1)
		if err := a.ApplyUpdate(b.TakeUpdate()); err != nil {
			t.Fatal(err)
		}
		x := a.Text("t")
		pos, ok := x.Resolve(p)
		if !ok || []rune(x.String())[pos] != '7' {
			t.Fatalf("step %d: cursor at %d (%v) in %q, want before '7'", i, pos, ok, x.String())
		}
	}
}
