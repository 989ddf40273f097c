package trace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedTraces returns the recorded traces beside the repository. In CI
// (CI=true) a missing directory is a failure, never a skip.
func sharedTraces(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(tracesDir(), "*.json.gz"))
	if len(files) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no traces in %s (set COLLABD_TRACES)", tracesDir())
		}
		t.Skipf("no traces in %s (set COLLABD_TRACES)", tracesDir())
	}
	return files
}

// TestSharedTraces runs every check of Run (local replay, remote apply one
// update at a time, snapshot round trip, per-agent replicas converging) on
// the recorded traces.
func TestSharedTraces(t *testing.T) {
	for _, f := range sharedTraces(t) {
		t.Run(Name(f), func(t *testing.T) {
			tr, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(tr)
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

const concurrentTrace = `{"kind":"concurrent","endContent":"AZello 🌍😀!","numAgents":3,"txns":[
 {"parents":[],"numChildren":2,"agent":0,"patches":[[0,0,"hello 🌍"]]},
 {"parents":[0],"numChildren":1,"agent":1,"patches":[[0,0,"A"]]},
 {"parents":[0],"numChildren":1,"agent":2,"patches":[[7,0,"😀"]]},
 {"parents":[1,2],"numChildren":1,"agent":0,"patches":[[1,1,"Z"],[9,0,"!"]]},
 {"parents":[3],"numChildren":0,"agent":1,"patches":[]}
]}`

const sequentialTrace = `{"startContent":"ab","endContent":"x🎉bc","txns":[
 {"time":"2024-01-01T00:00:00Z","patches":[[0,1,"x🎉"],[3,0,"c"]]}
]}`

func TestSyntheticTraces(t *testing.T) {
	tests := []struct{ name, json string }{
		{"concurrent-3-agents-non-bmp", concurrentTrace},
		{"sequential-start-content-multi-patch", sequentialTrace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Read(strings.NewReader(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			tr.Name = tc.name
			if _, err := Run(tr); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMismatchNamesTheCheck(t *testing.T) {
	tr, err := Read(strings.NewReader(strings.Replace(sequentialTrace, `"x🎉bc"`, `"x🎉bd"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	tr.Name = "broken"
	_, err = Run(tr)
	var me *MismatchError
	if !errors.As(err, &me) || me.Check != "local replay" {
		t.Fatalf("got %v, want a local replay mismatch", err)
	}
	if !strings.Contains(err.Error(), "code point 3") {
		t.Errorf("error %q does not name the first differing code point", err)
	}
}

func TestReadRejectsMalformedTraces(t *testing.T) {
	tests := []struct{ name, json string }{
		{"parent not earlier", `{"kind":"concurrent","endContent":"","numAgents":1,"txns":[{"parents":[0],"agent":0,"patches":[]}]}`},
		{"agent out of range", `{"kind":"concurrent","endContent":"","numAgents":1,"txns":[{"parents":[],"agent":3,"patches":[]}]}`},
		{"negative position", `{"endContent":"","txns":[{"patches":[[-1,0,"a"]]}]}`},
		{"short patch", `{"endContent":"","txns":[{"patches":[[0,0]]}]}`},
		{"unknown kind", `{"kind":"weird","endContent":"","txns":[]}`},
	}
	for _, tc := range tests {
		if _, err := Read(strings.NewReader(tc.json)); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestPatchOutOfRangeIsAnError(t *testing.T) {
	tr, err := Read(strings.NewReader(`{"endContent":"","txns":[{"patches":[[5,0,"a"]]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(tr); err == nil {
		t.Fatal("a patch past the end replayed without error")
	}
}

// TestLoadCapsInflation: a .json.gz whose JSON would inflate past
// MaxTraceBytes stops at the cap with ErrTooLarge (tested through capReader
// with a small cap: building a 1 GiB stream is slow).
func TestLoadCapsInflation(t *testing.T) {
	src := strings.NewReader(`{"kind":"concurrent","endContent":"` + strings.Repeat("a", 1<<20) + `"}`)
	_, err := Read(&capReader{r: src, left: 1 << 10})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read through a 1 KiB cap = %v, want ErrTooLarge", err)
	}
}
