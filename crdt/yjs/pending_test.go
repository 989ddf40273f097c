package yjs

import (
	"bytes"
	"errors"
	"testing"
)

func goldenByName(t *testing.T, name string) goldenCase {
	t.Helper()
	for _, g := range readGolden(t) {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no golden %q", name)
	return goldenCase{}
}

// Updates delivered newest first wait in the pending buffer until their
// dependencies arrive; the document ends equal to Yjs's, and while
// something is pending EncodeState carries it (as Yjs's encodeStateAsUpdate
// merges pendingStructs back in).
func TestPendingReverseOrder(t *testing.T) {
	g := goldenByName(t, "concurrent-three")
	d := New(Limits{})
	sawPending := false
	for i := len(g.Updates) - 1; i >= 0; i-- {
		res, err := d.Apply(b64(t, g.Updates[i]))
		if err != nil {
			t.Fatal(err)
		}
		if res.Pending > 0 || res.PendingDeletes > 0 {
			sawPending = true
			// the state with pending structs loads elsewhere and converges there too
			d2, err := Load(d.EncodeState(), Limits{})
			if err != nil {
				t.Fatalf("EncodeState with pending: %v", err)
			}
			if d.Stats().Pending > 0 && d2.Stats().Pending == 0 {
				t.Errorf("reloaded doc has nothing pending")
			}
			for _, u := range g.Updates {
				if _, err := d2.Apply(b64(t, u)); err != nil {
					t.Fatal(err)
				}
			}
			checkAgainst(t, "reloaded pending", d2, &g.oracleCase)
		}
	}
	if !sawPending {
		t.Fatal("reverse delivery never left anything pending")
	}
	if s := d.Stats(); s.Pending != 0 || s.PendingDeletes != 0 {
		t.Fatalf("pending left: %+v", s)
	}
	checkAgainst(t, "reverse", d, &g.oracleCase)
	if got, want := d.EncodeState(), b64(t, g.State); !bytes.Equal(got, want) {
		t.Errorf("EncodeState differs from Yjs's")
	}
}

// A full pending buffer rejects the update whole.
func TestPendingFull(t *testing.T) {
	g := goldenByName(t, "concurrent-three")
	d := New(Limits{MaxPendingStructs: 1})
	last := b64(t, g.Updates[len(g.Updates)-1])
	_, err := d.Apply(last)
	if err == nil {
		// the last update may fit; then the one before must not
		_, err = d.Apply(b64(t, g.Updates[len(g.Updates)-2]))
	}
	if !errors.Is(err, ErrPendingFull) {
		t.Fatalf("err = %v, want ErrPendingFull", err)
	}
}

func TestLimits(t *testing.T) {
	g := goldenByName(t, "text-format-embed")
	state := b64(t, g.State)
	for _, tc := range []struct {
		name string
		lim  Limits
	}{
		{"update bytes", Limits{MaxUpdateBytes: len(state) - 1}},
		{"doc bytes", Limits{MaxDocBytes: 64}},
		{"structs", Limits{MaxStructs: 2}},
		{"string bytes", Limits{MaxStringBytes: 2}},
	} {
		d := New(tc.lim)
		_, err := d.Apply(state)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", tc.name, err)
		}
		if got := d.EncodeState(); !bytes.Equal(got, []byte{0, 0}) {
			t.Errorf("%s: rejected update changed the doc", tc.name)
		}
	}
}

// Applying the same updates again changes nothing.
func TestIdempotent(t *testing.T) {
	g := goldenByName(t, "xml-prosemirror")
	d := New(Limits{})
	for _, u := range g.Updates {
		if _, err := d.Apply(b64(t, u)); err != nil {
			t.Fatal(err)
		}
	}
	before := d.EncodeState()
	for _, u := range append(g.Updates, g.State) {
		res, err := d.Apply(b64(t, u))
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || res.Integrated != 0 {
			t.Errorf("re-applying changed the doc: %+v", res)
		}
	}
	if !bytes.Equal(before, d.EncodeState()) {
		t.Error("state changed")
	}
}

// Hostile nesting: 200,000 maps each inside the previous one, then the
// outermost deleted. Deletion and garbage collection must not recurse, and
// views stop at MaxDepth.
func TestDeepNesting(t *testing.T) {
	const n = 200000
	e := &encoder{}
	e.varUint(1) // one client
	e.varUint(n) // structs
	e.varUint(1) // client 1
	e.varUint(0) // clock
	for i := 0; i < n; i++ {
		e.uint8(refType | 0x20) // no origins, parentSub
		if i == 0 {
			e.varUint(1)
			e.varString("m")
		} else {
			e.varUint(0)
			e.varUint(1)
			e.varUint(uint64(i - 1))
		}
		e.varString("k")
		e.varUint(typeRefMap)
	}
	e.varUint(0) // no deletes
	d := New(Limits{})
	if _, err := d.Apply(e.b); err != nil {
		t.Fatal(err)
	}
	if got := d.JSON("m", TypeMap); len(got) == 0 {
		t.Fatal("no view")
	}
	del := &encoder{}
	del.varUint(0)
	del.varUint(1)
	del.varUint(1)
	del.varUint(1)
	del.varUint(0)
	del.varUint(1)
	if _, err := d.Apply(del.b); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON("m", TypeMap)); got != "{}" {
		t.Fatalf("JSON after delete = %.80s", got)
	}
	if s := d.Stats(); s.Structs > 2 {
		t.Errorf("structs after GC = %d, want the deleted map and one GC run", s.Structs)
	}
}
