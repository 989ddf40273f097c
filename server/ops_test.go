package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// opsGet does a GET with an optional bearer token and returns the status
// and body.
func opsGet(t *testing.T, u, tok string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// metricValue reads one unlabelled sample (or a labelled one: name{...})
// from a Prometheus text exposition; -1 when absent.
func metricValue(body, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestOpsHealthAndReady(t *testing.T) {
	ts := startServer(t, t.TempDir())
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, body := opsGet(t, ts.http.URL+path, ""); code != http.StatusOK {
			t.Errorf("GET %s = %d %q, want 200", path, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := opsGet(t, ts.http.URL+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after Shutdown = %d, want 503", code)
	}
	if code, _, _ := opsGet(t, ts.http.URL+"/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz after Shutdown = %d, want 200 (alive, not ready)", code)
	}
}

func TestMetricsCountEdits(t *testing.T) {
	ts := startServer(t, t.TempDir())
	a := dial(t, ts.url, 1)
	a.join("m1")
	a.edit("m1", 3, func(x *crdt.Text) error { return x.Insert(0, "hello") })
	for durable := false; !durable; {
		if m, ok := a.read().(*protocol.Ack); ok && m.Batch == 3 {
			durable = m.Status == protocol.AckDurable
		}
	}
	// An update for a document not joined is answered with error 4508.
	a.send(&protocol.Update{Doc: "other", Batch: 9, Update: a.doc.TakeUpdate()})
	if m, ok := a.read().(*protocol.Error); !ok || m.Code != protocol.CodeNotJoined {
		t.Fatalf("got %#v, want error not joined", m)
	}
	code, hdr, raw := opsGet(t, ts.http.URL+"/metrics", "")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	body := string(raw)
	for _, c := range []struct {
		name string
		min  float64
	}{
		{"collabd_connections", 1},
		{"collabd_documents_loaded", 1},
		{"collabd_ops_applied_total", 5},
		{"collabd_updates_applied_total", 1},
		{"collabd_durable_ack_seconds_count", 1},
		{"collabd_store_commits_total", 1},
		{"collabd_store_commit_requests_total", 1},
		{"collabd_store_commit_max_batch", 1},
		{"collabd_store_documents", 1},
		{`collabd_errors_total{code="not joined"}`, 1},
		{"collabd_slow_closes_total", 0},
		{"collabd_presence_frames_dropped_total", 0},
		{"collabd_http_followers", 0},
		{"collabd_store_failed", 0},
	} {
		if got := metricValue(body, c.name); got < c.min {
			t.Errorf("%s = %v, want >= %v", c.name, got, c.min)
		}
	}
}

// startAuthServer is startServer with authentication on.
func startAuthServer(t *testing.T, secret []byte) (*httptest.Server, *storage.Store) {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, AuthSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return hs, store
}

func opsToken(t *testing.T, secret []byte, docs ...string) string {
	t.Helper()
	tok, err := server.NewToken(secret, server.Claims{Docs: docs, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "ops", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBackupEndpoint(t *testing.T) {
	secret := []byte("backup-test-secret-of-32-bytes-ok")
	hs, store := startAuthServer(t, secret)
	ctx := context.Background()
	for i := range 20 {
		if _, err := store.Append(ctx, "doc"+strconv.Itoa(i), []byte("opaque update")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		tok  string
		want int
	}{
		{"", http.StatusUnauthorized},
		{opsToken(t, secret, "doc*:rw"), http.StatusForbidden},
		{opsToken(t, secret, "*:r"), http.StatusOK},
	} {
		code, hdr, body := opsGet(t, hs.URL+"/v1/backup", c.tok)
		if code != c.want {
			t.Fatalf("GET /v1/backup = %d %q, want %d", code, body, c.want)
		}
		if code != http.StatusOK {
			continue
		}
		if ct := hdr.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := hdr.Get("Content-Disposition"); !strings.Contains(cd, `filename="collabd-`) {
			t.Errorf("Content-Disposition %q", cd)
		}
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := storage.Verify(ctx, path, storage.Options{})
		if err != nil {
			t.Fatalf("Verify(backup) = %v", err)
		}
		if rep.Documents != 20 {
			t.Errorf("backup holds %d documents, want 20", rep.Documents)
		}
	}
}
