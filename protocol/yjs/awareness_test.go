package yjs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// oracleDir returns interop/yjs when its packages are installed (see
// TestGoldenFreshYjs for the skip rule).
func oracleDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../interop/yjs")
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := os.Stat(filepath.Join(dir, "node_modules", "y-protocols"))
	_, err2 := exec.LookPath("node")
	if err1 != nil || err2 != nil {
		if os.Getenv("COLLABD_YJS_ORACLE") == "1" {
			t.Fatalf("Yjs oracle not installed: %v %v", err1, err2)
		}
		t.Skip("Yjs oracle not installed; `make yjs-oracle` installs it and runs this test")
	}
	return dir
}

// TestAwarenessYjs: random awareness histories (drops, duplicates,
// reordering, merged updates, server-side removals) through y-protocols'
// Awareness as a y-websocket server holds it; after every step this
// Awareness re-broadcasts the same bytes, and a joiner gets the same
// full state at the end.
func TestAwarenessYjs(t *testing.T) {
	dir := oracleDir(t)
	n, seed := 200, "1"
	if testing.Short() {
		n = 50
	}
	if v, err := strconv.Atoi(os.Getenv("YJS_AWARENESS_CASES")); err == nil {
		n = v
	}
	if v := os.Getenv("YJS_AWARENESS_SEED"); v != "" {
		seed = v
	}
	path := filepath.Join(t.TempDir(), "aw.jsonl")
	cmd := exec.Command("node", "awareness.mjs", "--seed", seed, "--cases", strconv.Itoa(n), "--out", path)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node awareness.mjs: %v\n%s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	cases, broadcasts := 0, 0
	now := time.Unix(1e9, 0)
	for sc.Scan() {
		var c struct {
			Seed  int64 `json:"seed"`
			Steps []struct {
				Apply     string   `json:"apply"`
				Remove    []uint64 `json:"remove"`
				Broadcast *string  `json:"broadcast"`
			} `json:"steps"`
			Full    string   `json:"full"`
			Clients []uint64 `json:"clients"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases++
		a := NewAwareness(Limits{})
		for i, s := range c.Steps {
			var changed []uint64
			if s.Apply != "" {
				changed, err = a.Apply(unb64(t, s.Apply), now)
				if err != nil {
					t.Fatalf("seed %d step %d: %v", c.Seed, i, err)
				}
			} else {
				changed = a.Remove(s.Remove, now)
			}
			switch {
			case s.Broadcast == nil && len(changed) > 0:
				t.Fatalf("seed %d step %d: y-protocols broadcasts nothing, Go changed %v", c.Seed, i, changed)
			case s.Broadcast != nil:
				broadcasts++
				if got := a.Encode(changed); !bytes.Equal(got, unb64(t, *s.Broadcast)) {
					t.Fatalf("seed %d step %d: broadcast\n go: %x\nyjs: %x", c.Seed, i, got, unb64(t, *s.Broadcast))
				}
			}
		}
		if !slices.Equal(a.Clients(), c.Clients) {
			t.Fatalf("seed %d: clients %v, want %v", c.Seed, a.Clients(), c.Clients)
		}
		if got := a.Encode(a.Clients()); !bytes.Equal(got, unb64(t, c.Full)) {
			t.Fatalf("seed %d: full state\n go: %x\nyjs: %x", c.Seed, got, unb64(t, c.Full))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cases != n || broadcasts < n {
		t.Fatalf("%d cases, %d broadcasts compared", cases, broadcasts)
	}
}

// TestAwarenessLimitsAndExpiry: more clients than MaxAwareness is refused
// whole; quiet clients expire and their removal is broadcastable; the
// clock table forgets long-removed clients.
func TestAwarenessLimitsAndExpiry(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	a := NewAwareness(Limits{MaxAwareness: 2})
	up := func(entries ...AwarenessEntry) []byte { return AppendAwarenessUpdate(nil, entries) }
	if ch, err := a.Apply(up(AwarenessEntry{1, 1, `{"a":1}`}, AwarenessEntry{2, 1, `{}`}), t0); err != nil || !slices.Equal(ch, []uint64{1, 2}) {
		t.Fatalf("changed %v, %v", ch, err)
	}
	if _, err := a.Apply(up(AwarenessEntry{3, 1, `{}`}), t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a third client: %v", err)
	}
	if _, err := a.Apply([]byte{1, 1, 2, 1, '{'}, t0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad JSON: %v", err)
	}
	if got := a.Clients(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("clients %v after refusals", got)
	}
	// client 2 renews at +20 s; at +30 s only client 1 is outdated
	if _, err := a.Apply(up(AwarenessEntry{2, 2, `{"b":2}`}), t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	gone := a.Expire(t0.Add(OutdatedTimeout), OutdatedTimeout)
	if !slices.Equal(gone, []uint64{1}) {
		t.Fatalf("expired %v", gone)
	}
	es, err := DecodeAwareness(a.Encode(gone), Limits{})
	if err != nil || len(es) != 1 || !es[0].Removed() || es[0].Clock != 1 {
		t.Fatalf("removal broadcast %+v, %v", es, err)
	}
	// an old update of client 1 does not bring it back while its clock is known
	if ch, _ := a.Apply(up(AwarenessEntry{1, 1, `{"a":1}`}), t0.Add(OutdatedTimeout)); len(ch) != 0 {
		t.Fatalf("stale update applied: %v", ch)
	}
	a.Expire(t0.Add(2*OutdatedTimeout), OutdatedTimeout)
	if len(a.meta) != 1 { // client 2, expired by this call, is remembered; 1, removed 30 s ago, is forgotten
		t.Fatalf("clock table %v", a.meta)
	}
}

// The states an Awareness holds are bounded in bytes: an update past
// MaxAwarenessBytes is refused whole; removals always pass.
func TestAwarenessBytesBound(t *testing.T) {
	a := NewAwareness(Limits{MaxAwarenessBytes: 100})
	big := `{"x":"` + strings.Repeat("a", 60) + `"}`
	now := time.Unix(0, 0)
	if _, err := a.Apply(AppendAwarenessUpdate(nil, []AwarenessEntry{{Client: 1, Clock: 1, State: big}}), now); err != nil {
		t.Fatal(err)
	}
	_, err := a.Apply(AppendAwarenessUpdate(nil, []AwarenessEntry{{Client: 2, Clock: 1, State: big}}), now)
	if !errors.Is(err, ErrTooLarge) || len(a.Clients()) != 1 {
		t.Fatalf("past the bound: %v, clients %v", err, a.Clients())
	}
	if _, err := a.Apply(AppendAwarenessUpdate(nil, []AwarenessEntry{{Client: 1, Clock: 2, State: "null"}}), now); err != nil {
		t.Fatalf("a removal: %v", err)
	}
	if _, err := a.Apply(AppendAwarenessUpdate(nil, []AwarenessEntry{{Client: 2, Clock: 1, State: big}}), now); err != nil {
		t.Fatalf("after the removal there is room: %v", err)
	}
}
