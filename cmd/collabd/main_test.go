package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var lineRE = regexp.MustCompile(`^trace=(\S+) edits=(\d+) local_ms=[0-9.]+ remote_ms=[0-9.]+ snapshot_bytes=\d+ encode_ms=[0-9.]+ load_ms=[0-9.]+ ok$`)

func writeTrace(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodTrace = `{"kind":"concurrent","endContent":"AZello 🌍😀!","numAgents":3,"txns":[
 {"parents":[],"numChildren":2,"agent":0,"patches":[[0,0,"hello 🌍"]]},
 {"parents":[0],"numChildren":1,"agent":1,"patches":[[0,0,"A"]]},
 {"parents":[0],"numChildren":1,"agent":2,"patches":[[7,0,"😀"]]},
 {"parents":[1,2],"numChildren":0,"agent":0,"patches":[[1,1,"Z"],[9,0,"!"]]}]}`

func TestTraceCommand(t *testing.T) {
	dir := t.TempDir()
	writeTrace(t, dir, "good.json.gz", goodTrace)
	var out, errOut bytes.Buffer
	if code := run([]string{"trace", "-runs", "3", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), out.String())
	}
	m := lineRE.FindStringSubmatch(lines[0])
	if m == nil || m[1] != "good" || m[2] != "5" {
		t.Fatalf("line %q does not match the documented format", lines[0])
	}
}

func TestTraceCommandMismatch(t *testing.T) {
	dir := t.TempDir()
	good := writeTrace(t, dir, "good.json.gz", goodTrace)
	bad := writeTrace(t, dir, "bad.json.gz", strings.Replace(goodTrace, "AZello", "AZhello", 1))
	var out, errOut bytes.Buffer
	if code := run([]string{"trace", bad, good}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), bad) || !strings.Contains(errOut.String(), "differs at code point 2") {
		t.Errorf("stderr %q should name the file and the first mismatch", errOut.String())
	}
	if !lineRE.MatchString(strings.TrimSpace(out.String())) {
		t.Errorf("the good trace should still be reported: %q", out.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
	if code := run([]string{"trace"}, &out, &errOut); code != 2 {
		t.Errorf("trace without files: exit %d, want 2", code)
	}
	if code := run([]string{"bogus"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}
