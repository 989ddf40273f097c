package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// signer is a private key and the JWT method it signs with.
type signer struct {
	method jwt.SigningMethod
	priv   crypto.Signer
	kid    string
}

func newSigner(t *testing.T, alg, kid string) signer {
	t.Helper()
	var priv crypto.Signer
	var err error
	var m jwt.SigningMethod
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		m = jwt.SigningMethodRS256
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		m = jwt.SigningMethodES256
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		m = jwt.SigningMethodEdDSA
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signer{method: m, priv: priv, kid: kid}
}

// token signs a token for sub with docs, valid for an hour; edit changes
// the claims before signing.
func (s signer) token(t *testing.T, sub string, docs []string, edit func(*server.Claims)) string {
	t.Helper()
	c := server.Claims{Docs: docs, RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	if edit != nil {
		edit(&c)
	}
	tok := jwt.NewWithClaims(s.method, c)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s signer) pem(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwk renders the public key as a JWK.
func (s signer) jwk() map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := s.priv.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": s.kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		return map[string]string{"kty": "EC", "kid": s.kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": s.kid, "crv": "Ed25519", "x": b64(k)}
	}
	panic("key type")
}

// jwksServer serves a JWK Set the test changes; every request is
// reported on fetched.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []signer
	fetches int
	fetched chan int // the fetch count after each request
}

func newJWKSServer(t *testing.T, keys ...signer) *jwksServer {
	j := &jwksServer{keys: keys, fetched: make(chan int, 1000)}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		j.fetches++
		n := j.fetches
		set := map[string]any{"keys": []any{map[string]string{"kty": "oct", "kid": "symmetric", "k": "c2VjcmV0"}}}
		for _, k := range j.keys {
			set["keys"] = append(set["keys"].([]any), k.jwk())
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
		j.fetched <- n
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) publish(keys ...signer) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

func (j *jwksServer) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetches
}

// waitFetch waits until the JWKS has been fetched at least n times.
func (j *jwksServer) waitFetch(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for j.count() < n {
		select {
		case <-j.fetched:
		case <-deadline:
			t.Fatalf("JWKS fetched %d times, want %d", j.count(), n)
		}
	}
}

// request makes an HTTP request with headers and returns the status and body.
func request(t *testing.T, method, u string, header http.Header, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// checkAccepted proves tok is accepted over WebSocket (hello and upgrade
// header) and HTTP (a write and a read of "d"), and that an ungranted
// document is still refused.
func checkAccepted(t *testing.T, ts *testServer, tok string, agent crdt.AgentID) {
	t.Helper()
	if _, m, code := dialRaw(t, ts.url, nil, tok, agent); code != 0 {
		t.Fatalf("WebSocket hello: close %d", code)
	} else if _, ok := m.(*protocol.Welcome); !ok {
		t.Fatalf("WebSocket hello: %T", m)
	}
	if _, m, code := dialRaw(t, ts.url, bearer(tok), "", agent+1); code != 0 {
		t.Fatalf("WebSocket upgrade header: %d", code)
	} else if _, ok := m.(*protocol.Welcome); !ok {
		t.Fatalf("WebSocket upgrade header: %T", m)
	}
	if code, body := request(t, "POST", ts.http.URL+"/v1/docs/d/edits", bearer(tok), `{"edits":[[0,0,"x"]]}`); code != 200 {
		t.Fatalf("POST edits: %d %s", code, body)
	}
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", bearer(tok), ""); code != 200 {
		t.Fatalf("GET text: %d", code)
	}
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/other/text", bearer(tok), ""); code != 403 {
		t.Fatalf("GET of an ungranted document: %d, want 403", code)
	}
}

// checkRefused proves tok is refused over WebSocket and HTTP with 4501/401.
func checkRefused(t *testing.T, ts *testServer, tok string) {
	t.Helper()
	if _, _, code := dialRaw(t, ts.url, nil, tok, 90); code != int(protocol.CodeUnauthorized) {
		t.Errorf("WebSocket hello: close %d, want %d", code, protocol.CodeUnauthorized)
	}
	if _, _, code := dialRaw(t, ts.url, bearer(tok), "", 91); code != http.StatusUnauthorized {
		t.Errorf("WebSocket upgrade: %d, want 401", code)
	}
	if code, _ := request(t, "GET", ts.http.URL+"/v1/docs/d/text", bearer(tok), ""); code != http.StatusUnauthorized {
		t.Errorf("GET: %d, want 401", code)
	}
}

func TestAsymmetricTokensFromPEM(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg, "")
			other := newSigner(t, alg, "")
			keys, err := server.ParsePublicKeys(append(newSigner(t, "ES256", "").pem(t), s.pem(t)...))
			if err != nil {
				t.Fatal(err)
			}
			ts := startServerWith(t, t.TempDir(), server.Config{AuthPublicKeys: keys, AuthSecret: secret})
			checkAccepted(t, ts, s.token(t, "ann", []string{"d:rw"}, nil), 1)
			// A PEM key verifies whatever kid the token names.
			s.kid = "some-kid"
			checkAccepted(t, ts, s.token(t, "ann", []string{"d:rw"}, nil), 3)
			checkAccepted(t, ts, token(t, "hs", time.Hour, "d:rw"), 5) // HS256 still works beside them
			checkRefused(t, ts, other.token(t, "mallory", []string{"*:rw"}, nil))
		})
	}
}

func TestAsymmetricTokensFromJWKS(t *testing.T) {
	signers := []signer{newSigner(t, "RS256", "r1"), newSigner(t, "ES256", "e1"), newSigner(t, "EdDSA", "o1")}
	j := newJWKSServer(t, signers...)
	ts := startServerWith(t, t.TempDir(), server.Config{AuthJWKSURL: j.URL})
	for i, s := range signers {
		t.Run(s.method.Alg(), func(t *testing.T) {
			checkAccepted(t, ts, s.token(t, "ann", []string{"d:rw"}, nil), crdt.AgentID(10*i+1))
			// The kid selects the key: the right alg under another key's kid does not verify.
			s.kid = signers[(i+1)%len(signers)].kid
			checkRefused(t, ts, s.token(t, "ann", []string{"d:rw"}, nil))
		})
	}
}

// The JWKS changes under a running server: a new kid is fetched on demand,
// on-demand fetches are rate limited, and a removed key stops verifying
// after the periodic refresh.
func TestJWKSRotation(t *testing.T) {
	a, b, c := newSigner(t, "RS256", "a"), newSigner(t, "ES256", "b"), newSigner(t, "EdDSA", "c")
	j := newJWKSServer(t, a)
	ts := startServerWith(t, t.TempDir(), server.Config{AuthJWKSURL: j.URL, JWKSMinRefresh: time.Hour})
	if n := j.count(); n != 1 {
		t.Fatalf("fetches at start: %d, want 1", n)
	}
	checkAccepted(t, ts, a.token(t, "ann", []string{"d:rw"}, nil), 1)
	j.publish(a, b)
	checkAccepted(t, ts, b.token(t, "bob", []string{"d:rw"}, nil), 3)
	if n := j.count(); n != 2 {
		t.Fatalf("fetches after a new kid: %d, want 2", n)
	}
	// c is published too, but the last on-demand refresh was just now.
	j.publish(a, b, c)
	checkRefused(t, ts, c.token(t, "cy", []string{"d:rw"}, nil))
	if n := j.count(); n != 2 {
		t.Fatalf("fetches after unknown kids within the rate limit: %d, want 2", n)
	}
	_, metrics := request(t, "GET", ts.http.URL+"/metrics", nil, "")
	if got := metricValue(metrics, `collabd_jwks_fetches_total{result="ok"}`); got != 2 {
		t.Errorf("collabd_jwks_fetches_total{ok} = %v, want 2", got)
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	a, b := newSigner(t, "RS256", "a"), newSigner(t, "EdDSA", "b")
	j := newJWKSServer(t, a, b)
	ts := startServerWith(t, t.TempDir(), server.Config{AuthJWKSURL: j.URL, JWKSRefresh: 20 * time.Millisecond, JWKSMinRefresh: time.Hour})
	checkAccepted(t, ts, b.token(t, "bob", []string{"d:rw"}, nil), 1)
	j.publish(a)
	// The refresh loop is sequential: once a second fetch after the
	// change has begun, the first one's keys are installed.
	j.waitFetch(t, j.count()+2)
	checkRefused(t, ts, b.token(t, "bob", []string{"d:rw"}, nil))
	checkAccepted(t, ts, a.token(t, "ann", []string{"d:rw"}, nil), 3)
}

func TestJWKSConfigErrors(t *testing.T) {
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"keys":[`+strings.Repeat(" ", 2<<20)+`]}`)
	}))
	defer huge.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer down.Close()
	for _, c := range []struct {
		url  string
		want error
	}{
		{"http://example.com/jwks", server.ErrJWKSURL},
		{"ftp://127.0.0.1/jwks", server.ErrJWKSURL},
		{down.URL, server.ErrJWKSFetch},
		{huge.URL, server.ErrBadJWKS},
	} {
		srv, err := server.New(server.Config{Store: store, AuthJWKSURL: c.url})
		if !errors.Is(err, c.want) {
			t.Errorf("New with JWKS %s: %v, want %v", c.url, err, c.want)
		}
		if srv != nil {
			t.Errorf("New with JWKS %s returned a server", c.url)
		}
	}
}

func TestIssuerAudience(t *testing.T) {
	s := newSigner(t, "ES256", "")
	keys, err := server.ParsePublicKeys(s.pem(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, t.TempDir(), server.Config{AuthPublicKeys: keys, AuthSecret: secret,
		AuthIssuer: "https://app.example", AuthAudience: "collabd"})
	with := func(iss string, aud ...string) string {
		return s.token(t, "ann", []string{"d:rw"}, func(c *server.Claims) { c.Issuer, c.Audience = iss, aud })
	}
	checkAccepted(t, ts, with("https://app.example", "collabd"), 1)
	checkAccepted(t, ts, with("https://app.example", "other", "collabd"), 3)
	checkRefused(t, ts, with("https://evil.example", "collabd"))
	checkRefused(t, ts, with("https://app.example", "other"))
	checkRefused(t, ts, with("", "collabd"))
	checkRefused(t, ts, with("https://app.example"))
	// HS256 tokens are held to the same rules.
	checkRefused(t, ts, token(t, "hs", time.Hour, "d:rw"))
}

// alg=none, algorithm confusion (an HS256 token whose HMAC key is the
// server's RSA public key) and algorithms collabd does not accept.
func TestTokenAlgorithmAttacks(t *testing.T) {
	rs := newSigner(t, "RS256", "k")
	pemKey := rs.pem(t)
	keys, err := server.ParsePublicKeys(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	j := newJWKSServer(t, rs)
	claims := server.Claims{Docs: []string{"*:rw"}, RegisteredClaims: jwt.RegisteredClaims{Subject: "mallory", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	sign := func(m jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaPub := rs.priv.Public().(*rsa.PublicKey)
	der := x509.MarshalPKCS1PublicKey(rsaPub)
	attacks := map[string]string{
		"alg none":                     sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ""),
		"alg none with kid":            sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k"),
		"HS256 keyed with the PEM":     sign(jwt.SigningMethodHS256, pemKey, ""),
		"HS256 keyed with the PEM+kid": sign(jwt.SigningMethodHS256, pemKey, "k"),
		"HS256 keyed with PKCS1 DER":   sign(jwt.SigningMethodHS256, der, "k"),
		"HS256 keyed with the modulus": sign(jwt.SigningMethodHS256, rsaPub.N.Bytes(), "k"),
		"RS512 with the right key":     sign(jwt.SigningMethodRS512, rs.priv, "k"),
		"PS256 with the right key":     sign(jwt.SigningMethodPS256, rs.priv, "k"),
	}
	for name, cfg := range map[string]server.Config{
		"PEM":           {AuthPublicKeys: keys},
		"PEM and HS256": {AuthPublicKeys: keys, AuthSecret: secret},
		"JWKS":          {AuthJWKSURL: j.URL},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServerWith(t, t.TempDir(), cfg)
			for attack, tok := range attacks {
				t.Run(attack, func(t *testing.T) { checkRefused(t, ts, tok) })
			}
			checkAccepted(t, ts, rs.token(t, "ann", []string{"d:rw"}, nil), 1)
		})
	}
}
