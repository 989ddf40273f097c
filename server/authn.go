package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/protocol"
)

// authenticator is the one path every entry point (WebSocket upgrade,
// hello, refresh, fallback session, HTTP request) takes to turn a request's
// credentials into Claims. A nil *authenticator is development mode.
type authenticator struct {
	secret      []byte      // HS256; nil: no HS256
	static      []verifyKey // from PEM (Config.AuthPublicKeys)
	jwks        *jwksSource // nil: no JWKS URL
	issuer      string
	audience    string
	hook        *authHook // nil: no auth callback
	cookie      string    // cookie whose value is a credential for the hook
	metrics     *authMetrics
	onAuth      func(context.Context, AuthInfo) error // Hooks.OnAuthenticate; nil: none
	hookTimeout time.Duration
}

// authInput is what one request offers.
type authInput struct {
	Token      string // a candidate collabd token (Bearer, ?token=, hello, refresh)
	Credential string // what the auth callback gets ("" : Token)
	Source     string // where Credential came from (hookRequest.Source)
	Doc        string // the document, when known
	IP         string
	UserAgent  string
}

// newAuthenticator returns nil (development mode) when cfg configures no
// way to authenticate. With a JWKS URL it fetches the keys once (bounded
// by the fetch timeout) and fails if that fails; s.startAuth starts the
// periodic refresh.
func newAuthenticator(cfg Config) (*authenticator, error) {
	if len(cfg.AuthSecret) == 0 && len(cfg.AuthPublicKeys) == 0 && cfg.AuthJWKSURL == "" && cfg.AuthWebhook == "" {
		return nil, nil
	}
	if n := len(cfg.AuthSecret); n > 0 && n < MinSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, at least %d are needed (make one with: head -c 32 /dev/urandom | base64)",
			ErrWeakSecret, n, MinSecretBytes)
	}
	a := &authenticator{secret: cfg.AuthSecret, issuer: cfg.AuthIssuer, audience: cfg.AuthAudience, cookie: cfg.AuthCookie,
		metrics: newAuthMetrics(), onAuth: cfg.Hooks.OnAuthenticate, hookTimeout: cfg.HookTimeout}
	for _, k := range cfg.AuthPublicKeys {
		alg, err := keyAlg(k)
		if err != nil {
			return nil, err
		}
		a.static = append(a.static, verifyKey{alg: alg, key: k})
	}
	if cfg.AuthJWKSURL != "" {
		j, err := newJWKSSource(cfg.AuthJWKSURL, cfg.JWKSTimeout, cfg.JWKSRefresh, cfg.JWKSMinRefresh, cfg.Logger)
		if err != nil {
			return nil, err
		}
		j.metrics = a.metrics
		ctx, cancel := context.WithTimeout(context.Background(), cfg.JWKSTimeout)
		defer cancel()
		if err := j.refresh(ctx); err != nil {
			return nil, fmt.Errorf("server: first JWKS fetch from %s: %w", j.url, err)
		}
		a.jwks = j
	}
	if cfg.AuthWebhook != "" {
		h, err := newAuthHook(cfg.AuthWebhook, cfg.WebhookSecret, cfg.AuthWebhookTimeout, cfg.AuthCacheSize)
		if err != nil {
			return nil, err
		}
		h.metrics = a.metrics
		a.hook = h
	}
	return a, nil
}

// hasKeys reports whether any token verification key is configured.
func (a *authenticator) hasKeys() bool {
	return len(a.secret) > 0 || len(a.static) > 0 || a.jwks != nil
}

// authenticate returns the claims for in. A token that verifies against
// the configured keys wins; one whose signature verifies but whose claims
// do not (expired, wrong issuer or audience, no subject, a malformed
// grant) is refused as it is. Anything else (no token, not a JWT, an
// unknown key) goes to the auth callback when there is one.
func (a *authenticator) authenticate(ctx context.Context, in authInput, now time.Time) (*Claims, error) {
	c, err := a.credentials(ctx, in, now)
	if err != nil || a.onAuth == nil {
		return c, err
	}
	// The embedding program's last word (Hooks.OnAuthenticate).
	hctx, cancel := context.WithTimeout(ctx, a.hookTimeout)
	defer cancel()
	if err := a.onAuth(hctx, AuthInfo{Claims: c, Doc: in.Doc, IP: in.IP, UserAgent: in.UserAgent}); err != nil {
		return nil, fmt.Errorf("%w: %v", errAuthForbidden, err)
	}
	return c, nil
}

// AuthInfo is what Hooks.OnAuthenticate is asked about: the verified
// claims (from a token or the auth callback), the document when the entry
// point names one, and the client.
type AuthInfo struct {
	Claims    *Claims
	Doc       string
	IP        string
	UserAgent string
}

// credentials turns in into claims: a collabd token, else the callback.
func (a *authenticator) credentials(ctx context.Context, in authInput, now time.Time) (*Claims, error) {
	var tokenErr error = errNoToken
	if in.Token != "" && a.hasKeys() {
		c, err := a.verify(ctx, in.Token, now)
		if err == nil || a.hook == nil || signedByUs(err) {
			return c, err
		}
		tokenErr = err
	}
	if a.hook == nil {
		return nil, tokenErr
	}
	cred, src := in.Credential, in.Source
	if cred == "" {
		cred = in.Token
	}
	if cred == "" {
		return nil, errNoToken
	}
	return a.hook.ask(ctx, hookRequest{Credential: cred, Source: src, Document: in.Doc, IP: in.IP, UserAgent: in.UserAgent}, now)
}

// signedByUs reports whether a verification error came after the
// signature verified: the token is collabd's, and its refusal stands.
func signedByUs(err error) bool {
	return errors.Is(err, errExpired) || errors.Is(err, errBadClaims) || errors.Is(err, errBadDocGrant)
}

var errBadClaims = errors.New("server: token claims refused")

// verify checks a collabd token: an algorithm with a configured key
// (HS256 only with the secret; RS256, ES256 and EdDSA only with public
// keys of their type, so a public key is never used as an HMAC secret),
// the signature, expiry, issuer and audience when configured, a subject
// and well-formed grants.
func (a *authenticator) verify(ctx context.Context, token string, now time.Time) (*Claims, error) {
	var c Claims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256", "EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if a.issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.issuer))
	}
	if a.audience != "" {
		opts = append(opts, jwt.WithAudience(a.audience))
	}
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return a.keysFor(ctx, t, now) }, opts...)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errExpired
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return nil, fmt.Errorf("%w: %v", errBadClaims, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errBadToken, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", errBadClaims)
	}
	for _, g := range c.Docs {
		if _, _, err := parseGrant(g); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// keysFor returns the keys that may verify t: the secret for HS256; for
// the others, the PEM keys of that algorithm and the JWKS keys of that
// algorithm with the token's kid (any kid if the token has none). A kid
// not in the JWKS triggers one rate-limited refresh.
func (a *authenticator) keysFor(ctx context.Context, t *jwt.Token, now time.Time) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		if len(a.secret) == 0 {
			return nil, errors.New("HS256 is not configured")
		}
		return a.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	add := func(keys []verifyKey, byKid bool) {
		for _, k := range keys {
			if k.alg == alg && (!byKid || kid == "" || k.kid == kid) {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	add(a.static, false)
	if a.jwks != nil {
		keys := a.jwks.current()
		if kid != "" && !slices.ContainsFunc(keys, func(k verifyKey) bool { return k.kid == kid }) && a.jwks.demand(ctx, now) {
			keys = a.jwks.current()
		}
		add(keys, true)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: no %s key (kid %q)", errUnknownKid, alg, kid)
	}
	return set, nil
}

// start runs the JWKS refresh loop under the server's WaitGroup.
func (s *Server) startAuth() {
	if s.auth == nil || s.auth.jwks == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.auth.jwks.run(s.ctx)
	}()
}

// httpAuthInput collects what an HTTP request offers: a token from
// Authorization: Bearer or ?token=, and for the auth callback the whole
// Authorization header, else the configured cookie, else the token
// parameter.
func (s *Server) httpAuthInput(r *http.Request, doc string) authInput {
	in := authInput{Token: requestToken(r), Doc: doc, IP: s.clientIP(r), UserAgent: r.UserAgent()}
	if s.auth == nil {
		return in
	}
	if h := r.Header.Get("Authorization"); h != "" {
		in.Credential, in.Source = h, "authorization"
	} else if ck, err := r.Cookie(s.auth.cookie); s.auth.cookie != "" && err == nil && ck.Value != "" {
		in.Credential, in.Source = ck.Value, "cookie"
	} else if in.Token != "" {
		in.Credential, in.Source = in.Token, "query"
	}
	return in
}

// offered reports whether in carries something a could authenticate: a
// token, or a credential for the auth callback.
func (a *authenticator) offered(in authInput) bool {
	return a != nil && (in.Token != "" || (a.hook != nil && in.Credential != ""))
}

// authCode is the wire code for an authentication failure.
func authCode(err error) protocol.Code {
	switch {
	case errors.Is(err, errExpired):
		return protocol.CodeTokenExpired
	case errors.Is(err, errAuthForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, errAuthUnavailable):
		return protocol.CodeOverloaded
	}
	return protocol.CodeUnauthorized
}
