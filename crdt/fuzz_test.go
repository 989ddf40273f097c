package crdt_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
)

// fuzzLimits are the limits a server would configure for small documents;
// with them every decoder must allocate in proportion to its input.
var fuzzLimits = crdt.Limits{MaxItems: 1 << 16, MaxSnapshot: 1 << 18, MaxPending: 256, MaxOps: 1 << 14}

// killers are length-prefix bombs and deep nesting that make naive msgpack
// decoders allocate gigabytes or overflow the stack (docs/SECURITY.md).
func killers() [][]byte {
	return [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},             // array32 of 2^32-1
		{0xdc, 0xff, 0xff},                         // array16 of 65535
		{0xc6, 0xff, 0xff, 0xff, 0xff},             // bin32 of 4 GiB
		{0xdb, 0xff, 0xff, 0xff, 0xff},             // str32 of 4 GiB
		{0xdf, 0xff, 0xff, 0xff, 0xff},             // map32 of 2^32-1
		{0x94, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, // valid header, bomb inside
		{0x93, 0x01, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff},
		{0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xfe},
		bytes.Repeat([]byte{0x91}, 1<<20), // 1M nested one-element arrays
	}
}

// seedDoc makes a document with some history: two agents, inserts, deletes,
// a multi-byte character and a backspace run.
func seedDoc(tb testing.TB) (*crdt.Doc, [][]byte) {
	tb.Helper()
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	b := crdt.NewDoc(crdt.Options{Agent: 2})
	var ups [][]byte
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(a.Text("t").Insert(0, "hello wörld 🎉"))
	ups = append(ups, a.TakeUpdate())
	must(b.ApplyUpdate(ups[0]))
	must(b.Text("t").Insert(5, ","))
	must(b.Text("t").Delete(0, 1))
	ups = append(ups, b.TakeUpdate())
	for i := 0; i < 3; i++ {
		must(a.Text("t").Delete(a.Text("t").Len()-1, 1))
	}
	must(a.Text("notes").Insert(0, "x"))
	ups = append(ups, a.TakeUpdate())
	must(a.ApplyUpdate(ups[1]))
	return a, ups
}

// checkAlloc fails if f allocates more than 64 bytes per input byte plus 1 MiB.
func checkAlloc(t *testing.T, in []byte, what string, f func()) {
	t.Helper()
	// MemStats and the clock are process-wide: the fuzzing engine's own
	// goroutines and a loaded machine can add to one measurement. f is
	// deterministic, so a real excess shows in every attempt: fail only if
	// three attempts all exceed.
	limit := uint64(64*len(in) + 1<<20)
	var got uint64
	var took time.Duration
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		f()
		took = time.Since(start)
		runtime.ReadMemStats(&after)
		if got = after.TotalAlloc - before.TotalAlloc; got <= limit && took <= 2*time.Second {
			return
		}
	}
	if got > limit {
		t.Fatalf("%s of %d bytes allocated %d bytes (limit %d)", what, len(in), got, limit)
	}
	t.Fatalf("%s of %d bytes took %v", what, len(in), took)
}

func FuzzDecodeUpdate(f *testing.F) {
	_, ups := seedDoc(f)
	for _, u := range ups {
		f.Add(u)
	}
	for _, k := range killers() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, "DecodeUpdate", func() {
			ops, err := crdt.DecodeUpdate(in, fuzzLimits)
			if err == nil && len(ops) > len(in) {
				t.Fatalf("%d ops from %d bytes", len(ops), len(in))
			}
		})
	})
}

func FuzzApplyUpdate(f *testing.F) {
	base, ups := seedDoc(f)
	snap := base.EncodeSnapshot()
	for _, u := range ups {
		f.Add(u)
	}
	f.Add(base.EncodeDiff(nil))
	for _, k := range killers() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 7, Limits: fuzzLimits})
		if err != nil {
			t.Fatal(err)
		}
		before := d.Text("t").String()
		sv := d.StateVector()
		var applyErr error
		checkAlloc(t, in, "ApplyUpdate", func() { applyErr = d.ApplyUpdate(in) })
		if applyErr != nil {
			// Rejected whole: nothing changed.
			if got := d.Text("t").String(); got != before || !d.StateVector().Equal(sv) {
				t.Fatalf("rejected update changed the document: %q -> %q", before, got)
			}
			return
		}
		// Accepted: the document is still consistent and round-trips.
		for _, name := range d.Roots() {
			x := d.Text(name)
			if n := len([]rune(x.String())); n != x.Len() {
				t.Fatalf("root %q: String has %d code points, Len says %d", name, n, x.Len())
			}
		}
		// Anything accepted reloads under the same limits (issue 11 item 2),
		// and SizeBound never underestimates the snapshot body.
		bound := d.SizeBound()
		snap := d.EncodeSnapshot()
		if body := bodyLen(t, snap); body > bound {
			t.Fatalf("SizeBound %d underestimated the snapshot body of %d bytes", bound, body)
		}
		re, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 7, Limits: fuzzLimits})
		if err != nil {
			t.Fatalf("snapshot of an accepted state does not load: %v", err)
		}
		for _, name := range d.Roots() {
			if a, b := d.Text(name).String(), re.Text(name).String(); a != b {
				t.Fatalf("root %q: snapshot round trip %q != %q", name, b, a)
			}
		}
		fresh := crdt.NewDoc(crdt.Options{Agent: 9, Limits: fuzzLimits})
		if err := fresh.ApplyUpdate(d.EncodeDiff(nil)); err != nil {
			t.Fatalf("full diff of an accepted state does not apply: %v", err)
		}
		for _, name := range d.Roots() {
			if a, b := d.Text(name).String(), fresh.Text(name).String(); a != b {
				t.Fatalf("root %q: full diff gives %q, want %q", name, b, a)
			}
		}
	})
}

func FuzzLoadSnapshot(f *testing.F) {
	d, _ := seedDoc(f)
	f.Add(d.EncodeSnapshot())
	f.Add(crdt.NewDoc(crdt.Options{Agent: 3}).EncodeSnapshot())
	big := crdt.NewDoc(crdt.Options{Agent: 4})
	for i := 0; i < 200; i++ {
		_ = big.Text("t").Insert(i/2, "abcdefgh")
		_ = big.Text("t").Delete(i/3, 2)
	}
	f.Add(big.EncodeSnapshot()) // large enough to be compressed
	for _, k := range killers() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// A lazy load and an eager one accept the same snapshots (the lazy
		// one may refuse only when the structure is built), and a lazy
		// replica reads before the build what the eager one reads.
		var eager *crdt.Doc
		var eagerErr error
		checkAlloc(t, in, "LoadSnapshot (eager)", func() {
			eager, eagerErr = crdt.LoadSnapshot(in, crdt.Options{Agent: 5, Limits: fuzzLimits, Eager: true})
		})
		checkAlloc(t, in, "LoadSnapshot", func() {
			d, err := crdt.LoadSnapshot(in, crdt.Options{Agent: 5, Limits: fuzzLimits})
			if err != nil {
				var de *crdt.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("LoadSnapshot error %v is not a *DecodeError", err)
				}
				if eagerErr == nil {
					t.Fatalf("lazy load refused what an eager load accepts: %v", err)
				}
				return
			}
			cached := map[string]string{}
			for _, name := range d.Roots() {
				cached[name] = d.Text(name).String()
			}
			if buildErr := d.Verify(); (buildErr == nil) != (eagerErr == nil) {
				t.Fatalf("lazy load then Verify = %v, eager load = %v", buildErr, eagerErr)
			} else if buildErr != nil {
				var de *crdt.DecodeError
				if !errors.As(buildErr, &de) {
					t.Fatalf("Verify error %v is not a *DecodeError", buildErr)
				}
				for name, want := range cached {
					if got := d.Text(name).String(); got != want {
						t.Fatalf("root %q changed when the build failed: %q -> %q", name, want, got)
					}
				}
				if d.Text("t").Insert(0, "z") == nil {
					t.Fatal("a document whose structure failed its check took an edit")
				}
				return
			}
			for name, want := range cached {
				if got := eager.Text(name).String(); got != want {
					t.Fatalf("root %q: lazy load reads %q, eager load %q", name, want, got)
				}
				if got := d.Text(name).String(); got != want {
					t.Fatalf("root %q changed when the structure was built: %q -> %q", name, want, got)
				}
			}
			for _, name := range d.Roots() {
				x := d.Text(name)
				if n := len([]rune(x.String())); n != x.Len() {
					t.Fatalf("root %q: String has %d code points, Len says %d", name, n, x.Len())
				}
				_ = x.Insert(x.Len()/2, "z") // a loaded document must be editable
			}
			_ = d.EncodeDiff(nil)
		})
	})
}

func FuzzDecodeStateVector(f *testing.F) {
	d, _ := seedDoc(f)
	f.Add(crdt.EncodeStateVector(d.StateVector()))
	f.Add(crdt.EncodeStateVector(nil))
	for _, k := range killers() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, "DecodeStateVector", func() {
			sv, err := crdt.DecodeStateVector(in, fuzzLimits)
			if err != nil {
				return
			}
			again, err := crdt.DecodeStateVector(crdt.EncodeStateVector(sv), fuzzLimits)
			if err != nil || !again.Equal(sv) {
				t.Fatalf("state vector does not round-trip: %v, %v", sv, err)
			}
		})
	})
}

func FuzzDecodeRelPos(f *testing.F) {
	f.Add(crdt.EncodeRelPos(crdt.RelPos{Item: crdt.ID{Agent: 1, Seq: 3}, Assoc: crdt.AssocBefore}))
	f.Add(crdt.EncodeRelPos(crdt.RelPos{}))
	for _, k := range killers() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, "DecodeRelPos", func() {
			p, err := crdt.DecodeRelPos(in)
			if err != nil {
				return
			}
			if q, err := crdt.DecodeRelPos(crdt.EncodeRelPos(p)); err != nil || q != p {
				t.Fatalf("relative position does not round-trip: %+v -> %+v, %v", p, q, err)
			}
		})
	})
}
