package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/collabd/collabd/server/webhook"
)

// serveProc is "collabd serve" run by this test binary (see TestMain).
type serveProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string

	mu     sync.Mutex // guards logs
	logs   []string
	more   chan struct{} // a log line arrived (capacity 1)
	exited chan struct{} // closed when the process has exited
}

// kill sends SIGKILL and waits for the process to end.
func (p *serveProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
}

func startServeProc(t *testing.T, args ...string) *serveProc {
	t.Helper()
	p, err := launchServeProc(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launchServeProc is startServeProc reporting failure instead of failing
// the test (it may run on a goroutine of the test: several processes that
// wait for each other to start, as a cluster's first nodes do).
func launchServeProc(t *testing.T, args ...string) (*serveProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "COLLABD_TEST_MAIN=1")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serveProc{t: t, cmd: cmd, more: make(chan struct{}, 1), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = outW.Close()
		_ = errW.Close()
		close(p.exited)
	}()
	go func() { // the logs, read to the end
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("collabd serve did not exit within 30 s of SIGTERM")
		}
	})
	line, err := bufio.NewReader(outR).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		return nil, fmt.Errorf("serve did not start: %q %v; logs:\n%s", line, err, p.logText())
	}
	p.addr = addr
	return p, nil
}

func (p *serveProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// waitLog waits for a log line containing every one of parts.
func (p *serveProc) waitLog(parts ...string) string {
	p.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.logs {
			all := true
			for _, s := range parts {
				all = all && strings.Contains(l, s)
			}
			if all {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-deadline:
			p.t.Fatalf("no log line with %q; logs:\n%s", parts, p.logText())
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 with serial.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "collabd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With --tls-cert/--tls-key the server speaks HTTPS with HTTP/2 (an SSE
// feed is one stream of a multiplexed connection), and SIGHUP swaps in a
// renewed certificate without a restart.
func TestServeTLSHTTP2AndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	p := startServeProc(t, "--tls-cert", certFile, "--tls-key", keyFile)
	p.waitLog("collabd serving", "tls=true", "wss://")
	// A fresh client each time (a new TLS handshake); the test reads the
	// certificate the server presents itself.
	client := func() *http.Client {
		tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // see above
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	c := client()
	resp, err := c.Get("https://" + p.addr + "/v1/docs/tls/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE over TLS: %s %q, want HTTP/2 and an event stream", resp.Proto, resp.Header.Get("Content-Type"))
	}
	if resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("serial %v, want 1", resp.TLS.PeerCertificates[0].SerialNumber)
	}
	resp.Body.Close()
	writeCert(t, dir, 2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog("SIGHUP: certificate reloaded")
	c2 := client()
	resp, err = c2.Get("https://" + p.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Fatalf("after SIGHUP: serial %d, want the renewed certificate's 2", got)
	}
}

// Without TLS the server speaks HTTP/2 cleartext (h2c) to clients that
// know it, beside HTTP/1.1.
func TestServeH2C(t *testing.T) {
	p := startServeProc(t)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("h2c: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
}

// --metrics-addr moves /metrics (and the profiles) off the public address.
func TestServeMetricsAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	p := startServeProc(t, "--metrics-addr", maddr)
	p.waitLog("metrics and profiles")
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + maddr + "/metrics"); code != 200 || !strings.Contains(body, "collabd_connections") {
		t.Errorf("metrics address /metrics = %d", code)
	}
	if code, _ := get("http://" + maddr + "/debug/pprof/heap?debug=1"); code != 200 {
		t.Errorf("metrics address /debug/pprof/heap = %d", code)
	}
	if code, _ := get("http://" + p.addr + "/metrics"); code != 404 {
		t.Errorf("public /metrics = %d, want 404", code)
	}
}

// --log-format json: one JSON object a line; the start line names the mode
// and version, and every refusal is logged with its reason.
func TestServeJSONLogsRefusals(t *testing.T) {
	p := startServeProc(t, "--log-format", "json", "--allowed-origins", "https://app.example.com")
	start := p.waitLog(`"msg":"collabd serving"`)
	var m map[string]any
	if err := json.Unmarshal([]byte(start), &m); err != nil {
		t.Fatalf("start line is not JSON: %q", start)
	}
	for _, k := range []string{"version", "mode", "allowed_origins", "demo", "tls"} {
		if _, ok := m[k]; !ok {
			t.Errorf("start line lacks %q: %s", k, start)
		}
	}
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/docs/x/edits", strings.NewReader(`{"edits":[[0,0,"x"]]}`))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site POST = %d", resp.StatusCode)
	}
	line := p.waitLog(`"msg":"refused"`, `"reason":"origin"`)
	if err := json.Unmarshal([]byte(line), &m); err != nil || m["origin"] != "https://evil.example" {
		t.Fatalf("refusal line %q", line)
	}
}

// Webhook events stored in the outbox survive kill -9: the receiver is
// down while events are made, the server is killed, and the restarted
// server delivers each of them, with the ids they had before.
func TestWebhookOutboxSurvivesKill9(t *testing.T) {
	secret := "kill9-webhook-secret-of-32-bytes"
	var mu sync.Mutex
	up := false
	got := make(chan string, 64)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header.Get("Collabd-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		ok := up
		mu.Unlock()
		if !ok {
			w.WriteHeader(503)
			return
		}
		got <- r.Header.Get("Collabd-Event-Id")
	}))
	defer rcv.Close()
	data := t.TempDir()
	args := []string{"--data", data, "--webhook", rcv.URL, "--webhook-secret", secret, "--event-debounce", "10ms"}
	p := startServeProc(t, args...)
	for i, id := range []string{"k1", "k2", "k3"} {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/docs/"+id+"/edits", strings.NewReader(`{"edits":[[0,0,"x"]]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("edit %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	// Wait until the outbox holds the six events (created + changed each).
	pending := func(addr string) []string {
		resp, err := http.Get("http://" + addr + "/v1/webhooks?state=pending")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Records []struct{ Event struct{ ID string } }
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		var ids []string
		for _, r := range out.Records {
			ids = append(ids, r.Event.ID)
		}
		return ids
	}
	var before []string
	for deadline := time.Now().Add(15 * time.Second); len(before) < 6; before = pending(p.addr) {
		if time.Now().After(deadline) {
			t.Fatalf("outbox holds %d events, want 6", len(before))
		}
		p.waitLog("webhook delivery failed") // the receiver is down: attempts fail
	}
	p.kill()
	mu.Lock()
	up = true
	mu.Unlock()
	startServeProc(t, args...)
	want := map[string]bool{}
	for _, id := range before {
		want[id] = true
	}
	for len(want) > 0 {
		select {
		case id := <-got:
			delete(want, id)
		case <-time.After(30 * time.Second):
			t.Fatalf("after the restart %d events never came: %v", len(want), want)
		}
	}
}
