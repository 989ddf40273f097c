package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// buildCollabd builds this command into the test's temporary directory
// (tests that run the server as a subprocess: kill -9, graceful stop).
func buildCollabd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "collabd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
