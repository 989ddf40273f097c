package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// TestMain lets a test run the command in a subprocess (the test binary
// with COLLABD_TEST_MAIN=1 behaves as collabd): verify of a corrupted file
// may crash inside bbolt, and that must not take the test process down.
func TestMain(m *testing.M) {
	if os.Getenv("COLLABD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// liveServer is an in-process server over a store in data/collabd.db.
type liveServer struct {
	t     *testing.T
	data  string
	url   string
	store *storage.Store
	srv   *server.Server
	http  *httptest.Server
}

func startLive(t *testing.T) *liveServer {
	t.Helper()
	data := t.TempDir()
	store, err := storage.Open(filepath.Join(data, "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ls := &liveServer{t: t, data: data, url: hs.URL, store: store, srv: srv, http: hs}
	t.Cleanup(ls.stop)
	return ls
}

func (ls *liveServer) stop() {
	if ls.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ls.srv.Shutdown(ctx); err != nil {
		ls.t.Errorf("shutdown: %v", err)
	}
	ls.http.Close()
	if err := ls.store.Close(); err != nil {
		ls.t.Errorf("store close: %v", err)
	}
	ls.http = nil
}

// postEdits sends POST /v1/docs/{id}/edits with one insert.
func postEdits(ctx context.Context, base, id string, pos int, ins string) error {
	body := fmt.Sprintf(`{"edits": [[%d, 0, %q]]}`, pos, ins)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+docPath(id, "/edits"), strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST edits: %s", resp.Status)
	}
	return nil
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExportOnlineAndOffline(t *testing.T) {
	ls := startLive(t)
	ctx := context.Background()
	const id = "notes/today é"
	if err := postEdits(ctx, ls.url, id, 0, "hello 🌍"); err != nil {
		t.Fatal(err)
	}
	code, text, stderr := runCmd(t, "export", "-url", ls.url, "-doc", id, "-format", "text")
	if code != 0 || text != "hello 🌍" {
		t.Fatalf("export text = %d %q (stderr %q), want 0 %q", code, text, stderr, "hello 🌍")
	}
	code, js, stderr := runCmd(t, "export", "-url", ls.url, "-doc", id, "-format", "json")
	var info struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	if code != 0 || json.Unmarshal([]byte(js), &info) != nil || info.ID != id || info.Text != "hello 🌍" {
		t.Fatalf("export json = %d %q (stderr %q)", code, js, stderr)
	}
	snapFile := filepath.Join(t.TempDir(), "snap.collabd")
	if code, _, stderr := runCmd(t, "export", "-url", ls.url, "-doc", id, "-format", "snapshot", "-out", snapFile); code != 0 {
		t.Fatalf("export snapshot = %d (stderr %q)", code, stderr)
	}
	b, err := os.ReadFile(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := crdt.LoadSnapshot(b, crdt.Options{})
	if err != nil || doc.Text("body").String() != "hello 🌍" {
		t.Fatalf("snapshot loads %v, %v", doc, err)
	}
	if code, _, stderr := runCmd(t, "export", "-url", ls.url, "-doc", "missing", "-format", "text"); code != 1 || !strings.Contains(stderr, "4508") {
		t.Errorf("export of a missing document = %d %q, want 1 and the JSON error", code, stderr)
	}

	// Offline: refused while the server holds the store, then read directly.
	if code, _, stderr := runCmd(t, "export", "-data", ls.data, "-doc", id); code != 1 || !strings.Contains(stderr, "in use by a running server") {
		t.Errorf("offline export of a held store = %d %q, want 1 and 'in use'", code, stderr)
	}
	ls.stop()
	if code, text, stderr := runCmd(t, "export", "-data", ls.data, "-doc", id); code != 0 || text != "hello 🌍" {
		t.Errorf("offline export = %d %q (stderr %q)", code, text, stderr)
	}
	code, js, _ = runCmd(t, "export", "-data", ls.data, "-doc", id, "-format", "json")
	if code != 0 || json.Unmarshal([]byte(js), &info) != nil || info.Text != "hello 🌍" {
		t.Errorf("offline export json = %d %q", code, js)
	}
}

// TestBackupWhileEditing takes a backup while a goroutine keeps editing
// through the HTTP API, restores it, and checks that the restored store
// verifies and holds every edit acked before the backup began.
func TestBackupWhileEditing(t *testing.T) {
	ls := startLive(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Some documents with history, so the copy has real pages.
	for i := range 20 {
		for j := range 5 {
			if err := postEdits(ctx, ls.url, fmt.Sprintf("doc%02d", i), 0, strings.Repeat("x", 100+j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex // guards acked, editErr
		acked   int
		editErr error
	)
	firstAck := make(chan struct{})
	wg.Add(1)
	go func() { // the editor; stopped by cancel, waited for below
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			err := postEdits(ctx, ls.url, "live", 0, "a")
			mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					editErr = err
				}
				mu.Unlock()
				return
			}
			acked++
			mu.Unlock()
			if n == 0 {
				close(firstAck)
			}
		}
	}()
	select {
	case <-firstAck:
	case <-time.After(10 * time.Second):
		t.Fatal("the editor made no edit")
	}
	mu.Lock()
	before := acked
	mu.Unlock()
	out := filepath.Join(t.TempDir(), "backup.db")
	code, stdout, stderr := runCmd(t, "backup", "-url", ls.url, "-out", out)
	mu.Lock()
	after := acked
	mu.Unlock()
	cancel()
	wg.Wait()
	if editErr != nil {
		t.Fatalf("editor: %v", editErr)
	}
	if code != 0 || !strings.Contains(stderr, "backup: ") || !strings.Contains(stdout, "bytes") {
		t.Fatalf("backup = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("backup left %s.tmp behind", out)
	}
	if code, stdout, stderr := runCmd(t, "verify", out); code != 0 || !strings.Contains(stdout, "documents=21 ") {
		t.Fatalf("verify = %d %q %q", code, stdout, stderr)
	}

	data := t.TempDir()
	if code, _, stderr := runCmd(t, "restore", "-in", out, "-data", data); code != 0 {
		t.Fatalf("restore = %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "restore", "-in", out, "-data", data); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("restore over an existing store = %d %q, want 1 and a hint at --force", code, stderr)
	}
	if code, _, stderr := runCmd(t, "restore", "-in", out, "-data", data, "-force"); code != 0 {
		t.Errorf("restore -force = %d %q", code, stderr)
	}
	code, text, stderr := runCmd(t, "export", "-data", data, "-doc", "live")
	if code != 0 {
		t.Fatalf("export from the restored store = %d %q", code, stderr)
	}
	if n := len(text); n < before || n > after || strings.Trim(text, "a") != "" {
		t.Errorf("restored document has %d edits, want %d..%d", n, before, after)
	}
	t.Logf("backup during editing: %d edits before, %d restored, %d after", before, len(text), after)
}

func TestVerifyCorruptCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command in a subprocess")
	}
	ls := startLive(t)
	ctx := context.Background()
	for i := range 40 {
		for j := range 10 {
			if err := postEdits(ctx, ls.url, fmt.Sprintf("doc%02d", i), 0, strings.Repeat("y", 200+j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	good := filepath.Join(t.TempDir(), "good.db")
	if code, _, stderr := runCmd(t, "backup", "-url", ls.url, "-out", good); code != 0 {
		t.Fatalf("backup = %d %q", code, stderr)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Flip bytes in the middle third of the file: inside every page there
	// (past the 16-byte page header), so some of them are live pages.
	const page = 4096
	for off := len(b) / 3 / page * page; off < 2*len(b)/3; off += page {
		for i := off + 16; i < off+16+64 && i < len(b); i++ {
			b[i] ^= 0x5a
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file   string
		wantOK bool
	}{{good, true}, {bad, false}} {
		cmd := exec.Command(os.Args[0], "verify", c.file)
		cmd.Env = append(os.Environ(), "COLLABD_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		t.Logf("verify %s: %v\n%.600s", filepath.Base(c.file), err, out)
		if ok := err == nil; ok != c.wantOK {
			t.Errorf("verify %s: err %v, want ok=%v; output:\n%s", filepath.Base(c.file), err, c.wantOK, out)
		}
	}
}
