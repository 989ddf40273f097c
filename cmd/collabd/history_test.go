package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/collabd/collabd/storage"
)

// postJSON posts body to u and decodes the answer into out.
func postJSON(t *testing.T, u string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %d %q", u, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// A named version acked by the server survives kill -9: after the restart
// collabd history lists it, and collabd restore-version brings its text
// back.
func TestNamedVersionSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a subprocess")
	}
	bin := buildCollabd(t)
	data := t.TempDir()
	cmd, ws := startServe(t, bin, data)
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(ws, "ws://"), "/v1/ws")
	doc := base + "/v1/docs/notes%2Fk9"
	if code := postJSON(t, doc+"/edits", map[string]any{"edits": [][]any{{0, 0, "before the crash"}}}, nil); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	var v struct {
		Seq   uint64 `json:"seq"`
		Label string `json:"label"`
	}
	if code := postJSON(t, doc+"/versions", map[string]string{"label": "acked"}, &v); code != 201 || v.Seq != 1 {
		t.Fatalf("named version: %d %+v", code, v)
	}
	if code := postJSON(t, doc+"/edits", map[string]any{"edits": [][]any{{0, 16, "changed"}}}, nil); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	cmd, ws = startServe(t, bin, data)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	defer stop()
	base = "http://" + strings.TrimSuffix(strings.TrimPrefix(ws, "ws://"), "/v1/ws")
	var out, errb bytes.Buffer
	if code := run([]string{"history", "notes/k9", "--url", base}, &out, &errb); code != 0 {
		t.Fatalf("history: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"acked"`) || !strings.Contains(out.String(), "named") {
		t.Fatalf("history after kill -9 does not list the acked version:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"restore-version", "notes/k9", "1", "--url", base}, &out, &errb); code != 0 {
		t.Fatalf("restore-version: exit %d: %s", code, errb.String())
	}
	resp, err := http.Get(base + "/v1/docs/notes%2Fk9/text")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(text) != "before the crash" {
		t.Fatalf("text after restore-version = %q", text)
	}
	// Bad usage and unknown versions exit non-zero with a message.
	for _, args := range [][]string{
		{"restore-version", "notes/k9", "0", "--url", base},
		{"restore-version", "notes/k9", "--url", base},
		{"history", "--url", base},
	} {
		if code := run(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	errb.Reset()
	if code := run([]string{"restore-version", "notes/k9", "99", "--url", base}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "no such version") {
		t.Errorf("restore of a missing version: exit %d: %s", code, errb.String())
	}
	// The stopped store verifies, every version's snapshot loading: the
	// named one, the automatic one the restore took first, and the one the
	// shutdown took after the restore.
	stop()
	out.Reset()
	if code := run([]string{"verify", filepath.Join(data, "collabd.db")}, &out, &errb); code != 0 || !strings.Contains(out.String(), "versions=3 ") {
		t.Fatalf("verify: exit %d: %s%s", code, out.String(), errb.String())
	}
}

func TestParseRetention(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]storage.Retention{
		"all:7d,daily:90d": {All: 7 * day, Daily: 90 * day},
		"all:36h":          {All: 36 * time.Hour, Daily: 36 * time.Hour},
		"forever":          {},
	} {
		if got, err := parseRetention(in); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "daily:9d", "all:x", "all:-1d", "all:7d,weekly:1d", "7d"} {
		if _, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) accepted", in)
		}
	}
}
