package yjs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// restoreRoots are the roots the restore tests build: a map, an array and a
// ProseMirror-shaped XML fragment.
var restoreRoots = map[string]string{"m": "Map", "a": "Array", "f": "XmlFragment"}

// txEdit runs edit as one transaction of client and returns its update.
func txEdit(d *Doc, client uint64, edit func(r *restorer)) []byte {
	before := d.state(client)
	d.beginTx()
	edit(&restorer{d: d, client: client})
	return d.commitRestore(client, before)
}

// insertAt inserts c into the sequence of t at index (countable units).
func (r *restorer) insertAt(t *ytype, index int, c content, length int) *item {
	p := r.d.findPosition(t, index)
	return r.put(t, p.left, p.right, "", c, length)
}

// deleteAt deletes the unit at index of the sequence of t.
func (r *restorer) deleteAt(t *ytype, index int) {
	p := r.d.findPosition(t, index)
	for x := p.right; x != nil; x = x.right {
		if x.visible() && x.countable() {
			r.d.getItemCleanEnd(x.id)
			r.d.deleteItem(x)
			return
		}
	}
}

func anyStr(s string) Any { return Any{Kind: AnyString, Str: s} }

func randAny(rng *rand.Rand, depth int) Any {
	switch rng.IntN(9) {
	case 0:
		return Any{Kind: AnyNull}
	case 1:
		return Any{Kind: AnyBool, Bool: rng.IntN(2) == 0}
	case 2:
		return AnyNumber(float64(rng.IntN(5)))
	case 3:
		return AnyNumber(float64(rng.IntN(100)) / 8)
	case 4:
		return Any{Kind: AnyBytes, Bytes: []byte{byte(rng.IntN(3))}}
	case 5:
		if depth < 2 {
			a := Any{Kind: AnyArray}
			for range rng.IntN(3) {
				a.Arr = append(a.Arr, randAny(rng, depth+1))
			}
			return a
		}
	case 6:
		if depth < 2 {
			a := Any{Kind: AnyObject}
			for i := range rng.IntN(3) {
				a.Obj = append(a.Obj, AnyField{Key: "k" + strconv.Itoa(i), Val: randAny(rng, depth+1)})
			}
			return a
		}
	}
	return anyStr([]string{"x", "y", "😀", "ünï"}[rng.IntN(4)])
}

func anyContent(a Any) content { return content{ref: refAny, ext: &contentExt{anys: []Any{a}}} }

func typeContent(kind TypeKind, name string) content {
	return content{ref: refType, ext: &contentExt{typ: &ytype{kind: kind, name: name}}}
}

// putParagraph inserts a ProseMirror paragraph (or heading) at index of t:
// an element holding an XmlText with marked runs as y-prosemirror writes them.
func (r *restorer) putParagraph(rng *rand.Rand, t *ytype, index int) {
	name := []string{"paragraph", "heading"}[rng.IntN(2)]
	el := r.insertAt(t, index, typeContent(TypeXmlElement, name), 1).ext.typ
	if name == "heading" {
		r.put(el, nil, nil, "level", anyContent(AnyNumber(float64(1+rng.IntN(3)))), 1)
	}
	tx := r.put(el, nil, nil, "", typeContent(TypeXmlText, ""), 1).ext.typ
	var left *item
	for range 1 + rng.IntN(3) {
		mark := []string{"", "strong", "em"}[rng.IntN(3)]
		if mark != "" {
			left = r.put(tx, left, nil, "", content{ref: refFormat, ext: &contentExt{str: mark, str2: "{}"}}, 1)
		}
		w := []string{"alpha ", "beta", "γ😀"}[rng.IntN(3)]
		left = r.put(tx, left, nil, "", content{ref: refString, buf: []byte(w)}, utf16Len([]byte(w)))
		if mark != "" {
			left = r.put(tx, left, nil, "", content{ref: refFormat, ext: &contentExt{str: mark, str2: "null"}}, 1)
		}
	}
}

// liveTypes lists the visible types under t (t included).
func liveTypes(t *ytype, out []*ytype) []*ytype {
	out = append(out, t)
	for it := t.start; it != nil; it = it.right {
		if it.visible() && it.ref == refType {
			out = liveTypes(it.ext.typ, out)
		}
	}
	for _, k := range t.keys {
		if it := t.m[k]; it != nil && it.visible() && it.ref == refType {
			out = liveTypes(it.ext.typ, out)
		}
	}
	return out
}

// randomEdit makes one random edit as client on the restore roots.
func randomEdit(rng *rand.Rand, d *Doc, client uint64) []byte {
	return txEdit(d, client, func(r *restorer) {
		root := []string{"m", "a", "f"}[rng.IntN(3)]
		ts := liveTypes(d.root(root), nil)
		t := ts[rng.IntN(len(ts))]
		switch {
		case root == "f" && t.kind == TypeXmlText:
			if t.length > 0 && rng.IntN(3) == 0 {
				r.deleteAt(t, rng.IntN(t.length))
				return
			}
			w := []string{"x", "yz", "é"}[rng.IntN(3)]
			r.insertAt(t, rng.IntN(t.length+1), content{ref: refString, buf: []byte(w)}, utf16Len([]byte(w)))
		case root == "f":
			if t.kind == TypeXmlElement && rng.IntN(3) == 0 {
				r.put(t, t.m["level"], nil, "level", anyContent(AnyNumber(float64(rng.IntN(4)))), 1)
				return
			}
			if t.length > 0 && rng.IntN(3) == 0 {
				r.deleteAt(t, rng.IntN(t.length))
				return
			}
			r.putParagraph(rng, t, rng.IntN(t.length+1))
		case t.kind == TypeArray || (t.item == nil && root == "a"):
			if t.length > 0 && rng.IntN(3) == 0 {
				r.deleteAt(t, rng.IntN(t.length))
				return
			}
			c := anyContent(randAny(rng, 0))
			if t.depth < 3 && rng.IntN(4) == 0 {
				c = typeContent([]TypeKind{TypeMap, TypeArray}[rng.IntN(2)], "")
			}
			r.insertAt(t, rng.IntN(t.length+1), c, 1)
		default: // a map
			key := "k" + strconv.Itoa(rng.IntN(6))
			if it := t.m[key]; it != nil && it.visible() && rng.IntN(3) == 0 {
				r.d.deleteItem(it)
				return
			}
			c := anyContent(randAny(rng, 0))
			if t.depth < 3 && rng.IntN(4) == 0 {
				c = typeContent([]TypeKind{TypeMap, TypeArray}[rng.IntN(2)], "")
			}
			var left *item
			if t.m != nil {
				left = t.m[key]
			}
			r.put(t, left, nil, key, c, 1)
		}
	})
}

func mustLoad(t testing.TB, updates ...[]byte) *Doc {
	t.Helper()
	d := New(Limits{})
	for i, u := range updates {
		if len(u) == 0 {
			continue
		}
		if _, err := d.Apply(u); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	return d
}

// restoreAll restores every restore root of d from v as client and returns
// the updates.
func restoreAll(t testing.TB, d, v *Doc, client uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, root := range []string{"a", "f", "m"} {
		u, err := d.RestoreRoot(client, root, v)
		if err != nil {
			t.Fatalf("RestoreRoot(%s): %v", root, err)
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out
}

// TestRestoreRootProperty: seeded random maps, arrays (nested maps and
// arrays, Any values) and ProseMirror-shaped fragments. A version is taken,
// the document edited on; RestoreRoot brings each root back to the
// version's, its updates applied to a replica of the edited document give
// the version's content too, and an edit made concurrently converges in
// either order. Failures name the seed (FuzzRestoreRoot runs one).
func TestRestoreRootProperty(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	restored := 0
	for seed := range seeds {
		if checkRestoreSeed(t, uint64(seed)) {
			restored++
		}
	}
	if restored < seeds/2 {
		t.Fatalf("only %d of %d seeds had anything to restore", restored, seeds)
	}
}

func FuzzRestoreRoot(f *testing.F) {
	for _, s := range []uint64{0, 1, 7, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { checkRestoreSeed(t, seed) })
}

// checkRestoreSeed runs one case of TestRestoreRootProperty and reports
// whether the restore had anything to do.
func checkRestoreSeed(t *testing.T, seed uint64) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	a := New(Limits{})
	for range 5 + rng.IntN(25) {
		randomEdit(rng, a, 1)
	}
	v := mustLoad(t, a.EncodeState())
	for range rng.IntN(25) {
		randomEdit(rng, a, uint64(1+rng.IntN(2)))
	}
	later := a.EncodeState()
	// a concurrent replica edits the later state
	c := mustLoad(t, later)
	var conc [][]byte
	for range 1 + rng.IntN(4) {
		conc = append(conc, randomEdit(rng, c, 3))
	}
	ups := restoreAll(t, a, v, 1000)
	if got, want := a.dump(restoreRoots), v.dump(restoreRoots); !bytes.Equal(got, want) {
		t.Fatalf("seed %d: after restore\n got %s\nwant %s", seed, got, want)
	}
	// the updates apply elsewhere: a replica of the later state
	r := mustLoad(t, append([][]byte{later}, ups...)...)
	if got, want := r.dump(restoreRoots), v.dump(restoreRoots); !bytes.Equal(got, want) {
		t.Fatalf("seed %d: replica after the restore updates\n got %s\nwant %s", seed, got, want)
	}
	// concurrent: both orders give the same document
	x := mustLoad(t, append(append([][]byte{later}, ups...), conc...)...)
	y := mustLoad(t, append(append([][]byte{later}, conc...), ups...)...)
	if !bytes.Equal(x.dump(restoreRoots), y.dump(restoreRoots)) || !bytes.Equal(x.StateVector(), y.StateVector()) {
		t.Fatalf("seed %d: concurrent orders differ\n%s\n%s", seed, x.dump(restoreRoots), y.dump(restoreRoots))
	}
	// restoring again changes nothing
	if again := restoreAll(t, a, v, 1000); len(again) != 0 {
		t.Fatalf("seed %d: a second restore made %d updates", seed, len(again))
	}
	return len(ups) > 0
}

// TestRestoreRootKeepsUnchanged: unchanged paragraphs stay in place, so an
// edit made concurrently inside one survives the restore; a changed key is
// set, a key the version lacks deleted, an equal key left alone.
func TestRestoreRootKeepsUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := New(Limits{})
	txEdit(a, 1, func(r *restorer) {
		f := a.root("f")
		for i := range 3 {
			r.putParagraph(rng, f, i)
		}
		m := a.root("m")
		r.put(m, nil, nil, "same", anyContent(anyStr("s")), 1)
		r.put(m, nil, nil, "changed", anyContent(AnyNumber(1)), 1)
	})
	v := mustLoad(t, a.EncodeState())
	txEdit(a, 2, func(r *restorer) {
		r.putParagraph(rng, a.root("f"), 1) // a new paragraph between the first two
		m := a.root("m")
		r.put(m, m.m["changed"], nil, "changed", anyContent(AnyNumber(2)), 1)
		r.put(m, nil, nil, "added", anyContent(AnyNumber(3)), 1)
	})
	later := a.EncodeState()
	// concurrently, text typed into the third paragraph (index 3 now)
	c := mustLoad(t, later)
	conc := txEdit(c, 3, func(r *restorer) {
		p := c.roots["f"].start
		for n := 0; n < 3; p = p.right {
			if p.visible() {
				n++
			}
		}
		for !p.visible() {
			p = p.right
		}
		xt := p.ext.typ.start.ext.typ
		r.insertAt(xt, 0, content{ref: refString, buf: []byte("NEW")}, 3)
	})
	ups := restoreAll(t, a, v, 1000)
	if len(ups) != 2 {
		t.Fatalf("%d updates, want 2 (f and m)", len(ups))
	}
	got := mustLoad(t, append(append([][]byte{later}, ups...), conc)...)
	want := mustLoad(t, append([][]byte{v.EncodeState()}, conc)...) // the version with the concurrent edit
	if g, w := got.JSON("f", TypeXmlFrag), want.JSON("f", TypeXmlFrag); !bytes.Equal(g, w) || !bytes.Contains(g, []byte("NEW")) {
		t.Fatalf("fragment\n got %s\nwant %s", g, w)
	}
	if g := string(got.JSON("m", TypeMap)); g != `{"changed":1,"same":"s"}` {
		t.Fatalf("map = %s", g)
	}
	// "same" was not rewritten: its item is still client 1's
	if it := a.roots["m"].m["same"]; it.id.Client != 1 {
		t.Fatalf("the unchanged key was rewritten by client %d", it.id.Client)
	}
}

func TestRestoreRootRefuses(t *testing.T) {
	d := New(Limits{})
	if _, err := d.InsertText(1, "t", 0, "hi"); err != nil {
		t.Fatal(err)
	}
	v := New(Limits{})
	if _, err := d.RestoreRoot(5, "t", v); !errors.Is(err, ErrBadEdit) {
		t.Errorf("text root: err = %v, want ErrBadEdit", err)
	}
	if _, err := d.RestoreRoot(5, "m", nil); !errors.Is(err, ErrBadEdit) {
		t.Errorf("nil version: err = %v, want ErrBadEdit", err)
	}
	if _, err := d.RestoreRoot(1<<60, "m", v); !errors.Is(err, ErrBadEdit) {
		t.Errorf("client id past 2^53: err = %v, want ErrBadEdit", err)
	}
	if u, err := d.RestoreRoot(5, "missing", v); u != nil || err != nil {
		t.Errorf("missing on both sides: %v, %v", u, err)
	}
	if _, ok := d.roots["missing"]; ok {
		t.Error("a restore with nothing to do created the root")
	}
	// past MaxDocBytes: refused before anything changes
	big := New(Limits{})
	txEdit(big, 1, func(r *restorer) {
		txt := r.put(big.root("m"), nil, nil, "k", typeContent(TypeText, ""), 1).ext.typ
		r.put(txt, nil, nil, "", content{ref: refString, buf: bytes.Repeat([]byte("x"), 4096)}, 4096)
	})
	small := New(Limits{MaxDocBytes: 1024})
	if _, err := small.RestoreRoot(5, "m", big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: err = %v, want ErrTooLarge", err)
	}
	if len(small.roots) != 0 || small.state(5) != 0 {
		t.Error("a refused restore changed the document")
	}
}

// TestRestoreRootYjs: documents with a map, an array and a ProseMirror-shaped
// fragment built and edited by real Yjs (interop/yjs/restore.mjs gen); the
// Go restore of the later state to the version, applied by Yjs to the later
// state, gives the version's toJSON(), dump and ProseMirror JSON
// (y-prosemirror); an edit made concurrently by Yjs merges in either order,
// to the document Go computes (restore.mjs check).
//
// YJS_RESTORE_CASES (default 200) and YJS_DIFF_SEED (default 1) set the run.
func TestRestoreRootYjs(t *testing.T) {
	dir := interopDir(t)
	n := envInt("YJS_RESTORE_CASES", 200)
	if testing.Short() {
		n = 40
	}
	tmp := t.TempDir()
	in := filepath.Join(tmp, "cases.jsonl")
	runNode(t, dir, "restore.mjs", "gen", "--seed", strconv.Itoa(envInt("YJS_DIFF_SEED", 1)), "--cases", strconv.Itoa(n), "--out", in)
	f, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	restored := 0
	for _, line := range bytes.Split(bytes.TrimSpace(f), []byte("\n")) {
		var c struct {
			Seed       int64  `json:"seed"`
			Version    string `json:"version"`
			Later      string `json:"later"`
			Concurrent string `json:"concurrent"`
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		v := mustLoad(t, b64(t, c.Version))
		d := mustLoad(t, b64(t, c.Later))
		ups := restoreAll(t, d, v, 1000)
		if len(ups) > 0 {
			restored++
		}
		if got, want := d.dump(restoreRoots), v.dump(restoreRoots); !jsonEqual(got, want) {
			t.Fatalf("seed %d: Go after restore\n got %s\nwant %s", c.Seed, got, want)
		}
		x := mustLoad(t, append(append([][]byte{b64(t, c.Later)}, ups...), b64(t, c.Concurrent))...)
		enc := make([]string, len(ups))
		for i, u := range ups {
			enc[i] = base64.StdEncoding.EncodeToString(u)
		}
		b, _ := json.Marshal(map[string]any{"seed": c.Seed, "version": c.Version, "later": c.Later, "concurrent": c.Concurrent,
			"updates": enc, "goConcurrent": string(x.dump(restoreRoots))})
		out.Write(append(b, '\n'))
	}
	if restored < n/2 {
		t.Fatalf("only %d of %d cases had anything to restore", restored, n)
	}
	p := filepath.Join(tmp, "restored.jsonl")
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", runNode(t, dir, "restore.mjs", "check", p))
}
