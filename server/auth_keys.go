package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Errors about verification keys.
var (
	ErrBadKey     = errors.New("server: unusable verification key")
	ErrBadJWKS    = errors.New("server: malformed JWKS")
	ErrJWKSURL    = errors.New("server: JWKS URL must be https (http only on loopback)")
	ErrJWKSFetch  = errors.New("server: JWKS fetch failed")
	errUnknownKid = errors.New("server: no key for the token's kid")
)

// Bounds on keys and key sets from the network.
const (
	maxJWKSBytes   = 1 << 20 // a JWKS response body
	maxJWKSKeys    = 100     // keys in one set
	minRSABits     = 2048
	maxRSABits     = 8192 // verification cost grows with the modulus
	jwksRedirects  = 3
	defaultJWKSGap = 30 * time.Second
)

// verifyKey is one public key and the JWT algorithm it verifies.
type verifyKey struct {
	kid string // "" for keys from PEM files: tried whatever the token's kid
	alg string // "RS256", "ES256" or "EdDSA"
	key crypto.PublicKey
}

// keyAlg returns the JWT algorithm for a public key, checking its size and curve.
func keyAlg(k crypto.PublicKey) (string, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits (want %d to %d)", ErrBadKey, n, minRSABits, maxRSABits)
		}
		return "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: EC key on %s (want P-256)", ErrBadKey, k.Curve.Params().Name)
		}
		return "ES256", nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(k))
		}
		return "EdDSA", nil
	}
	return "", fmt.Errorf("%w: %T (want RSA, EC P-256 or Ed25519)", ErrBadKey, k)
}

// ParsePublicKeys reads the public keys in PEM data: "PUBLIC KEY" (PKIX:
// RSA, EC P-256 or Ed25519), "RSA PUBLIC KEY" (PKCS #1) and "CERTIFICATE"
// blocks, in any number. Other blocks (a private key pasted by mistake)
// are an error, and so is data with no key at all.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var k crypto.PublicKey
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("%w: PEM block %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", ErrBadKey, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		if _, err := keyAlg(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no PEM public key found", ErrBadKey)
	}
	return keys, nil
}

// jwk is the part of an RFC 7517 JSON Web Key collabd reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS decodes a JWK Set. Keys collabd cannot use for signatures
// (another kty or curve, "use": "enc", an "alg" it does not verify) are
// skipped; a usable key that is malformed rejects the whole set, so a bad
// publication never replaces good keys.
func parseJWKS(data []byte) ([]verifyKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadJWKS, len(data))
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJWKS, err)
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("%w: %d keys (at most %d)", ErrBadJWKS, len(set.Keys), maxJWKSKeys)
	}
	var keys []verifyKey
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, alg, err := j.public()
		if err != nil {
			return nil, fmt.Errorf("%w: key %d (kid %q): %v", ErrBadJWKS, i, j.Kid, err)
		}
		if k == nil || (j.Alg != "" && j.Alg != alg) {
			continue
		}
		keys = append(keys, verifyKey{kid: j.Kid, alg: alg, key: k})
	}
	return keys, nil
}

// public returns the key and its algorithm, or nil for a key type collabd
// does not use.
func (j jwk) public() (crypto.PublicKey, string, error) {
	b64 := func(s, name string, max int) ([]byte, error) {
		if len(s) > base64.RawURLEncoding.EncodedLen(max) {
			return nil, fmt.Errorf("%s too long", name)
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%s is not base64url", name)
		}
		return b, nil
	}
	var k crypto.PublicKey
	switch {
	case j.Kty == "RSA":
		n, err := b64(j.N, "n", maxRSABits/8)
		if err != nil {
			return nil, "", err
		}
		e, err := b64(j.E, "e", 4)
		if err != nil {
			return nil, "", err
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64()%2 == 0 || exp.Int64() > 1<<31-1 {
			return nil, "", errors.New("bad RSA exponent")
		}
		k = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
	case j.Kty == "EC" && j.Crv == "P-256":
		x, err := b64(j.X, "x", 32)
		if err != nil {
			return nil, "", err
		}
		y, err := b64(j.Y, "y", 32)
		if err != nil {
			return nil, "", err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, "", errors.New("P-256 coordinates must be 32 bytes")
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", err
		}
		k = pk
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := b64(j.X, "x", ed25519.PublicKeySize)
		if err != nil {
			return nil, "", err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, "", errors.New("Ed25519 x must be 32 bytes")
		}
		k = ed25519.PublicKey(x)
	default:
		return nil, "", nil
	}
	alg, err := keyAlg(k)
	if err != nil {
		return nil, "", err
	}
	return k, alg, nil
}

// checkJWKSURL allows https, and http only to a loopback host (tests, a
// sidecar).
func checkJWKSURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrJWKSURL, u.Redacted())
}

// jwksSource holds the keys fetched from a JWKS URL. It refreshes them
// every `every` (run, owned by the Server) and when a token names an
// unknown kid, at most once per minGap.
type jwksSource struct {
	url     string
	client  *http.Client
	every   time.Duration
	minGap  time.Duration
	log     *slog.Logger
	metrics *authMetrics

	mu         sync.Mutex // guards keys, lastDemand, inflight, lastErr
	keys       []verifyKey
	lastDemand time.Time     // last refresh caused by an unknown kid
	inflight   chan struct{} // closed when the fetch in flight ends; nil if none
	lastErr    error         // of the fetch that closed the last inflight
}

func newJWKSSource(raw string, timeout, every, minGap time.Duration, log *slog.Logger) (*jwksSource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSURL, err)
	}
	if err := checkJWKSURL(u); err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout: timeout,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= jwksRedirects {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(r.URL)
		},
	}
	return &jwksSource{url: u.String(), client: client, every: every, minGap: minGap, log: log}, nil
}

// current returns the keys (shared; callers do not modify them).
func (j *jwksSource) current() []verifyKey {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.keys
}

// refresh fetches the set, or waits for the fetch already in flight. On
// failure the previous keys stay.
func (j *jwksSource) refresh(ctx context.Context) error {
	j.mu.Lock()
	if ch := j.inflight; ch != nil {
		j.mu.Unlock()
		select {
		case <-ch:
			j.mu.Lock()
			defer j.mu.Unlock()
			return j.lastErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	j.inflight = ch
	j.mu.Unlock()

	keys, err := j.fetch(ctx)
	j.metrics.jwksFetch(err)
	j.mu.Lock()
	if err == nil {
		j.keys = keys
	}
	j.lastErr, j.inflight = err, nil
	j.mu.Unlock()
	close(ch)
	if err != nil {
		j.log.Warn("JWKS refresh failed; keeping the previous keys", "url", j.url, "err", err)
	} else {
		j.log.Debug("JWKS refreshed", "url", j.url, "keys", len(keys))
	}
	return err
}

// demand refreshes for a token whose kid is unknown, unless a refresh for
// that reason ran less than minGap ago. It reports whether it refreshed.
func (j *jwksSource) demand(ctx context.Context, now time.Time) bool {
	j.mu.Lock()
	if !j.lastDemand.IsZero() && now.Sub(j.lastDemand) < j.minGap {
		j.mu.Unlock()
		return false
	}
	j.lastDemand = now
	j.mu.Unlock()
	return j.refresh(ctx) == nil
}

func (j *jwksSource) fetch(ctx context.Context) ([]verifyKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSFetch, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSFetch, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", ErrJWKSFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSFetch, err)
	}
	return parseJWKS(body)
}

// run refreshes the keys every j.every until ctx ends.
func (j *jwksSource) run(ctx context.Context) {
	t := time.NewTicker(j.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = j.refresh(ctx) // logged; the previous keys stay
		}
	}
}
