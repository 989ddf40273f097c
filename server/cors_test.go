package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/server"
)

// Pages on an allowed origin may use the HTTP API, SSE and the fallback:
// preflights are answered for exactly those origins, and their responses
// carry CORS headers; other origins get none, and their preflights 403.
func TestCORS(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AllowedOrigins: []string{"https://app.example.com"}})
	do := func(method, path, origin string, hdr map[string]string, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, httpURL(ts)+path, strings.NewReader(body))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	pre := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	resp := do("OPTIONS", "/v1/docs/c/edits", "https://app.example.com", pre, "")
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
		h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight from an allowed origin: %d %v", resp.StatusCode, h)
	}
	if resp := do("OPTIONS", "/v1/docs/c/edits", "https://evil.example", pre, ""); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do("POST", "/v1/docs/c/edits", "https://app.example.com", map[string]string{"Content-Type": "application/json"}, `{"edits":[[0,0,"x"]]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Collabd-Version") || resp.Header.Get("Vary") != "Origin" {
		t.Fatalf("POST from an allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("GET", "/v1/docs/c/text", "https://evil.example", nil, ""); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("GET from another origin got CORS headers: %v", resp.Header)
	}
	// The server's own origin is always allowed (its demo page).
	own := "http://" + strings.TrimPrefix(httpURL(ts), "http://")
	if resp := do("POST", "/v1/rt", own, nil, ""); resp.StatusCode != 201 {
		t.Fatalf("fallback session from the server's own origin: %d", resp.StatusCode)
	}
}

// With CORSCredentials the answers allow credentials.
func TestCORSCredentials(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AllowedOrigins: []string{"https://app.example.com"}, CORSCredentials: true})
	req, _ := http.NewRequest("OPTIONS", httpURL(ts)+"/v1/docs/c/events", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// Hooks.OnAuthenticate has the last word on authenticated requests.
func TestOnAuthenticateHook(t *testing.T) {
	var seen []string
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret, Hooks: server.Hooks{
		OnAuthenticate: func(_ context.Context, a server.AuthInfo) error {
			seen = append(seen, a.Claims.Subject+" "+a.Doc)
			if a.Claims.Subject == "mallory" {
				return errors.New("suspended account")
			}
			return nil
		},
	}})
	get := func(sub string) int {
		req, _ := http.NewRequest("GET", httpURL(ts)+"/v1/docs/d/text", nil)
		req.Header.Set("Authorization", "Bearer "+token(t, sub, time.Hour, "*:rw"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("mallory"); code != 403 {
		t.Errorf("refused by the hook: %d, want 403", code)
	}
	if code := get("alice"); code != 404 {
		t.Errorf("allowed by the hook: %d, want 404 (no such document)", code)
	}
	if len(seen) != 2 || seen[0] != "mallory d" || seen[1] != "alice d" {
		t.Errorf("hook saw %q", seen)
	}
}
