package server

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server/owner"
)

// A stored snapshot whose structure fails its deferred check (the
// hostile_origin golden vector) loads, serves its text, and is reported
// ErrCorrupt on its first op and on a warm join's diff: the owner then
// refuses the document (TestCorruptOnUse in server/owner).
func TestNativeEngineCorruptOnUse(t *testing.T) {
	raw, err := os.ReadFile("../testdata/golden/lazy_snapshots.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Vectors []struct {
			Name, Snapshot, Op string
			Texts              map[string]string
		}
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	for _, v := range g.Vectors {
		if v.Name != "hostile_origin" {
			continue
		}
		snap, _ := hex.DecodeString(v.Snapshot)
		op, _ := hex.DecodeString(v.Op)
		s := &Server{agent: 9}
		e, err := s.newNativeEngine(snap)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if got, _ := e.Text("t"); got != v.Texts["t"] {
			t.Fatalf("text before the first op = %q, want %q", got, v.Texts["t"])
		}
		if _, err := e.Apply(op, nil); !errors.Is(err, owner.ErrCorrupt) {
			t.Fatalf("Apply = %v, want ErrCorrupt", err)
		}
		if _, err := e.Diff(crdt.EncodeStateVector(crdt.StateVector{1: 1})); !errors.Is(err, owner.ErrCorrupt) {
			t.Fatalf("Diff = %v, want ErrCorrupt", err)
		}
		return
	}
	t.Fatal("no hostile_origin vector")
}
