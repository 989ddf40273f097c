package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST edits: %s %s", resp.Status, b)
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

// goodBackup returns the bytes of a backup of a live server's store with a
// few dozen documents.
func goodBackup(t *testing.T) []byte {
	t.Helper()
	ls := startLive(t)
	for i := range 30 {
		if err := postEdits(context.Background(), ls.url, fmt.Sprintf("doc%02d", i), 0, strings.Repeat("z", 3000)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "good.db")
	if code, _, stderr := runCmd(t, "backup", "-url", ls.url, "-out", out); code != 0 {
		t.Fatalf("backup = %d %q", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runSub runs the command in a subprocess (the test binary as collabd) and
// returns its exit code and output. A crash (SIGBUS, a Go fatal error) is
// exit code 2 or a signal, never 1.
func runSub(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COLLABD_TEST_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after 60s", args)
	}
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return code, out.String(), errOut.String()
}

// TestTruncatedStoreCLI is issue 11 item 11 for the tools: verify, restore
// and serve given a truncated or damaged file print "truncated or corrupt"
// and exit 1 (in a subprocess: a SIGBUS would show as a crash, not exit 1);
// verify prints no "problems=0" summary for it; restore writes nothing.
func TestTruncatedStoreCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command in subprocesses")
	}
	good := goodBackup(t)
	ps := os.Getpagesize()
	flipped := bytes.Clone(good)
	flipped[16+40] ^= 1 // inside the first meta page: its checksum fails
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated or corrupt"},
		{"inside the meta pages", good[:ps+100], "truncated or corrupt"},
		{"mid-file", good[:len(good)/2+123], "truncated or corrupt"},
		{"last page missing", good[:len(good)-ps], "truncated or corrupt"},
		{"flipped meta byte", flipped, "truncated or corrupt"},
		{"not a bbolt file", bytes.Repeat([]byte("junk"), 10000), "not a bbolt database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bad := filepath.Join(dir, "t.db")
			if err := os.WriteFile(bad, c.b, 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runSub(t, "verify", bad)
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stdout, "problems=0") {
				t.Errorf("verify = exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, c.want)
			}
			data := filepath.Join(dir, "restored")
			code, _, stderr = runSub(t, "restore", "-in", bad, "-data", data)
			if code != 1 || !strings.Contains(stderr, "nothing restored") || !strings.Contains(stderr, c.want) {
				t.Errorf("restore = exit %d, stderr %q; want exit 1, nothing restored, %q", code, stderr, c.want)
			}
			if _, err := os.Stat(filepath.Join(data, "collabd.db")); !os.IsNotExist(err) {
				t.Errorf("restore of a bad file wrote collabd.db (%v)", err)
			}
			if c.name == "flipped meta byte" {
				return // serve opens it: bbolt uses the intact meta page
			}
			srvData := filepath.Join(dir, "serve")
			if err := os.MkdirAll(srvData, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(srvData, "collabd.db"), c.b, 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = runSub(t, "serve", "-addr", "127.0.0.1:0", "-data", srvData)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("serve = exit %d, stderr %q; want exit 1 and %q", code, stderr, c.want)
			}
		})
	}
	// backup verifies what it wrote with the same check: a server that
	// sends a truncated copy gets no backup file.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(good[:len(good)/2])
	}))
	defer hs.Close()
	out := filepath.Join(t.TempDir(), "b.db")
	code, _, stderr := runSub(t, "backup", "-url", hs.URL, "-out", out)
	if code != 1 || !strings.Contains(stderr, "truncated or corrupt") {
		t.Errorf("backup of a truncated stream = exit %d, stderr %q", code, stderr)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("backup left %s (%v)", p, err)
		}
	}
}

// TestWeakSecretRefused is issue 11 item 10: serve and token refuse an
// --auth-secret shorter than 32 bytes and say how to make one.
func TestWeakSecretRefused(t *testing.T) {
	for _, secret := range []string{"a", "s3cret", strings.Repeat("x", MinSecretBytes-1)} {
		for _, args := range [][]string{
			{"serve", "-addr", "127.0.0.1:0", "-data", t.TempDir(), "-auth-secret", secret},
			{"token", "-auth-secret", secret, "-sub", "alice", "-doc", "*:rw"},
		} {
			code, stdout, stderr := runCmd(t, args...)
			if code != 2 || !strings.Contains(stderr, "head -c 32 /dev/urandom | base64") || stdout != "" {
				t.Errorf("%s with a %d-byte secret = exit %d, stdout %q, stderr %q; want 2 and how to make one",
					args[0], len(secret), code, stdout, stderr)
			}
		}
		t.Setenv("COLLABD_AUTH_SECRET", secret)
		if code, _, stderr := runCmd(t, "token", "-sub", "alice", "-doc", "*:rw"); code != 2 || !strings.Contains(stderr, "at least 32") {
			t.Errorf("token with a %d-byte COLLABD_AUTH_SECRET = exit %d %q", len(secret), code, stderr)
		}
	}
	good := strings.Repeat("k", MinSecretBytes)
	if code, stdout, stderr := runCmd(t, "token", "-auth-secret", good, "-sub", "alice", "-doc", "*:rw"); code != 0 || stdout == "" {
		t.Errorf("token with a %d-byte secret = exit %d %q", len(good), code, stderr)
	}
	// A long enough secret passes the check; this serve then fails on its
	// address, after the check.
	code, _, stderr := runCmd(t, "serve", "-addr", "127.0.0.1:bad", "-data", t.TempDir(), "-auth-secret", good)
	if code != 1 || strings.Contains(stderr, "auth-secret") {
		t.Errorf("serve with a %d-byte secret = exit %d %q; want it past the secret check", len(good), code, stderr)
	}
}
