package yjs

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// changeCase is one line of interop/yjs/changes.mjs output.
type changeCase struct {
	Seed   int64           `json:"seed"`
	Base   []string        `json:"base"`
	Next   string          `json:"next"`
	Before json.RawMessage `json:"before"`
	Delta  json.RawMessage `json:"delta"` // null: Yjs fired no event
	After  json.RawMessage `json:"after"`
}

// TestTextChangesYjs: for random rich-text histories, the change Observe
// reports for one applied update is the delta a Yjs observer of the same
// text sees for the same update (YTextEvent.delta), byte for byte as JSON.
func TestTextChangesYjs(t *testing.T) {
	dir := interopDir(t)
	n := envInt("YJS_CHANGE_CASES", 400)
	if testing.Short() {
		n = 100
	}
	path := filepath.Join(t.TempDir(), "changes.jsonl")
	runNode(t, dir, "changes.mjs", "--seed", strconv.Itoa(envInt("YJS_CHANGE_SEED", 1)), "--cases", strconv.Itoa(n), "--out", path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	failed, seen, events := 0, 0, 0
	for sc.Scan() {
		var c changeCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		seen++
		d := New(Limits{})
		for _, u := range c.Base {
			if _, err := d.Apply(b64(t, u)); err != nil {
				t.Fatalf("seed %d: base: %v", c.Seed, err)
			}
		}
		if got := d.TextDelta("t"); !jsonEqual(got, c.Before) {
			t.Fatalf("seed %d: text before differs\n go: %s\nyjs: %s", c.Seed, got, c.Before)
		}
		d.Observe("t")
		res, err := d.Apply(b64(t, c.Next))
		if err != nil {
			t.Fatalf("seed %d: next: %v", c.Seed, err)
		}
		var got []byte
		for _, ch := range res.Changes {
			if ch.Root == "t" {
				got = ch.Delta
			}
		}
		switch {
		case string(c.Delta) == "null":
			if got != nil && string(got) != "[]" {
				t.Errorf("seed %d: Yjs saw no change, Go reports %s", c.Seed, got)
				failed++
			}
		case got == nil:
			t.Errorf("seed %d: no change reported; Yjs saw %s", c.Seed, c.Delta)
			failed++
		case !jsonEqual(got, c.Delta):
			t.Errorf("seed %d: change differs\n go: %s\nyjs: %s\nbefore: %s\nafter: %s", c.Seed, got, c.Delta, c.Before, c.After)
			failed++
		default:
			events++
		}
		// Yjs deleted the marks its delta found redundant (see Observe):
		// the texts compare with runs of equal attributes joined.
		if got := d.TextDelta("t"); !jsonEqual(joinRuns(t, got), joinRuns(t, c.After)) {
			t.Errorf("seed %d: text after differs\n go: %s\nyjs: %s", c.Seed, got, c.After)
			failed++
		}
		if failed > 5 {
			t.Fatal("too many failures")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != n || events < n/2 {
		t.Fatalf("%d cases, %d with a change compared (want %d, at least half)", seen, events, n)
	}
}

// joinRuns joins adjacent string inserts with equal attributes of a delta.
func joinRuns(t *testing.T, delta []byte) []byte {
	var ops []map[string]any
	if err := json.Unmarshal(delta, &ops); err != nil {
		t.Fatalf("%v: %s", err, delta)
	}
	var out []map[string]any
	for _, op := range ops {
		if k := len(out); k > 0 {
			prev := out[k-1]
			ps, ok1 := prev["insert"].(string)
			s, ok2 := op["insert"].(string)
			a, _ := json.Marshal(prev["attributes"])
			b, _ := json.Marshal(op["attributes"])
			if ok1 && ok2 && string(a) == string(b) {
				prev["insert"] = ps + s
				continue
			}
		}
		out = append(out, op)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestObserveEdits: the changes another replica's edits make, as deltas.
func TestObserveEdits(t *testing.T) {
	w, r := New(Limits{}), New(Limits{})
	r.Observe("t")
	step := func(u []byte, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Apply(u)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) != 1 || res.Changes[0].Root != "t" || string(res.Changes[0].Delta) != want {
			t.Fatalf("changes %+v, want %s", res.Changes, want)
		}
	}
	u, err := w.InsertText(7, "t", 0, "hello")
	step(u, err, `[{"insert":"hello"}]`)
	u, err = w.InsertText(7, "t", 5, " 😀")
	step(u, err, `[{"retain":5},{"insert":" 😀"}]`)
	u, err = w.DeleteText(7, "t", 1, 2)
	step(u, err, `[{"retain":1},{"delete":2}]`)
	u, err = w.SetMap(7, "m", "k", AnyNumber(1))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Apply(u); err != nil || len(res.Changes) != 0 {
		t.Fatalf("a map edit reports %+v, %v", res.Changes, err)
	}
	// StateSum is the sum of the encoded state vector's clocks
	sv, err := DecodeStateVector(r.StateVector(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, n := range sv {
		sum += n
	}
	if r.StateSum() != sum || sum == 0 {
		t.Fatalf("StateSum %d, state vector sums to %d", r.StateSum(), sum)
	}
}
