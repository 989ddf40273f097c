package yjs

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenSeeds returns every update and state of the golden file (real Yjs bytes).
func goldenSeeds(f *testing.F) [][]byte {
	data, err := os.ReadFile("testdata/golden/v1.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		for _, key := range []string{`"updates":[`, `"state":`} {
			i := strings.Index(line, key)
			rest := line[i+len(key):]
			end := strings.IndexAny(rest, "]")
			if key == `"state":` {
				end = strings.Index(rest[1:], `"`) + 2
			}
			for _, s := range strings.Split(rest[:end], ",") {
				s = strings.Trim(s, `"`)
				if s != "" {
					out = append(out, b64(f, s))
				}
			}
		}
	}
	return out
}

func fuzzLimits() Limits {
	return Limits{MaxUpdateBytes: 1 << 16, MaxStructs: 4096, MaxPendingStructs: 1024, MaxPendingDeletes: 1024,
		MaxCollection: 4096, MaxStringBytes: 1 << 16, MaxDocBytes: 1 << 22}
}

// FuzzDecodeUpdate: decoding never panics; a decoded update re-encodes to
// bytes that decode to the same re-encoding.
func FuzzDecodeUpdate(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	lim := fuzzLimits().withDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUpdateV1(b, &lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		e1 := u.encodeV1()
		u2, err := decodeUpdateV1(e1, &lim)
		if err != nil {
			t.Fatalf("re-encoded update does not decode: %v", err)
		}
		if e2 := u2.encodeV1(); !bytes.Equal(e1, e2) {
			t.Fatalf("encode(decode(encode(x))) != encode(x)")
		}
	})
}

// FuzzApply: a document never panics on hostile updates (the input is also
// split in two and applied as two updates); a rejected update changes
// nothing; the encoded state always loads into a fresh document with the
// same state vector and the same encoding.
func FuzzApply(f *testing.F) {
	seeds := goldenSeeds(f)
	for _, s := range seeds {
		f.Add(s, uint16(len(s)/2))
	}
	if len(seeds) > 1 {
		f.Add(append(append([]byte{}, seeds[0]...), seeds[1]...), uint16(len(seeds[0])))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		d := New(fuzzLimits())
		for _, name := range []string{"t", "text", "txt", "x", "a", "m", "prosemirror", "default", ""} {
			d.Observe(name) // change deltas of hostile histories are valid JSON
		}
		parts := [][]byte{b}
		if c := int(cut); c > 0 && c < len(b) {
			parts = [][]byte{b[:c], b[c:], b}
		}
		for _, p := range parts {
			before := d.EncodeState()
			res, err := d.Apply(p)
			for _, c := range res.Changes {
				if !json.Valid(c.Delta) {
					t.Fatalf("change of %q is not JSON: %q", c.Root, c.Delta)
				}
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrPendingFull) {
					t.Fatalf("untyped error %v", err)
				}
				if after := d.EncodeState(); !bytes.Equal(before, after) {
					t.Fatalf("rejected update changed the document")
				}
			}
		}
		st := d.EncodeState()
		d2 := New(Limits{})
		if _, err := d2.Apply(st); err != nil {
			t.Fatalf("own state does not load: %v", err)
		}
		if !bytes.Equal(d.StateVector(), d2.StateVector()) {
			t.Fatalf("state vector differs after reload")
		}
		_ = d.Text("t")
		_ = d.JSON("m", TypeMap)
		_ = d.JSON("x", TypeXmlFrag)
		if _, err := d.Diff(d2.StateVector()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDecodeUpdateV2: v2 decoding never panics (run-length columns
// included); a decoded update re-encodes to bytes that decode to the same
// re-encoding; applying it to a document never panics and is all or nothing.
func FuzzDecodeUpdateV2(f *testing.F) {
	for _, s := range goldenV2Seeds(f) {
		f.Add(s)
	}
	lim := fuzzLimits().withDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUpdateV2(b, &lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
		} else {
			e1 := u.encodeV2()
			u2, err := decodeUpdateV2(e1, &lim)
			if err != nil {
				t.Fatalf("re-encoded v2 update does not decode: %v", err)
			}
			if e2 := u2.encodeV2(); !bytes.Equal(e1, e2) {
				t.Fatalf("encode(decode(encode(x))) != encode(x)")
			}
		}
		d := New(fuzzLimits())
		if _, err := d.ApplyV2(b); err != nil {
			if got := d.EncodeState(); !bytes.Equal(got, []byte{0, 0}) {
				t.Fatalf("rejected v2 update changed the document")
			}
			return
		}
		if _, err := Load(d.EncodeState(), Limits{}); err != nil {
			t.Fatalf("own state does not load: %v", err)
		}
	})
}

func goldenV2Seeds(f *testing.F) [][]byte {
	data, err := os.ReadFile("testdata/golden/v1.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var g struct {
			StateV2 string `json:"stateV2"`
		}
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			f.Fatal(err)
		}
		out = append(out, b64(f, g.StateV2))
	}
	return out
}

// FuzzDecodeStateVector: never panics; errors are typed.
func FuzzDecodeStateVector(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{2, 100, 5, 107, 3})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		sv, err := DecodeStateVector(b, Limits{MaxClients: 1024})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		d := New(Limits{})
		if _, err := d.Diff(b); err != nil {
			t.Fatalf("Diff rejects a state vector DecodeStateVector accepts: %v", err)
		}
		_ = sv
	})
}

// FuzzDecodeDeleteSet: never panics; a decoded delete set normalizes to
// sorted, disjoint ranges.
func FuzzDecodeDeleteSet(f *testing.F) {
	f.Add([]byte{1, 1, 1, 0, 1})
	f.Add([]byte{2, 5, 2, 0, 3, 1, 2, 9, 1, 4, 4})
	lim := fuzzLimits().withDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &decoder{b: b, lim: &lim}
		ds := decodeDeleteSet(d)
		if d.err != nil {
			return
		}
		ds.normalize()
		for i, c := range ds.clients {
			if i > 0 && ds.clients[i-1].client <= c.client {
				t.Fatal("clients not descending")
			}
			for j := 1; j < len(c.ranges); j++ {
				if c.ranges[j-1].clock+c.ranges[j-1].len >= c.ranges[j].clock {
					t.Fatal("ranges overlap or touch")
				}
			}
		}
	})
}

// TestWriteFuzzSeeds writes the golden updates as checked-in seed corpus
// files (run with YJS_WRITE_FUZZ_SEEDS=1 after adding goldens).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("YJS_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set YJS_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	f := &testing.F{}
	_ = f
	data, err := os.ReadFile("testdata/golden/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var g goldenCase
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatal(err)
		}
		for _, u := range g.Updates {
			seeds = append(seeds, b64(t, u))
		}
		seeds = append(seeds, b64(t, g.State))
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeUpdateV2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var g struct {
			StateV2 string `json:"stateV2"`
		}
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b64(t, g.StateV2))) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "golden-"+strconv.Itoa(i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, target := range []string{"FuzzDecodeUpdate", "FuzzApply"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if target == "FuzzApply" {
				body += "uint16(" + strconv.Itoa(len(s)/2) + ")\n"
			}
			if err := os.WriteFile(filepath.Join(dir, "golden-"+strconv.Itoa(i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
