package trace

import (
	"strings"
	"testing"
)

// TestSharedTracesYjs runs RunYjs's checks on the recorded traces: the Yjs
// engine's server-side edits reproduce endContent, their updates applied one
// at a time to a fresh document give the same text and state vector, and the
// encoded state loads back. (`go test -short` skips the two long traces.)
func TestSharedTracesYjs(t *testing.T) {
	for _, f := range sharedTraces(t) {
		t.Run(Name(f), func(t *testing.T) {
			if testing.Short() && Name(f) != "friendsforever" {
				t.Skip("long trace")
			}
			tr, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := RunYjs(tr)
			if err != nil {
				t.Fatal(err)
			}
			if res.Edits != tr.Edits() || res.SnapshotBytes == 0 {
				t.Errorf("result %+v", res)
			}
			t.Log(res.Line())
		})
	}
}

func TestSyntheticTracesYjs(t *testing.T) {
	bmp := strings.NewReplacer("🌍", "w", "😀", "s", "🎉", "p")
	for _, tc := range []struct{ name, json string }{
		{"concurrent-3-agents", bmp.Replace(concurrentTrace)},
		{"sequential-start-content-multi-patch", bmp.Replace(sequentialTrace)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Read(strings.NewReader(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			tr.Name = tc.name
			if _, err := RunYjs(tr); err != nil {
				t.Fatal(err)
			}
		})
	}
	tr, err := Read(strings.NewReader(sequentialTrace))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunYjs(tr); err == nil || !strings.Contains(err.Error(), "BMP") {
		t.Errorf("non-BMP trace: err = %v, want a refusal", err)
	}
}
