package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/server"
)

// TestServeAuthFlags runs collabd serve with every way of authenticating
// at once: an Ed25519 key from --auth-public-key, an RSA key from
// --auth-jwks-url, the HS256 secret and the auth callback, all held to
// --auth-issuer.
func TestServeAuthFlags(t *testing.T) {
	dir := t.TempDir()
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(edPub)
	keyFile := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "kid": "rsa-1", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())}}})
	}))
	defer jwks.Close()
	hookSecret := "hook-secret-hook-secret-hook-sec"
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := server.Verify([]byte(hookSecret), r.Header.Get(server.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if !bytes.Contains(body, []byte(`"credential":"Bearer app-session"`)) {
			http.Error(w, "who", 401)
			return
		}
		_, _ = io.WriteString(w, `{"sub":"ann","docs":["x:rw"],"ttl":60}`)
	}))
	defer hook.Close()
	p := startServeProc(t, "--auth-public-key", keyFile, "--auth-jwks-url", jwks.URL, "--auth-issuer", "https://app.example",
		"--auth-secret", "s3cret-s3cret-s3cret-s3cret-32by", "--auth-webhook", hook.URL, "--webhook-secret", hookSecret)
	p.waitLog("collabd serving", "auth")
	sign := func(m jwt.SigningMethod, key any, kid, iss string) string {
		tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "u", "docs": []string{"x:rw"}, "iss": iss, "exp": time.Now().Add(time.Hour).Unix()})
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"Ed25519 from the PEM file", "Bearer " + sign(jwt.SigningMethodEdDSA, edPriv, "", "https://app.example"), 200},
		{"RSA from the JWKS", "Bearer " + sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", "https://app.example"), 200},
		{"HS256", "Bearer " + sign(jwt.SigningMethodHS256, []byte("s3cret-s3cret-s3cret-s3cret-32by"), "", "https://app.example"), 200},
		{"the auth callback", "Bearer app-session", 200},
		{"wrong issuer", "Bearer " + sign(jwt.SigningMethodEdDSA, edPriv, "", "https://evil.example"), 401},
		{"refused by the callback", "Bearer other", 401},
		{"nothing", "", 401},
	} {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/docs/x/edits", strings.NewReader(`{"edits":[[0,0,"x"]]}`))
		req.Header.Set("Content-Type", "application/json")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.want)
		}
	}
}

func TestServeAuthFlagErrors(t *testing.T) {
	dir := t.TempDir()
	notKey := filepath.Join(dir, "not-a-key.pem")
	if err := os.WriteFile(notKey, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--auth-public-key", notKey}, 2, "--auth-public-key"},
		{[]string{"--auth-public-key", filepath.Join(dir, "missing.pem")}, 2, "--auth-public-key"},
		{[]string{"--auth-webhook", "http://127.0.0.1:1/auth"}, 1, "secret"},
		{[]string{"--auth-jwks-url", "http://jwks.example/keys"}, 1, "https"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, c.args...)
		if code := run(args, &out, &errOut); code != c.code || !strings.Contains(errOut.String(), c.msg) {
			t.Errorf("serve %q: exit %d, %q; want %d mentioning %q", c.args, code, errOut.String(), c.code, c.msg)
		}
	}
}
