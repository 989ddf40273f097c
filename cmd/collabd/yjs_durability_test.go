package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// doors runs a scenario of interop/yjs/doors.mjs (the real y-websocket and
// @hocuspocus/provider) against base and decodes its output.
func doors(t *testing.T, base, scenario string, args map[string]any, out any) {
	t.Helper()
	dir, _ := filepath.Abs("../../interop/yjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "y-websocket")); err != nil {
		t.Fatal("interop/yjs/node_modules missing: run make yjs-oracle (or bash interop/yjs/scripts/install.sh)")
	}
	raw, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "doors.mjs", scenario, base, string(raw))
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("doors.mjs %s %s: %v\n%s", scenario, raw, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("doors.mjs %s output %q: %v", scenario, stdout.String(), err)
	}
}

// TestKillDashNineYjs: a Hocuspocus provider writes markers and waits for
// unsyncedChanges to reach 0 (collabd sends SyncStatus only once an update
// is on disk); the server is then killed with SIGKILL and restarted, a few
// times; a y-websocket provider then reads every marker back (set check:
// lost = 0).
func TestKillDashNineYjs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a subprocess")
	}
	bin := buildCollabd(t)
	data := t.TempDir()
	const cycles, markers = 3, 200
	var want []string
	for cycle := range cycles {
		cmd, url := startServe(t, bin, data)
		base := "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/v1/ws")
		var w struct {
			Unsynced int `json:"unsynced"`
		}
		prefix := fmt.Sprintf("c%d.", cycle)
		doors(t, base, "write", map[string]any{"door": "hocuspocus", "doc": "notes/kill", "markers": markers, "prefix": prefix}, &w)
		_ = cmd.Process.Signal(syscall.SIGKILL) // at once: nothing after the provider's "synced" may be needed
		_ = cmd.Wait()
		if w.Unsynced != 0 {
			t.Fatalf("cycle %d: the provider returned with %d unsynced changes", cycle, w.Unsynced)
		}
		for i := range markers {
			want = append(want, fmt.Sprintf("<%s%d>", prefix, i))
		}
	}
	cmd, url := startServe(t, bin, data)
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/v1/ws")
	var r struct {
		T string `json:"t"`
	}
	doors(t, base, "read", map[string]any{"door": "y-websocket", "doc": "notes/kill"}, &r)
	lost := 0
	for _, m := range want {
		if !strings.Contains(r.T, m) {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d markers acked by SyncStatus were lost across %d SIGKILLs", lost, len(want), cycles)
	}
	t.Logf("%d markers synced through Hocuspocus across %d SIGKILLs: lost 0", len(want), cycles)

	// The stopped server's file verifies, Yjs document included, and
	// exports offline as the providers see it.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if out, err := exec.Command(bin, "verify", filepath.Join(data, "collabd.db")).CombinedOutput(); err != nil {
		t.Fatalf("verify of a file with a Yjs document: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "export", "--data", data, "--doc", "notes/kill", "--root", "t").Output()
	if err != nil || string(out) != r.T {
		t.Fatalf("offline export of the Yjs document: %v, %d bytes, want the %d the providers read", err, len(out), len(r.T))
	}
	js, err := exec.Command(bin, "export", "--data", data, "--doc", "notes/kill", "--format", "json").Output()
	if err != nil || !strings.Contains(string(js), `"kind":"yjs"`) {
		t.Fatalf("offline JSON export: %v %s", err, js)
	}
}
