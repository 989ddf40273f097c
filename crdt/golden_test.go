package crdt_test

import (
	"bytes"
	"compress/flate"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/collabd/collabd/crdt"
)

// Golden vectors shared with clients/js (testdata/golden/README.md). Each
// scenario is a list of steps (make a replica, edit, take an update, apply
// named bytes, snapshot, ...) and what each step must produce. The steps are
// defined here (goldenScenarios) and recorded with their expected outputs in
// testdata/golden/crdt.json by `go test ./crdt -run TestGolden -update`.
// TestGolden replays the recorded steps and checks that Go still produces the
// same bytes, texts and positions; the JS client replays the same file.
// Never regenerate the file to make a test pass: a difference is a format
// change (or a bug) that breaks every client that already speaks the format.

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden/crdt.json from goldenScenarios")

const goldenPath = "../testdata/golden/crdt.json"

type goldenFile struct {
	Version   int              `json:"version"`
	Comment   string           `json:"comment"`
	Scenarios []goldenScenario `json:"scenarios"`
}

type goldenScenario struct {
	Name  string       `json:"name"`
	Steps []goldenStep `json:"steps"`
}

// goldenStep is one step. Bytes are hex. A step that produces bytes stores
// them under Name; later steps refer to them with From, and replay the
// recorded (Go) bytes, so a client decodes exactly what Go wrote.
type goldenStep struct {
	Op    string `json:"op"`
	Doc   string `json:"doc,omitempty"`
	Agent string `json:"agent,omitempty"` // decimal uint64
	Root  string `json:"root,omitempty"`
	Pos   int    `json:"pos,omitempty"`
	Len   int    `json:"len,omitempty"`
	Text  string `json:"text,omitempty"`
	Assoc int    `json:"assoc,omitempty"`
	Name  string `json:"name,omitempty"`
	From  string `json:"from,omitempty"`

	Expect json.RawMessage `json:"expect,omitempty"`
}

// goldenSnapshot is what a "snapshot" step records: the uncompressed body and
// the two compressed encodings (stored as Name+".lz4" and Name+".deflate").
type goldenSnapshot struct {
	Body    string `json:"body"`
	LZ4     string `json:"lz4"`
	Deflate string `json:"deflate"`
}

// runner replays steps on Go docs.
type runner struct {
	t     *testing.T
	docs  map[string]*crdt.Doc
	named map[string][]byte
}

func (r *runner) doc(name string) *crdt.Doc {
	d, ok := r.docs[name]
	if !ok {
		r.t.Fatalf("step uses unknown doc %q", name)
	}
	return d
}

func (r *runner) bytesOf(name string) []byte {
	if name == "" {
		return nil
	}
	b, ok := r.named[name]
	if !ok {
		r.t.Fatalf("step uses unknown bytes %q", name)
	}
	return b
}

func agentOf(t *testing.T, s string) crdt.AgentID {
	a, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("agent %q: %v", s, err)
	}
	return crdt.AgentID(a)
}

// step runs s and returns what it produced (nil for steps without output) and
// the bytes to store under s.Name.
func (r *runner) step(s goldenStep) (out any, store map[string][]byte) {
	t := r.t
	switch s.Op {
	case "new":
		r.docs[s.Doc] = crdt.NewDoc(crdt.Options{Agent: agentOf(t, s.Agent)})
	case "insert":
		if err := r.doc(s.Doc).Text(s.Root).Insert(s.Pos, s.Text); err != nil {
			t.Fatalf("insert: %v", err)
		}
	case "delete":
		if err := r.doc(s.Doc).Text(s.Root).Delete(s.Pos, s.Len); err != nil {
			t.Fatalf("delete: %v", err)
		}
	case "take":
		b := r.doc(s.Doc).TakeUpdate()
		return hex.EncodeToString(b), map[string][]byte{s.Name: b}
	case "apply":
		if err := r.doc(s.Doc).ApplyUpdate(r.bytesOf(s.From)); err != nil {
			t.Fatalf("apply %s: %v", s.From, err)
		}
	case "sv":
		b := crdt.EncodeStateVector(r.doc(s.Doc).StateVector())
		return hex.EncodeToString(b), map[string][]byte{s.Name: b}
	case "diff":
		var sv crdt.StateVector
		if s.From != "" {
			var err error
			if sv, err = crdt.DecodeStateVector(r.bytesOf(s.From), crdt.Limits{}); err != nil {
				t.Fatalf("diff: %v", err)
			}
		}
		b := r.doc(s.Doc).EncodeDiff(sv)
		return hex.EncodeToString(b), map[string][]byte{s.Name: b}
	case "snapshot":
		d := r.doc(s.Doc)
		fast, small := d.EncodeSnapshot(), d.EncodeSnapshotWith(crdt.CompressSmall)
		body := snapshotBody(t, fast)
		if !bytes.Equal(body, snapshotBody(t, small)) {
			t.Fatalf("snapshot %s: LZ4 and DEFLATE bodies differ", s.Name)
		}
		return goldenSnapshot{Body: hex.EncodeToString(body), LZ4: hex.EncodeToString(fast), Deflate: hex.EncodeToString(small)},
			map[string][]byte{s.Name + ".lz4": fast, s.Name + ".deflate": small}
	case "load":
		d, err := crdt.LoadSnapshot(r.bytesOf(s.From), crdt.Options{Agent: agentOf(t, s.Agent)})
		if err != nil {
			t.Fatalf("load %s: %v", s.From, err)
		}
		r.docs[s.Doc] = d
	case "relpos":
		p, err := r.doc(s.Doc).Text(s.Root).RelPos(s.Pos, crdt.Assoc(s.Assoc))
		if err != nil {
			t.Fatalf("relpos: %v", err)
		}
		b := crdt.EncodeRelPos(p)
		return hex.EncodeToString(b), map[string][]byte{s.Name: b}
	case "resolve":
		p, err := crdt.DecodeRelPos(r.bytesOf(s.From))
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		i, ok := r.doc(s.Doc).Text(s.Root).Resolve(p)
		if !ok {
			i = -1
		}
		return i, nil
	case "text":
		return r.doc(s.Doc).Text(s.Root).String(), nil
	case "pending":
		return r.doc(s.Doc).Pending(), nil
	default:
		t.Fatalf("unknown step %q", s.Op)
	}
	return nil, nil
}

// snapshotBody returns the uncompressed body of an encoded snapshot.
func snapshotBody(t *testing.T, b []byte) []byte {
	t.Helper()
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 4 {
		t.Fatalf("snapshot header: %d elements, %v", n, err)
	}
	var hdr [3]uint64 // version, compression, body length
	for i := range hdr {
		if hdr[i], err = dec.DecodeUint64(); err != nil {
			t.Fatalf("snapshot header: %v", err)
		}
	}
	body, err := dec.DecodeBytes()
	if err != nil {
		t.Fatalf("snapshot body: %v", err)
	}
	switch hdr[1] {
	case 0:
		return body
	case 1:
		raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatalf("inflate: %v", err)
		}
		return raw
	case 2:
		raw := make([]byte, hdr[2])
		n, err := lz4.UncompressBlock(body, raw)
		if err != nil || uint64(n) != hdr[2] {
			t.Fatalf("lz4: %d bytes, %v", n, err)
		}
		return raw
	}
	t.Fatalf("snapshot compression kind %d", hdr[1])
	return nil
}

// record runs the scenarios and fills in every expectation.
func record(t *testing.T, scs []goldenScenario) []goldenScenario {
	out := make([]goldenScenario, len(scs))
	for i, sc := range scs {
		r := &runner{t: t, docs: map[string]*crdt.Doc{}, named: map[string][]byte{}}
		out[i] = goldenScenario{Name: sc.Name}
		for _, s := range sc.Steps {
			got, store := r.step(s)
			if got != nil {
				b, err := json.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				s.Expect = b
			}
			for k, v := range store {
				r.named[k] = v
			}
			out[i].Steps = append(out[i].Steps, s)
		}
	}
	return out
}

// TestGolden checks testdata/golden/crdt.json: its steps are still the ones
// goldenScenarios defines, and replaying them in Go gives the recorded bytes,
// texts, positions and pending counts. Later steps consume the recorded bytes.
func TestGolden(t *testing.T) {
	scs := goldenScenarios()
	if *updateGolden {
		f := goldenFile{Version: 1, Comment: "Generated by `go test ./crdt -run TestGolden -update`; see README.md. Never regenerate to make a test pass.", Scenarios: record(t, scs)}
		b, err := json.MarshalIndent(f, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden vectors: %v", err)
	}
	var f goldenFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	if len(f.Scenarios) != len(scs) {
		t.Fatalf("golden file has %d scenarios, goldenScenarios defines %d (changing scenarios needs -update and a review of the diff)", len(f.Scenarios), len(scs))
	}
	for i, sc := range f.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			def := scs[i]
			if def.Name != sc.Name || len(def.Steps) != len(sc.Steps) {
				t.Fatalf("scenario %d is %q with %d steps in the file, %q with %d in goldenScenarios", i, sc.Name, len(sc.Steps), def.Name, len(def.Steps))
			}
			r := &runner{t: t, docs: map[string]*crdt.Doc{}, named: map[string][]byte{}}
			for k, s := range sc.Steps {
				want := def.Steps[k]
				want.Expect = s.Expect
				if !reflect.DeepEqual(want, s) {
					t.Fatalf("step %d differs from goldenScenarios: file %+v, code %+v", k, s, want)
				}
				got, store := r.step(s)
				checkStep(t, k, s, got)
				// Later steps use the recorded bytes, not this run's.
				for name := range store {
					r.named[name] = recorded(t, s, name)
				}
			}
		})
	}
}

// checkStep compares what a step produced with what the file recorded.
func checkStep(t *testing.T, k int, s goldenStep, got any) {
	t.Helper()
	if got == nil {
		if len(s.Expect) != 0 {
			t.Fatalf("step %d (%s) records %s but produces nothing", k, s.Op, s.Expect)
		}
		return
	}
	if s.Op == "snapshot" {
		var want goldenSnapshot
		if err := json.Unmarshal(s.Expect, &want); err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
		g := got.(goldenSnapshot)
		// The body is the format; the compressed bytes depend on the
		// compressor. LZ4 comes from a pinned module and must not move.
		// DEFLATE comes from the Go toolchain's compress/flate, whose output
		// may change between Go releases: its body must still match, and the
		// recorded bytes must still load (the "load" steps check that).
		if g.Body != want.Body {
			t.Errorf("step %d (snapshot %s): body\n got %s\nwant %s", k, s.Name, g.Body, want.Body)
		}
		if g.LZ4 != want.LZ4 {
			t.Errorf("step %d (snapshot %s): LZ4 encoding\n got %s\nwant %s", k, s.Name, g.LZ4, want.LZ4)
		}
		wb, _ := hex.DecodeString(want.Deflate)
		if body := hex.EncodeToString(snapshotBody(t, wb)); body != want.Body {
			t.Errorf("step %d (snapshot %s): recorded DEFLATE snapshot inflates to\n %s\nnot the body\n %s", k, s.Name, body, want.Body)
		}
		return
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, s.Expect) {
		t.Errorf("step %d (%s %s %s): got %s, want %s", k, s.Op, s.Doc, s.Name, b, s.Expect)
	}
}

// recorded returns the bytes the file recorded for name (produced by step s).
func recorded(t *testing.T, s goldenStep, name string) []byte {
	t.Helper()
	var h string
	if s.Op == "snapshot" {
		var g goldenSnapshot
		if err := json.Unmarshal(s.Expect, &g); err != nil {
			t.Fatal(err)
		}
		h = map[string]string{s.Name + ".lz4": g.LZ4, s.Name + ".deflate": g.Deflate}[name]
	} else if err := json.Unmarshal(s.Expect, &h); err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("recorded %s: %v", name, err)
	}
	return b
}
