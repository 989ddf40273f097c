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
	"unicode/utf8"
)

func TestEditBasics(t *testing.T) {
	d := New(Limits{})
	const me = 7
	for _, step := range []struct {
		op   func() ([]byte, error)
		want string
	}{
		{func() ([]byte, error) { return d.InsertText(me, "t", 0, "hello") }, "hello"},
		{func() ([]byte, error) { return d.InsertText(me, "t", 5, " world") }, "hello world"},
		{func() ([]byte, error) { return d.InsertText(me, "t", 0, "😀") }, "😀hello world"},
		{func() ([]byte, error) { return d.DeleteText(me, "t", 2, 6) }, "😀world"},
		{func() ([]byte, error) { return d.InsertText(me, "t", 2, "é") }, "😀éworld"},
	} {
		u, err := step.op()
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Text("t"); got != step.want {
			t.Fatalf("Text = %q, want %q", got, step.want)
		}
		if len(u) == 0 {
			t.Fatal("no update")
		}
	}
	// the updates replayed elsewhere give the same document
	d2, err := Load(d.EncodeState(), Limits{})
	if err != nil || d2.Text("t") != "😀éworld" {
		t.Fatalf("reload: %q, %v", d2.Text("t"), err)
	}
	if _, err := d.SetMap(me, "m", "k", AnyNumber(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetMap(me, "m", "k", Any{Kind: AnyString, Str: "v"}); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON("m", TypeMap)); got != `{"k":"v"}` {
		t.Fatalf("JSON(m) = %s", got)
	}
	for _, bad := range []func() ([]byte, error){
		func() ([]byte, error) { return d.InsertText(me, "t", 99, "x") },
		func() ([]byte, error) { return d.InsertText(me, "t", 0, "") },
		func() ([]byte, error) { return d.DeleteText(me, "t", 5, 99) },
		func() ([]byte, error) { return d.InsertText(me, "t", 0, string([]byte{0xff})) },
	} {
		if _, err := bad(); !errors.Is(err, ErrBadEdit) {
			t.Errorf("err = %v, want ErrBadEdit", err)
		}
	}
}

// TestEditsYjs makes random server-side edits on the documents of the
// differential histories and checks each against the same edit made by Yjs
// (interop/yjs/edits.mjs): same document, same update bytes.
func TestEditsYjs(t *testing.T) {
	dir := interopDir(t)
	tmp := t.TempDir()
	casesPath := filepath.Join(tmp, "cases.jsonl")
	runNode(t, dir, "histories.mjs", "--seed", "7000", "--cases", "60", "--out", casesPath)
	var out []byte
	rng := rand.New(rand.NewPCG(3, 4))
	const server = 4242424242
	for _, c := range readCases(t, casesPath) {
		d, err := Load(b64(t, c.State), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 6; k++ {
			before := d.EncodeState()
			tl := 0
			if r := d.roots["t"]; r != nil {
				tl = r.length
			}
			var op map[string]any
			var u []byte
			switch n := rng.IntN(4); {
			case n == 0 || tl == 0:
				idx := textBoundary(d, rng.IntN(tl+1))
				txt := []string{"a", "xyz", "é中", "😀", "\n"}[rng.IntN(5)]
				op = map[string]any{"kind": "insert", "name": "t", "index": idx, "text": txt}
				u, err = d.InsertText(server, "t", idx, txt)
			case n == 1:
				idx := textBoundary(d, rng.IntN(tl))
				l := textBoundary(d, min(tl, idx+1+rng.IntN(3))) - idx
				if l <= 0 {
					continue
				}
				op = map[string]any{"kind": "delete", "name": "t", "index": idx, "length": l}
				u, err = d.DeleteText(server, "t", idx, l)
			case n == 2:
				key := []string{"a", "b", "new"}[rng.IntN(3)]
				v := rng.IntN(1000)
				op = map[string]any{"kind": "set", "name": "m", "key": key, "value": v}
				u, err = d.SetMap(server, "m", key, AnyNumber(float64(v)))
			default:
				key := []string{"a", "b", "c"}[rng.IntN(3)]
				op = map[string]any{"kind": "unset", "name": "m", "key": key}
				u, err = d.DeleteMap(server, "m", key)
				if u == nil && err == nil {
					continue
				}
			}
			if err != nil {
				t.Fatalf("seed %d: %v: %v", c.Seed, op, err)
			}
			line, _ := json.Marshal(map[string]any{"state": base64.StdEncoding.EncodeToString(before), "client": server,
				"op": op, "update": base64.StdEncoding.EncodeToString(u)})
			out = append(append(out, line...), '\n')
		}
	}
	p := filepath.Join(tmp, "edits.jsonl")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", runNode(t, dir, "edits.mjs", p))
}

// textBoundary moves a UTF-16 index of root t off the middle of a surrogate pair.
func textBoundary(d *Doc, idx int) int {
	t := d.roots["t"]
	if t == nil {
		return idx
	}
	u := 0
	for it := t.start; it != nil; it = it.right {
		if !it.visible() || !it.countable() {
			continue
		}
		if it.ref != refString {
			u += it.length
			continue
		}
		for b := it.buf; len(b) > 0; {
			r, size := utf8.DecodeRune(b)
			w := 1
			if r >= 0x10000 {
				w = 2
			}
			if idx > u && idx < u+w {
				return u
			}
			u += w
			b = b[size:]
		}
	}
	return idx
}

var _ = strconv.Itoa

// TestProseMirrorYjs compares ProseMirrorJSON with what y-prosemirror reads
// from the same documents (interop/yjs/prosemirror.mjs: prosemirror-schema-basic
// documents made by prosemirrorJSONToYDoc, edited by two Yjs replicas).
func TestProseMirrorYjs(t *testing.T) {
	dir := interopDir(t)
	p := filepath.Join(t.TempDir(), "pm.jsonl")
	runNode(t, dir, "prosemirror.mjs", "--seed", "1", "--cases", "150", "--out", p)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var c struct {
			Seed      int             `json:"seed"`
			State     string          `json:"state"`
			MarkOrder []string        `json:"markOrder"`
			PM        json.RawMessage `json:"pm"`
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		d, err := Load(b64(t, c.State), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.ProseMirrorJSON("prosemirror", c.MarkOrder); !jsonEqual(got, c.PM) {
			t.Errorf("seed %d: ProseMirrorJSON\n got %s\nwant %s", c.Seed, got, c.PM)
		}
		n++
	}
	t.Logf("%d documents", n)
}

// FuzzEdits drives server-side edits with arbitrary arguments on golden
// documents interleaved with their remote updates: no panic, bad arguments
// are ErrBadEdit, and a replica fed only the returned updates (and the same
// remote updates) ends with the same text and state vector.
func FuzzEdits(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(0))
	f.Add([]byte{9, 200, 3, 0, 0, 1, 77, 2, 255, 13, 4, 4}, uint8(3))
	data, err := os.ReadFile("testdata/golden/v1.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	var goldens [][][]byte
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var g goldenCase
		if err := json.Unmarshal(line, &g.oracleCase); err != nil {
			f.Fatal(err)
		}
		var ups [][]byte
		for _, u := range g.Updates {
			ups = append(ups, b64(f, u))
		}
		goldens = append(goldens, ups)
	}
	f.Fuzz(func(t *testing.T, ops []byte, which uint8) { runEdits(t, goldens, ops, which) })
}

var editGoldens [][][]byte

func runEditsBody(t *testing.T, ops []byte, which uint8) {
	if editGoldens == nil {
		data, _ := os.ReadFile("testdata/golden/v1.jsonl")
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			var g goldenCase
			_ = json.Unmarshal(line, &g.oracleCase)
			var ups [][]byte
			for _, u := range g.Updates {
				ups = append(ups, b64(t, u))
			}
			editGoldens = append(editGoldens, ups)
		}
	}
	runEdits(t, editGoldens, ops, which)
}

func runEdits(t *testing.T, goldens [][][]byte, ops []byte, which uint8) {
	{
		ups := goldens[int(which)%len(goldens)]
		d, r := New(Limits{}), New(Limits{})
		const me = 9999
		texts := []string{"a", "é", "xyz", "\n", "中文", "b c"}
		for i := 0; i+2 < len(ops); i += 3 {
			op, a, b := ops[i], int(ops[i+1]), int(ops[i+2])
			tl := 0
			if tt := d.roots["t"]; tt != nil {
				tl = tt.length
			}
			var u []byte
			var err error
			switch op % 5 {
			case 0:
				if len(ups) > 0 {
					u = ups[a%len(ups)]
					if _, err := d.Apply(u); err != nil {
						t.Fatal(err)
					}
				}
			case 1:
				u, err = d.InsertText(me, "t", textBoundary(d, a%(tl+1)), texts[b%len(texts)])
			case 2:
				if tl > 0 {
					idx := textBoundary(d, a%tl)
					u, err = d.DeleteText(me, "t", idx, textBoundary(d, min(tl, idx+1+b%4))-idx)
				}
			case 3:
				u, err = d.SetMap(me, "m", texts[a%len(texts)], AnyNumber(float64(b)))
			case 4:
				u, err = d.InsertText(me, "t", a, texts[b%len(texts)]) // may be out of range
			}
			if err != nil {
				if !errors.Is(err, ErrBadEdit) {
					t.Fatalf("op %d: %v", op, err)
				}
				continue
			}
			if u != nil {
				if _, err := r.Apply(u); err != nil {
					t.Fatalf("replica rejects update: %v", err)
				}
			}
		}
		if d.Text("t") != r.Text("t") || !bytes.Equal(d.StateVector(), r.StateVector()) {
			t.Fatalf("replica differs: %q vs %q", d.Text("t"), r.Text("t"))
		}
	}
}
