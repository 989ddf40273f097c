package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDefaultServeMuxHasNoPprof: the process-wide default mux serves no
// profiles (net/http/pprof's init registers them there; the debug listener
// has its own handlers instead). nats-server, linked in for cluster mode,
// imports net/http/pprof: cluster.go's init drops its registrations.
func TestDefaultServeMuxHasNoPprof(t *testing.T) {
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if _, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
			t.Errorf("http.DefaultServeMux serves %s (pattern %q): something imports net/http/pprof", path, pattern)
		}
	}
}

func TestDebugHandler(t *testing.T) {
	hs := httptest.NewServer(debugHandler())
	defer hs.Close()
	tests := []struct {
		path   string
		status int
		body   string // regexp the body must match (text answers)
		gzip   bool   // a gzipped protobuf profile
	}{
		{"/debug/pprof/", 200, `href="heap\?debug=1">heap<`, false},
		{"/debug/pprof/heap?debug=1", 200, `^heap profile: `, false},
		{"/debug/pprof/heap?gc=1&debug=1", 200, `^heap profile: `, false},
		{"/debug/pprof/goroutine?debug=1", 200, `^goroutine profile: total \d+`, false},
		{"/debug/pprof/goroutine?debug=2", 200, `goroutine \d+ \[`, false},
		{"/debug/pprof/heap", 200, "", true},
		{"/debug/pprof/allocs", 200, "", true},
		{"/debug/pprof/profile?seconds=1", 200, "", true},
		{"/debug/pprof/cmdline", 200, regexp.QuoteMeta(os.Args[0]), false},
		{"/debug/pprof/nosuch", 404, "unknown profile", false},
		{"/debug/pprof/heap?seconds=5", 400, "delta profiles", false},
		{"/debug/pprof/heap?debug=x", 400, "debug=", false},
		{"/debug/pprof/profile?seconds=0", 400, "seconds=", false},
		{"/debug/vars", 404, "", false},
		{"/", 404, "", false},
	}
	for _, tc := range tests {
		resp, err := http.Get(hs.URL + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d (%q)", tc.path, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.body != "" && !regexp.MustCompile(tc.body).Match(body) {
			t.Errorf("GET %s body = %.200q, want a match of %q", tc.path, body, tc.body)
		}
		if tc.gzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Errorf("GET %s: not a gzipped profile: %v", tc.path, err)
				continue
			}
			if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
				t.Errorf("GET %s: gunzip %d bytes, err %v", tc.path, len(b), err)
			}
		}
	}
}

// TestDebugAddrServe runs "collabd serve --debug-addr" (this test binary
// as collabd, see TestMain): the profiles are on the debug address only;
// the public address answers 404 for every debug path, including the
// /debug/vars a dependency registers on http.DefaultServeMux.
func TestDebugAddrServe(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve", "--addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "info")
	cmd.Env = append(os.Environ(), "COLLABD_TEST_MAIN=1")
	// Both outputs go through io.Pipes read to the end, so the child never
	// blocks on them; Wait (in its own goroutine) closes them when it exits.
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		_ = outW.Close()
		_ = errW.Close()
		exited <- err
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("collabd serve exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("collabd serve did not exit within 30 s of SIGTERM")
		}
	}()
	// The debug address is logged (stderr), the public one printed (stdout).
	debugc := make(chan string, 1)
	logc := make(chan string, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(errR)
		re := regexp.MustCompile(`msg="metrics and profiles" addr=(\S+)`)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				debugc <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, errR)
		logc <- log.String()
	}()
	mainc := make(chan string, 1)
	go func() {
		br := bufio.NewReader(outR)
		line, _ := br.ReadString('\n')
		mainc <- strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
		_, _ = io.Copy(io.Discard, br)
	}()
	var debugAddr, mainAddr string
	deadline := time.After(30 * time.Second)
	for debugAddr == "" || mainAddr == "" {
		select {
		case debugAddr = <-debugc:
		case mainAddr = <-mainc:
			if mainAddr == "" {
				t.Fatal("collabd serve printed no address")
			}
		case log := <-logc:
			t.Fatalf("collabd serve ended before it logged the debug address:\n%s", log)
		case <-deadline:
			t.Fatal("collabd serve did not start within 30 s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	get := func(base, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get(debugAddr, "/debug/pprof/heap?debug=1"); code != 200 || !strings.HasPrefix(body, "heap profile: ") {
		t.Errorf("debug address: GET /debug/pprof/heap?debug=1 = %d %.100q, want 200 and a heap profile", code, body)
	}
	if code, body := get(debugAddr, "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.HasPrefix(body, "goroutine profile: total ") {
		t.Errorf("debug address: GET /debug/pprof/goroutine?debug=1 = %d %.100q, want 200 and a goroutine profile", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/vars"} {
		if code, _ := get(mainAddr, path); code != http.StatusNotFound {
			t.Errorf("public address: GET %s = %d, want 404", path, code)
		}
	}
	if code, _ := get(mainAddr, "/readyz"); code != http.StatusOK {
		t.Errorf("public address: GET /readyz = %d, want 200 (the server is up)", code)
	}
}
