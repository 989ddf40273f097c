package main

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// The Go examples of docs/INTEGRATION.md, verbatim (the tests check the
// document still holds them).
func collabdTokenRS256(key *rsa.PrivateKey, userID, name string, docs []string) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"sub":  userID,
		"name": name,
		"docs": docs,
		"iss":  "https://app.example.com",
		"aud":  "collabd",
		"iat":  now.Unix(),
		"exp":  now.Add(15 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "collabd-2026-01"
	return tok.SignedString(key)
}

const collabdTokenRS256Source = `func collabdTokenRS256(key *rsa.PrivateKey, userID, name string, docs []string) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"sub":  userID,
		"name": name,
		"docs": docs,
		"iss":  "https://app.example.com",
		"aud":  "collabd",
		"iat":  now.Unix(),
		"exp":  now.Add(15 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "collabd-2026-01"
	return tok.SignedString(key)
}`

func verifyCollabdSignature(secret []byte, header string, body []byte, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return false
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 || len(sigs) == 0 {
		return false
	}
	if d := time.Since(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

const verifyCollabdSignatureSource = `func verifyCollabdSignature(secret []byte, header string, body []byte, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return false
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 || len(sigs) == 0 {
		return false
	}
	if d := time.Since(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}`

func integrationDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/INTEGRATION.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docBlock returns the fenced code block of lang in doc that contains marker.
func docBlock(t *testing.T, doc, lang, marker string) string {
	t.Helper()
	for _, part := range strings.Split(doc, "```"+lang+"\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if ok && strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("docs/INTEGRATION.md has no %s block with %q", lang, marker)
	return ""
}

// signatureCases are headers and bodies every verifier must judge alike.
func signatureCases(secret []byte) []struct {
	name, header, body string
	ok                 bool
} {
	now := time.Now()
	body := `{"credential":"Bearer x","source":"authorization"}`
	good := server.Sign(secret, now, []byte(body))
	rotated := server.Sign([]byte("an-older-secret-an-older-secret!"), now, []byte(body)) + "," + good[strings.Index(good, "v1="):]
	return []struct {
		name, header, body string
		ok                 bool
	}{
		{"good", good, body, true},
		{"two v1 during a rotation", rotated, body, true},
		{"tampered body", good, strings.Replace(body, "x", "y", 1), false},
		{"wrong secret", server.Sign([]byte("wrong"), now, []byte(body)), body, false},
		{"stale", server.Sign(secret, now.Add(-10*time.Minute), []byte(body)), body, false},
		{"future", server.Sign(secret, now.Add(10*time.Minute), []byte(body)), body, false},
		{"no header", "", body, false},
		{"garbage", "t=abc,v1=zz", body, false},
	}
}

func TestIntegrationDocSignatureSnippets(t *testing.T) {
	doc := integrationDoc(t)
	if !strings.Contains(doc, verifyCollabdSignatureSource) {
		t.Fatal("docs/INTEGRATION.md no longer holds the Go verification snippet this test runs: update both")
	}
	secret := []byte("whsec-whsec-whsec-whsec-whsec-32")
	cases := signatureCases(secret)
	for _, c := range cases {
		if got := verifyCollabdSignature(secret, c.header, []byte(c.body), 5*time.Minute); got != c.ok {
			t.Errorf("Go %s: %v, want %v", c.name, got, c.ok)
		}
	}
	// The Node and Python snippets, run by their interpreters over the same
	// cases (one line per case: header, body, expected).
	var input strings.Builder
	for _, c := range cases {
		input.WriteString(c.header + "\t" + c.body + "\t" + strconv.FormatBool(c.ok) + "\n")
	}
	dir := t.TempDir()
	for _, run := range []struct {
		lang, marker, interp, file, driver string
	}{
		{"js", "export function verifyCollabdSignature", "node", "verify.mjs", `
import { readFileSync } from 'node:fs';
for (const line of readFileSync(0, 'utf8').split('\n').filter(Boolean)) {
  const [header, body, want] = line.split('\t');
  const got = verifyCollabdSignature(process.env.SECRET, header, Buffer.from(body));
  console.log(got === (want === 'true') ? 'ok' : 'FAIL ' + line);
}
`},
		{"python", "def verify_collabd_signature", "python3", "verify.py", `
import os, sys
for line in sys.stdin.read().splitlines():
    header, body, want = line.split("\t")
    got = verify_collabd_signature(os.environ["SECRET"].encode(), header, body.encode())
    print("ok" if got == (want == "true") else "FAIL " + line)
`},
	} {
		t.Run(run.interp, func(t *testing.T) {
			bin, err := exec.LookPath(run.interp)
			if err != nil {
				t.Skipf("%s not installed", run.interp)
			}
			src := docBlock(t, doc, run.lang, run.marker) + run.driver
			path := filepath.Join(dir, run.file)
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, path)
			cmd.Env = append(os.Environ(), "SECRET="+string(secret))
			cmd.Stdin = strings.NewReader(input.String())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", run.interp, err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(cases) {
				t.Fatalf("%s printed %d results for %d cases:\n%s", run.interp, len(lines), len(cases), out)
			}
			for i, l := range lines {
				if l != "ok" {
					t.Errorf("%s, case %q: %s", run.interp, cases[i].name, l)
				}
			}
		})
	}
}

// TestIntegrationDocRS256 mints a token with the Go RS256 example and has a
// server holding the public key (and the example's issuer and audience)
// accept it.
func TestIntegrationDocRS256(t *testing.T) {
	if !strings.Contains(integrationDoc(t), collabdTokenRS256Source) {
		t.Fatal("docs/INTEGRATION.md no longer holds the Go RS256 example this test runs: update both")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := server.New(server.Config{Store: store, AuthPublicKeys: []crypto.PublicKey{&key.PublicKey},
		AuthIssuer: "https://app.example.com", AuthAudience: "collabd"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer func() { _ = srv.Shutdown(t.Context()) }()
	tok, err := collabdTokenRS256(key, "u-ann", "Ann", []string{"notes/*:rw", "wiki:r"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/v1/docs/notes%2Fa/edits", 200},
		{"POST", "/v1/docs/wiki/edits", 403},
		{"GET", "/v1/docs/other/text", 403},
	} {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, strings.NewReader(`{"edits":[[0,0,"x"]]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}
