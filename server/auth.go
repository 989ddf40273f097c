package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what a collabd token grants: a user (subject and display name)
// and documents by pattern, each read-only ("r") or read-write ("rw").
// Tokens are JWTs signed with HS256 and the server's secret.
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

// verifyToken checks signature, algorithm and expiry, and returns the claims.
func verifyToken(secret []byte, token string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, errNoToken
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errBadToken, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", errBadToken)
	}
	for _, g := range c.Docs {
		if _, _, err := parseGrant(g); err != nil {
			return nil, err
		}
	}
	return &c, nil
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
