package crdt

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// Lazy snapshot loading (lazy.go): what a load answers before the structure
// is built, what building it changes (nothing visible), and what a hostile
// snapshot gets. The golden vectors in testdata/golden/lazy_snapshots.json
// (written by lazyVectors, checked by TestLazyGolden here and by
// clients/js/test/lazy.test.mjs) pin the same for both implementations.

var updateLazy = flag.Bool("update-lazy", false, "rewrite testdata/golden/lazy_snapshots.json from lazyVectors")

const lazyGoldenPath = "../testdata/golden/lazy_snapshots.json"

// concurrentDoc is three replicas editing two roots concurrently with
// deletes, merged: a structure with origins across agents and tombstones.
func concurrentDoc(t testing.TB, seed uint64, edits int) *Doc {
	rng := rand.New(rand.NewPCG(seed, 11))
	reps := []*Doc{NewDoc(Options{Agent: 0x1111}), NewDoc(Options{Agent: 0x2222}), NewDoc(Options{Agent: 0x3333})}
	for i := range edits {
		d := reps[rng.IntN(len(reps))]
		x := d.Text([]string{"t", "notes"}[rng.IntN(2)])
		if x.Len() > 0 && rng.IntN(3) == 0 {
			p := rng.IntN(x.Len())
			if err := x.Delete(p, min(1+rng.IntN(3), x.Len()-p)); err != nil {
				t.Fatal(err)
			}
		} else if err := x.Insert(rng.IntN(x.Len()+1), []string{"ab", "é", "中文", "👍🏽", "xyz"}[rng.IntN(5)]); err != nil {
			t.Fatal(err)
		}
		if i%7 == 6 { // sync two replicas
			a, b := reps[rng.IntN(3)], reps[rng.IntN(3)]
			if err := b.ApplyUpdate(a.EncodeDiff(b.StateVector())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range reps {
		for _, b := range reps {
			if err := b.ApplyUpdate(a.EncodeDiff(b.StateVector())); err != nil {
				t.Fatal(err)
			}
		}
	}
	return reps[0]
}

func texts(d *Doc) map[string]string {
	m := map[string]string{}
	for _, name := range d.Roots() {
		m[name] = d.Text(name).String()
	}
	return m
}

func TestLazyLoadDefersStructure(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			src := concurrentDoc(t, seed, 200)
			snap := src.EncodeSnapshot()
			lazy, err := LoadSnapshot(snap, Options{Agent: 0x9999})
			if err != nil {
				t.Fatal(err)
			}
			eager, err := LoadSnapshot(snap, Options{Agent: 0x9999, Eager: true})
			if err != nil {
				t.Fatal(err)
			}
			if lazy.lazy == nil || eager.lazy != nil {
				t.Fatalf("lazy load built the structure (%v) or eager load did not (%v)", lazy.lazy == nil, eager.lazy != nil)
			}
			for name, want := range texts(src) {
				x := lazy.Text(name)
				if got := x.String(); got != want {
					t.Fatalf("root %q = %q before the build, want %q", name, got, want)
				}
				if got := x.Len(); got != len([]rune(want)) {
					t.Fatalf("root %q: Len = %d before the build, want %d", name, got, len([]rune(want)))
				}
				if got := string(x.Runes()); got != want {
					t.Fatalf("root %q: Runes = %q, want %q", name, got, want)
				}
			}
			if !lazy.StateVector().Equal(src.StateVector()) || lazy.Version() != src.Version() {
				t.Fatal("state vector differs before the build")
			}
			// Saving an untouched lazy document gives the bytes it was read from.
			if again := lazy.EncodeSnapshot(); !bytes.Equal(again, snap) {
				t.Fatal("EncodeSnapshot of an unbuilt document differs from the loaded bytes")
			}
			if lazy.lazy == nil {
				t.Fatal("reading the text, the state vector or the snapshot built the structure")
			}
			// A concurrent op from a new replica builds it; lazy and eager
			// replicas then agree on everything.
			other := NewDoc(Options{Agent: 0x7777})
			if err := other.ApplyUpdate(src.EncodeDiff(nil)); err != nil {
				t.Fatal(err)
			}
			_ = other.TakeUpdate()
			x := other.Text("t")
			if err := x.Insert(x.Len()/2, "<op>"); err != nil {
				t.Fatal(err)
			}
			if err := other.Text("notes").Delete(0, min(2, other.Text("notes").Len())); err != nil {
				t.Fatal(err)
			}
			op := other.TakeUpdate()
			for _, d := range []*Doc{lazy, eager} {
				if err := d.ApplyUpdate(op); err != nil {
					t.Fatal(err)
				}
			}
			if lazy.lazy != nil {
				t.Fatal("applying an op did not build the structure")
			}
			for name, want := range texts(other) {
				if got := lazy.Text(name).String(); got != want {
					t.Fatalf("root %q = %q after the op, want %q", name, got, want)
				}
			}
			if !bytes.Equal(lazy.EncodeSnapshot(), eager.EncodeSnapshot()) {
				t.Fatal("lazy and eager replicas encode different snapshots after the same op")
			}
			if !bytes.Equal(lazy.EncodeDiff(nil), eager.EncodeDiff(nil)) {
				t.Fatal("lazy and eager replicas encode different diffs")
			}
		})
	}
}

// Every use of the structure builds it: a local edit, a relative position,
// a diff.
func TestLazyBuildsOnEveryStructuralUse(t *testing.T) {
	src := concurrentDoc(t, 3, 100)
	snap := src.EncodeSnapshot()
	pos, err := src.Text("t").RelPos(1, AssocAfter)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]func(d *Doc) error{
		"Insert": func(d *Doc) error { return d.Text("t").Insert(1, "q") },
		"Delete": func(d *Doc) error { return d.Text("t").Delete(0, 1) },
		"RelPos": func(d *Doc) error { _, err := d.Text("t").RelPos(1, AssocAfter); return err },
		"Verify": func(d *Doc) error { return d.Verify() },
		"EncodeDiff": func(d *Doc) error {
			if d.EncodeDiff(nil) == nil {
				return errors.New("nil diff")
			}
			return nil
		},
		"Resolve": func(d *Doc) error {
			if _, ok := d.Text("t").Resolve(pos); !ok {
				return errors.New("does not resolve")
			}
			return nil
		},
	}
	for name, use := range uses {
		d, err := LoadSnapshot(snap, Options{Agent: 0x9999})
		if err != nil {
			t.Fatal(err)
		}
		if err := use(d); err != nil {
			t.Fatalf("%s on a lazily loaded document: %v", name, err)
		}
		if d.lazy != nil {
			t.Fatalf("%s did not build the structure", name)
		}
	}
}

// hostileOrigin returns a snapshot of d whose first run with a left origin
// names an item that does not exist: every length agrees (it loads lazily),
// the structure does not (it fails when built).
func hostileOrigin(t testing.TB, d *Doc) []byte {
	x := d.Text("t")
	for l := x.t.first; l != nil; l = l.next {
		for i := 0; i < l.n; i++ {
			if !l.runs[i].left.isNone() {
				l.runs[i].left = ref{0, 1 << 20}
				return packSnapshot(d.encodeBody(), CompressFast)
			}
		}
	}
	t.Fatal("no run with a left origin")
	return nil
}

// hostileLength returns an uncompressed snapshot of d whose text of root t
// has one more code point than its visible runs.
func hostileLength(t testing.TB, d *Doc) []byte {
	body := d.encodeBody()
	text := d.Text("t").String()
	if len(text) == 0 || len(text) > 100 {
		t.Fatalf("hostileLength wants a short text, got %d bytes", len(text))
	}
	i := bytes.Index(body, append([]byte{byte(len(text))}, text...))
	if i < 0 {
		t.Fatal("text not found in the body")
	}
	bad := append([]byte{}, body[:i]...)
	bad = append(bad, byte(len(text)+1))
	bad = append(bad, text...)
	bad = append(bad, '!')
	bad = append(bad, body[i+1+len(text):]...)
	return packSnapshot(bad, CompressSmall) // small: stored uncompressed
}

func TestLazyHostileStructure(t *testing.T) {
	src := concurrentDoc(t, 5, 60)
	want := texts(src)
	snap := hostileOrigin(t, concurrentDoc(t, 5, 60))
	if _, err := LoadSnapshot(snap, Options{Eager: true}); err == nil {
		t.Fatal("eager load accepted a snapshot whose origin names no item")
	}
	d, err := LoadSnapshot(snap, Options{Agent: 0x9999})
	if err != nil {
		t.Fatalf("lazy load refused a snapshot whose lengths agree: %v", err)
	}
	err = d.Verify()
	var de *DecodeError
	if !errors.As(err, &de) || de.What != "snapshot" {
		t.Fatalf("Verify = %v, want a snapshot *DecodeError", err)
	}
	// Refused for good, the same error every time; nothing changes.
	other := NewDoc(Options{Agent: 0x7777})
	_ = other.Text("t").Insert(0, "x")
	for name, e := range map[string]error{
		"Verify again": d.Verify(),
		"ApplyUpdate":  d.ApplyUpdate(other.TakeUpdate()),
		"Insert":       d.Text("t").Insert(0, "y"),
		"Delete":       d.Text("t").Delete(0, 1),
	} {
		if e != err {
			t.Errorf("%s = %v, want %v", name, e, err)
		}
	}
	if _, rerr := d.Text("t").RelPos(0, AssocAfter); rerr != err {
		t.Errorf("RelPos = %v, want %v", rerr, err)
	}
	if diff := d.EncodeDiff(nil); diff != nil {
		t.Errorf("EncodeDiff of a broken document = %x, want nil", diff)
	}
	if got := texts(d); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("texts after the failed build = %q, want the cached %q", got, want)
	}
	if d.Text("t").Len() != len([]rune(want["t"])) {
		t.Errorf("Len after the failed build = %d", d.Text("t").Len())
	}
	if !bytes.Equal(d.EncodeSnapshot(), snap) {
		t.Error("EncodeSnapshot of a broken document is not the bytes it was read from")
	}
}

func TestLazyHostileLength(t *testing.T) {
	d := NewDoc(Options{Agent: 0x1111})
	_ = d.Text("t").Insert(0, "hello world")
	_ = d.Text("t").Delete(2, 3)
	snap := hostileLength(t, d)
	for _, eager := range []bool{false, true} {
		_, err := LoadSnapshot(snap, Options{Eager: eager})
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("LoadSnapshot (eager %v) of a text longer than its runs = %v, want a *DecodeError", eager, err)
		}
	}
}

// lazyGolden is testdata/golden/lazy_snapshots.json.
type lazyGolden struct {
	Comment string       `json:"comment"`
	Vectors []lazyVector `json:"vectors"`
}

// lazyVector: Snapshot (hex) loads (LoadError false) to Texts without the
// structure; Op (hex update, from a new agent) then applies and gives
// After, or, when BuildError, is refused, the texts staying Texts.
type lazyVector struct {
	Name       string            `json:"name"`
	Snapshot   string            `json:"snapshot"`
	LoadError  bool              `json:"load_error,omitempty"`
	Texts      map[string]string `json:"texts,omitempty"`
	Op         string            `json:"op,omitempty"`
	BuildError bool              `json:"build_error,omitempty"`
	After      map[string]string `json:"after,omitempty"`
}

func lazyVectors(t testing.TB) lazyGolden {
	g := lazyGolden{Comment: "Written by `go test ./crdt -run TestLazyGolden -update-lazy` (crdt/lazy_test.go); read by crdt and clients/js. Never regenerate to make a test pass."}
	opFor := func(src *Doc) (string, map[string]string) {
		other := NewDoc(Options{Agent: 0x7777})
		if err := other.ApplyUpdate(src.EncodeDiff(nil)); err != nil {
			t.Fatal(err)
		}
		_ = other.TakeUpdate()
		x := other.Text("t")
		if err := x.Insert(x.Len()/2, "«op»"); err != nil {
			t.Fatal(err)
		}
		if n := other.Text("notes"); n.Len() > 0 {
			if err := n.Delete(n.Len()/3, 1); err != nil {
				t.Fatal(err)
			}
		}
		return hex.EncodeToString(other.TakeUpdate()), texts(other)
	}
	for _, c := range []struct {
		name  string
		seed  uint64
		edits int
	}{{"concurrent_small", 1, 40}, {"concurrent_lz4", 2, 400}} {
		src := concurrentDoc(t, c.seed, c.edits)
		op, after := opFor(src)
		g.Vectors = append(g.Vectors, lazyVector{Name: c.name, Snapshot: hex.EncodeToString(src.EncodeSnapshot()),
			Texts: texts(src), Op: op, After: after})
	}
	src := concurrentDoc(t, 5, 60)
	op, _ := opFor(src)
	g.Vectors = append(g.Vectors, lazyVector{Name: "hostile_origin", Snapshot: hex.EncodeToString(hostileOrigin(t, concurrentDoc(t, 5, 60))),
		Texts: texts(src), Op: op, BuildError: true})
	short := NewDoc(Options{Agent: 0x1111})
	_ = short.Text("t").Insert(0, "hello world")
	_ = short.Text("t").Delete(2, 3)
	g.Vectors = append(g.Vectors, lazyVector{Name: "hostile_length", Snapshot: hex.EncodeToString(hostileLength(t, short)), LoadError: true})
	return g
}

func TestLazyGolden(t *testing.T) {
	want := lazyVectors(t)
	if *updateLazy {
		b, err := json.MarshalIndent(want, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lazyGoldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(lazyGoldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var got lazyGolden
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Error("lazy_snapshots.json differs from what lazyVectors writes (a format or algorithm change?)")
	}
	for _, v := range got.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			snap, _ := hex.DecodeString(v.Snapshot)
			d, err := LoadSnapshot(snap, Options{Agent: 0x9999})
			if v.LoadError {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("LoadSnapshot = %v, want a *DecodeError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := texts(d); fmt.Sprint(g) != fmt.Sprint(v.Texts) {
				t.Fatalf("texts = %q, want %q", g, v.Texts)
			}
			op, _ := hex.DecodeString(v.Op)
			err = d.ApplyUpdate(op)
			if v.BuildError {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("op on a hostile structure = %v, want a *DecodeError", err)
				}
				if g := texts(d); fmt.Sprint(g) != fmt.Sprint(v.Texts) {
					t.Fatalf("texts after the refused op = %q, want %q", g, v.Texts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := texts(d); fmt.Sprint(g) != fmt.Sprint(v.After) {
				t.Fatalf("texts after the op = %q, want %q", g, v.After)
			}
		})
	}
}
