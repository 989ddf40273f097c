package crdt_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/collabd/collabd/crdt"
)

// TestEncodeOpsRoundTrip checks that EncodeOps inverts DecodeUpdate: the bytes
// of every update the seed documents produce come back identical, and a
// document that applies the re-encoded update equals one that applies the
// original.
func TestEncodeOpsRoundTrip(t *testing.T) {
	a, ups := seedDoc(t)
	ups = append(ups, a.EncodeDiff(nil), a.EncodeDiff(crdt.StateVector{1: 3}), crdt.NewDoc(crdt.Options{}).EncodeDiff(nil))
	for i, u := range ups {
		ops, err := crdt.DecodeUpdate(u, crdt.Limits{})
		if err != nil {
			t.Fatalf("update %d: DecodeUpdate: %v", i, err)
		}
		got, err := crdt.EncodeOps(ops)
		if err != nil {
			t.Fatalf("update %d: EncodeOps: %v", i, err)
		}
		if !bytes.Equal(got, u) {
			t.Errorf("update %d: EncodeOps(DecodeUpdate(u)) = %x, want %x", i, got, u)
		}
		again, err := crdt.DecodeUpdate(got, crdt.Limits{})
		if err != nil {
			t.Fatalf("update %d: DecodeUpdate(EncodeOps): %v", i, err)
		}
		if len(ops) > 0 && !reflect.DeepEqual(again, ops) {
			t.Errorf("update %d: ops after round trip = %+v, want %+v", i, again, ops)
		}
	}
	whole := a.EncodeDiff(nil)
	ops, _ := crdt.DecodeUpdate(whole, crdt.Limits{})
	re, _ := crdt.EncodeOps(ops)
	x, y := crdt.NewDoc(crdt.Options{}), crdt.NewDoc(crdt.Options{})
	if err := x.ApplyUpdate(whole); err != nil {
		t.Fatal(err)
	}
	if err := y.ApplyUpdate(re); err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Roots() {
		if got, want := y.Text(r).String(), x.Text(r).String(); got != want {
			t.Errorf("root %q after re-encoded update = %q, want %q", r, got, want)
		}
	}
	if !y.StateVector().Equal(x.StateVector()) {
		t.Errorf("state vector = %v, want %v", y.StateVector(), x.StateVector())
	}
}

// TestEncodeOpsSubsequence checks that any prefix split of an update's ops
// encodes to updates that, applied in order, rebuild the document.
func TestEncodeOpsSubsequence(t *testing.T) {
	a, _ := seedDoc(t)
	ops, err := crdt.DecodeUpdate(a.EncodeDiff(nil), crdt.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut <= len(ops); cut++ {
		d := crdt.NewDoc(crdt.Options{})
		for _, part := range [][]crdt.Op{ops[:cut], ops[cut:]} {
			u, err := crdt.EncodeOps(part)
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			if err := d.ApplyUpdate(u); err != nil {
				t.Fatalf("cut %d: ApplyUpdate: %v", cut, err)
			}
		}
		if d.Pending() != 0 || !d.StateVector().Equal(a.StateVector()) {
			t.Errorf("cut %d: state vector %v (pending %d), want %v", cut, d.StateVector(), d.Pending(), a.StateVector())
		}
		for _, r := range a.Roots() {
			if got, want := d.Text(r).String(), a.Text(r).String(); got != want {
				t.Errorf("cut %d: root %q = %q, want %q", cut, r, got, want)
			}
		}
	}
}

func TestEncodeOpsRejects(t *testing.T) {
	ins := crdt.Op{Kind: crdt.OpInsert, Root: "t", ID: crdt.ID{Agent: 1}, Len: 2, Text: "hé"}
	del := crdt.Op{Kind: crdt.OpDelete, Root: "t", ID: crdt.ID{Agent: 1, Seq: 2}, Len: 1, Target: crdt.ID{Agent: 1}}
	if _, err := crdt.EncodeOps([]crdt.Op{ins, del}); err != nil {
		t.Fatalf("EncodeOps(valid) = %v", err)
	}
	edit := func(o crdt.Op, f func(*crdt.Op)) crdt.Op { f(&o); return o }
	for name, o := range map[string]crdt.Op{
		"zero kind":          edit(ins, func(o *crdt.Op) { o.Kind = 0 }),
		"zero agent":         edit(ins, func(o *crdt.Op) { o.ID.Agent = 0 }),
		"zero length":        edit(del, func(o *crdt.Op) { o.Len = 0 }),
		"len is not runes":   edit(ins, func(o *crdt.Op) { o.Len = 3 }),
		"text not UTF-8":     edit(ins, func(o *crdt.Op) { o.Text = "h\xff" }),
		"tombstone w/ text":  edit(ins, func(o *crdt.Op) { o.Tombstone = true }),
		"none origin w/ seq": edit(ins, func(o *crdt.Op) { o.Left = crdt.ID{Seq: 4} }),
		"delete no target":   edit(del, func(o *crdt.Op) { o.Target = crdt.ID{} }),
		"seq overflow":       edit(del, func(o *crdt.Op) { o.ID.Seq = 1<<32 - 1 }),
		"root not UTF-8":     edit(del, func(o *crdt.Op) { o.Root = "\xc3" }),
	} {
		if got, err := crdt.EncodeOps([]crdt.Op{o}); err == nil {
			t.Errorf("%s: EncodeOps = %x, nil; want an error", name, got)
		}
	}
}
