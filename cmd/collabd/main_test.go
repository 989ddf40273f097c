package main

import (
	"bytes"
	"compress/gzip"
	"flag"
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

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"token", "-auth-secret", "s3cret-s3cret-s3cret-s3cret-32by", "-sub", "alice", "-doc", "notes/*:rw"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if parts := strings.Split(strings.TrimSpace(out.String()), "."); len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out.String())
	}
	if code := run([]string{"token", "-auth-secret", "s3cret-s3cret-s3cret-s3cret-32by", "-sub", "a", "-doc", "bad-grant"}, &out, &errOut); code != 2 {
		t.Errorf("bad grant: exit %d, want 2", code)
	}
	if code := run([]string{"token", "-sub", "a"}, &out, &errOut); code != 2 {
		t.Errorf("missing flags: exit %d, want 2", code)
	}
}

func TestEnvDefaults(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := fs.String("addr", "a", "")
	maxFrame := fs.Int("max-frame", 0, "")
	if err := fs.Parse([]string{"-addr", "cli"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COLLABD_ADDR": "env", "COLLABD_MAX_FRAME": "42"}
	if err := envDefaults(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if *addr != "cli" || *maxFrame != 42 {
		t.Fatalf("addr %q (flag wins), max-frame %d (from env)", *addr, *maxFrame)
	}
	env["COLLABD_MAX_FRAME"] = "lots"
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Int("max-frame", 0, "")
	if err := envDefaults(fs2, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
		t.Error("a malformed environment value was accepted")
	}
}

func TestServeRefusesPublicAddressWithoutAuth(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "-addr", "0.0.0.0:0", "-data", t.TempDir()}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--insecure-no-auth") {
		t.Errorf("stderr %q should explain the flag", errOut.String())
	}
}
