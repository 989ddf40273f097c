package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what a collabd token grants: a user (subject and display name)
// and documents by pattern, each read-only ("r") or read-write ("rw").
// Tokens are JWTs signed with HS256 and the server's secret, or with RS256,
// ES256 or EdDSA and a private key whose public half the server has
// (Config.AuthPublicKeys, Config.AuthJWKSURL); the auth callback's answers
// become Claims too (authn.go).
type Claims struct {
	Name  string   `json:"name,omitempty"`  // display name shown to others (presence); default: the subject
	Color string   `json:"color,omitempty"` // cursor color (CSS); default: derived from the subject
	Docs  []string `json:"docs"`            // "pattern:rw" or "pattern:r"; '*' in a pattern matches any run of characters
	jwt.RegisteredClaims
}

// Access is what a session may do with one document.
type Access int

// Access levels. The zero value grants nothing.
const (
	AccessNone Access = iota
	AccessRead
	AccessWrite
)

var (
	errNoToken     = errors.New("server: no token")
	errBadToken    = errors.New("server: token does not verify")
	errExpired     = errors.New("server: token expired")
	errBadDocGrant = errors.New("server: token has a malformed document grant")
)

// NewToken signs claims with secret (for `collabd token` and tests).
func NewToken(secret []byte, c Claims) (string, error) {
	for _, g := range c.Docs {
		if _, _, err := parseGrant(g); err != nil {
			return "", err
		}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// access returns the best access the claims grant to doc.
func (c *Claims) access(doc string) Access {
	best := AccessNone
	for _, g := range c.Docs {
		pattern, a, err := parseGrant(g)
		if err == nil && a > best && match(pattern, doc) {
			best = a
		}
	}
	return best
}

// grantsAll reports whether the claims grant need on every document: a
// grant whose pattern is "*".
func (c *Claims) grantsAll(need Access) bool {
	for _, g := range c.Docs {
		if pattern, a, err := parseGrant(g); err == nil && pattern == "*" && a >= need {
			return true
		}
	}
	return false
}

func parseGrant(g string) (string, Access, error) {
	i := strings.LastIndexByte(g, ':')
	if i <= 0 {
		return "", AccessNone, fmt.Errorf("%w: %q (want pattern:r or pattern:rw)", errBadDocGrant, g)
	}
	switch g[i+1:] {
	case "r":
		return g[:i], AccessRead, nil
	case "rw":
		return g[:i], AccessWrite, nil
	}
	return "", AccessNone, fmt.Errorf("%w: %q (want pattern:r or pattern:rw)", errBadDocGrant, g)
}

// match reports whether s matches pattern, where '*' matches any run of
// characters (including '/') and everything else matches itself.
func match(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	rest := pattern[star+1:]
	for i := star; i <= len(s); i++ {
		if match(rest, s[i:]) {
			return true
		}
	}
	return false
}

// requestToken returns a token from the Authorization header or the token
// query parameter ("" if none).
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):])
	}
	return r.URL.Query().Get("token")
}
