package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

var hookSecret = []byte("hook-secret-hook-secret-hook-sec")

// hookCall is what the auth callback received.
type hookCall struct {
	Credential string `json:"credential"`
	Source     string `json:"source"`
	Document   string `json:"document"`
	IP         string `json:"ip"`
	UserAgent  string `json:"userAgent"`
}

// hookServer is an application's auth callback: it verifies collabd's
// signature, records each call and answers by credential.
type hookServer struct {
	*httptest.Server
	t      *testing.T
	mu     sync.Mutex
	calls  []hookCall
	sigErr error // the first signature failure
}

const annAnswer = `{"sub":"ann","name":"Ann","color":"#e5484d","docs":["d:rw","ro:r"],"ttl":60}`

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{t: t}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if err := server.Verify(hookSecret, r.Header.Get("Collabd-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			h.mu.Lock()
			if h.sigErr == nil {
				h.sigErr = err
			}
			h.mu.Unlock()
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var c hookCall
		if err := json.Unmarshal(body, &c); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.calls = append(h.calls, c)
		h.mu.Unlock()
		answer := func(status int, body string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
		switch strings.TrimPrefix(c.Credential, "Bearer ") {
		case "ann-session", "ann-cookie", "opaque-hello", "ann-refresh":
			answer(200, annAnswer)
		case "bob-session":
			answer(200, `{"sub":"bob","docs":["d:rw"],"ttl":60}`)
		case "short":
			answer(200, `{"sub":"ann","docs":["d:rw"],"ttl":1}`)
		case "denied":
			answer(401, `{"error":"who are you"}`)
		case "forbidden":
			answer(403, `{}`)
		case "broken":
			answer(500, `oops`)
		case "badjson":
			answer(200, `{"sub":`)
		case "nosub":
			answer(200, `{"docs":["d:rw"],"ttl":60}`)
		case "badgrant":
			answer(200, `{"sub":"x","docs":["d:write"],"ttl":60}`)
		case "redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "slow":
			<-r.Context().Done() // until collabd gives up
		default:
			answer(401, `{}`)
		}
	}))
	t.Cleanup(h.Close)
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.sigErr != nil {
			t.Errorf("a callback's signature did not verify: %v", h.sigErr)
		}
	})
	return h
}

func (h *hookServer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func (h *hookServer) last() hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) == 0 {
		h.t.Fatal("the callback was not called")
	}
	return h.calls[len(h.calls)-1]
}

func startHookServer(t *testing.T, timeout time.Duration) (*testServer, *hookServer) {
	h := newHookServer(t)
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret, AuthWebhook: h.URL, WebhookSecret: hookSecret,
		AuthCookie: "sid", AuthWebhookTimeout: timeout})
	return ts, h
}

func apiCode(t *testing.T, body string) protocol.Code {
	t.Helper()
	var e struct{ Code protocol.Code }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Code
}

func TestAuthCallbackAllowsAndCaches(t *testing.T) {
	ts, h := startHookServer(t, 0)
	ann := http.Header{"Authorization": {"Bearer ann-session"}, "User-Agent": {"test-agent"}}
	if code, body := request(t, "POST", ts.http.URL+"/v1/docs/d/edits", ann, `{"edits":[[0,0,"hi"]]}`); code != 200 {
		t.Fatalf("POST with an allowed credential: %d %s", code, body)
	}
	want := hookCall{Credential: "Bearer ann-session", Source: "authorization", Document: "d", IP: "127.0.0.1", UserAgent: "test-agent"}
	if got := h.last(); got != want {
		t.Fatalf("callback request = %+v, want %+v", got, want)
	}
	// Same credential and document: answered from the cache.
	for range 3 {
		if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", ann, ""); code != 200 {
			t.Fatalf("GET: %d", code)
		}
	}
	if n := h.count(); n != 1 {
		t.Fatalf("callback calls after cached requests: %d, want 1", n)
	}
	// The answer's grants apply as a token's would: read-only on ro.
	if code, body := request(t, "POST", ts.http.URL+"/v1/docs/ro/edits", ann, `{"edits":[[0,0,"x"]]}`); code != 403 || apiCode(t, body) != protocol.CodeReadOnly {
		t.Fatalf("write to a read-only grant: %d %s", code, body)
	}
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/nope/text", ann, ""); code != 403 {
		t.Fatalf("GET of an ungranted document: %d, want 403", code)
	}
	if n := h.count(); n != 3 {
		t.Fatalf("callback calls (one per document): %d, want 3", n)
	}
	// A cookie is a credential too.
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", http.Header{"Cookie": {"other=1; sid=ann-cookie"}}, ""); code != 200 {
		t.Fatalf("GET with the auth cookie: %d", code)
	}
	if got := h.last(); got.Credential != "ann-cookie" || got.Source != "cookie" {
		t.Fatalf("cookie callback = %+v", got)
	}
	// SSE with ?token= carrying the app's credential.
	s := openSSE(t, ts.http.URL+"/v1/docs/d/events?token=opaque-hello", nil)
	if ev := s.next(true); ev.name != "snapshot" {
		t.Fatalf("SSE: %s", ev.name)
	}
	s.close()
	if got := h.last(); got.Credential != "opaque-hello" || got.Source != "query" || got.Document != "d" {
		t.Fatalf("SSE callback = %+v", got)
	}
	// A collabd token that verifies never reaches the callback; an expired
	// one is refused as expired, without asking the application.
	n := h.count()
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", bearer(token(t, "tok", time.Hour, "d:r")), ""); code != 200 {
		t.Fatalf("GET with a collabd token: %d", code)
	}
	if code, body := request(t, "GET", ts.http.URL+"/v1/docs/d/text", bearer(token(t, "tok", -time.Minute, "d:r")), ""); code != 401 || apiCode(t, body) != protocol.CodeTokenExpired {
		t.Fatalf("GET with an expired collabd token: %d %s", code, body)
	}
	if h.count() != n {
		t.Fatalf("collabd tokens reached the callback (%d calls, want %d)", h.count(), n)
	}
	_, metrics := request(t, "GET", ts.http.URL+"/metrics", nil, "")
	for name, want := range map[string]float64{
		`collabd_auth_callback_requests_total{result="allowed"}`: 5, // d, ro, nope, the cookie, SSE
		`collabd_auth_callback_cache_hits_total`:                 3,
		`collabd_auth_callback_seconds_count`:                    5,
	} {
		if got := metricValue(metrics, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestAuthCallbackSessions(t *testing.T) {
	ts, h := startHookServer(t, 0)
	// Credential on the upgrade request.
	c, m, code := dialRaw(t, ts.url, http.Header{"Authorization": {"Bearer ann-session"}}, "", 1)
	if _, ok := m.(*protocol.Welcome); !ok || code != 0 {
		t.Fatalf("upgrade with an allowed credential: %T %d", m, code)
	}
	if got := h.last(); got.Source != "authorization" || got.Document != "" {
		t.Fatalf("upgrade callback = %+v", got)
	}
	c.join("d")
	c.edit("d", 1, func(x *crdt.Text) error { return x.Insert(0, "a") })
	c.waitDurable(1)
	c.send(&protocol.Join{Doc: "nope", SV: c.doc.StateVector()})
	if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeForbidden {
		t.Fatalf("join of an ungranted document: %+v", e)
	}
	// Refresh with another credential of the same user keeps the session;
	// one of another user ends it.
	c.send(&protocol.Refresh{Token: "ann-refresh"})
	c.edit("d", 2, func(x *crdt.Text) error { return x.Insert(0, "b") })
	c.waitDurable(2)
	if got := h.last(); got.Credential != "ann-refresh" || got.Source != "refresh" {
		t.Fatalf("refresh callback = %+v", got)
	}
	c.send(&protocol.Refresh{Token: "bob-session"})
	if code := c.closeCode(); code != int(protocol.CodeUnauthorized) {
		t.Fatalf("refresh to another subject: close %d", code)
	}

	// Credential in the hello.
	if _, m, code := dialRaw(t, ts.url, http.Header{"User-Agent": {"test-agent"}}, "opaque-hello", 5); code != 0 {
		t.Fatalf("hello with an allowed credential: close %d", code)
	} else if _, ok := m.(*protocol.Welcome); !ok {
		t.Fatalf("hello: %T", m)
	}
	if got := h.last(); got.Credential != "opaque-hello" || got.Source != "hello" || got.IP != "127.0.0.1" || got.UserAgent != "test-agent" {
		t.Fatalf("hello callback = %+v", got)
	}
	// Fallback session create.
	if code, body := request(t, "POST", ts.http.URL+"/v1/rt", http.Header{"Cookie": {"sid=ann-cookie"}}, ""); code != 201 {
		t.Fatalf("fallback create with the auth cookie: %d %s", code, body)
	}
	if code, _ := request(t, "POST", ts.http.URL+"/v1/rt", http.Header{"Authorization": {"Bearer denied"}}, ""); code != 401 {
		t.Fatalf("fallback create refused: %d, want 401", code)
	}
	// The answer's ttl is the session's expiry.
	c, _, _ = dialRaw(t, ts.url, nil, "short", 7)
	if code := c.closeCode(); code != int(protocol.CodeTokenExpired) {
		t.Fatalf("session past the answer's ttl: close %d, want %d", code, protocol.CodeTokenExpired)
	}
}

// Refusals keep their meaning; everything else the application might do
// wrong denies with the retryable "overloaded", and is not cached.
func TestAuthCallbackFailsClosed(t *testing.T) {
	ts, h := startHookServer(t, 300*time.Millisecond)
	for _, c := range []struct {
		cred     string
		httpCode int
		code     protocol.Code
	}{
		{"denied", 401, protocol.CodeUnauthorized},
		{"unknown", 401, protocol.CodeUnauthorized},
		{"forbidden", 403, protocol.CodeForbidden},
		{"broken", 503, protocol.CodeOverloaded},
		{"badjson", 503, protocol.CodeOverloaded},
		{"nosub", 503, protocol.CodeOverloaded},
		{"badgrant", 503, protocol.CodeOverloaded},
		{"redirect", 503, protocol.CodeOverloaded},
		{"slow", 503, protocol.CodeOverloaded},
	} {
		t.Run(c.cred, func(t *testing.T) {
			before := h.count()
			for range 2 {
				code, body := request(t, "GET", ts.http.URL+"/v1/docs/d/text", bearer(c.cred), "")
				if code != c.httpCode || apiCode(t, body) != c.code {
					t.Fatalf("HTTP: %d %s, want %d (code %d)", code, body, c.httpCode, c.code)
				}
			}
			if n := h.count() - before; n != 2 {
				t.Fatalf("callback calls for two requests: %d, want 2 (refusals and errors are not cached)", n)
			}
			if _, _, code := dialRaw(t, ts.url, nil, c.cred, 3); code != int(c.code) {
				t.Fatalf("hello: close %d, want %d", code, c.code)
			}
			if _, _, code := dialRaw(t, ts.url, bearer(c.cred), "", 4); code != c.httpCode {
				t.Fatalf("upgrade: %d, want %d", code, c.httpCode)
			}
		})
	}
	_, metrics := request(t, "GET", ts.http.URL+"/metrics", nil, "")
	for name, want := range map[string]float64{
		`collabd_auth_callback_requests_total{result="unauthorized"}`: 2 * 4, // denied and unknown, twice each over HTTP, then hello and upgrade
		`collabd_auth_callback_requests_total{result="forbidden"}`:    4,
		`collabd_auth_callback_requests_total{result="error"}`:        6 * 4,
	} {
		if got := metricValue(metrics, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Without any credential the callback is not asked.
	n := h.count()
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", nil, ""); code != 401 {
		t.Fatalf("no credential: %d", code)
	}
	if h.count() != n {
		t.Fatal("the callback was asked about a request without a credential")
	}
}

func TestAuthCallbackConfig(t *testing.T) {
	for _, cfg := range []server.Config{
		{AuthWebhook: "http://127.0.0.1:1/auth"},                                 // no webhook secret
		{AuthWebhook: "http://127.0.0.1:1/auth", WebhookSecret: []byte("short")}, // weak secret
		{AuthWebhook: "ftp://127.0.0.1/auth", WebhookSecret: hookSecret},
	} {
		store := openStore(t)
		if srv, err := server.New(server.Config{Store: store, AuthWebhook: cfg.AuthWebhook, WebhookSecret: cfg.WebhookSecret}); err == nil || srv != nil {
			t.Errorf("New(%q, secret %q) = %v, want an error", cfg.AuthWebhook, cfg.WebhookSecret, err)
		}
	}
}

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}
