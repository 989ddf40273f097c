package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTraceEngines runs the trace command on a small trace with both
// engines and checks the one-line summary; an unknown engine is a usage error.
func TestTraceEngines(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tiny.json")
	const tr = `{"startContent":"ab","endContent":"xbc","txns":[{"time":"2024-01-01T00:00:00Z","patches":[[0,1,"x"],[2,0,"c"]]}]}`
	if err := os.WriteFile(f, []byte(tr), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"native", "yjs"} {
		var out, errb bytes.Buffer
		if code := runTrace([]string{"-engine", engine, f}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", engine, code, errb.String())
		}
		if line := out.String(); !strings.HasPrefix(line, "trace=tiny edits=2 ") || !strings.HasSuffix(line, " ok\n") {
			t.Errorf("%s: line %q", engine, line)
		}
	}
	var out, errb bytes.Buffer
	if code := runTrace([]string{"-engine", "automerge", f}, &out, &errb); code != 2 {
		t.Errorf("unknown engine: exit %d, want 2", code)
	}
}
