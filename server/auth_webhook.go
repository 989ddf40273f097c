package server

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of the auth callback. errAuthUnavailable (timeouts, app errors)
// always denies: the callback fails closed.
var (
	errAuthUnavailable = errors.New("server: auth callback unavailable")
	errAuthRefused     = errors.New("server: auth callback refused the credential")
	errAuthForbidden   = errors.New("server: auth callback forbids this")
)

// Auth callback bounds.
const (
	maxHookAnswer   = 64 << 10 // response body
	maxHookInflight = 64       // calls in flight; more are refused as overloaded
	defaultHookTTL  = 60 * time.Second
	maxHookTTL      = 24 * time.Hour
)

// hookRequest is the JSON body collabd POSTs to the auth callback.
type hookRequest struct {
	Credential string `json:"credential"`
	Source     string `json:"source"` // authorization, cookie, query, hello or refresh
	Document   string `json:"document,omitempty"`
	IP         string `json:"ip,omitempty"`
	UserAgent  string `json:"userAgent,omitempty"`
}

// hookAnswer is the callback's 200 answer.
type hookAnswer struct {
	Sub   string   `json:"sub"`
	Name  string   `json:"name"`
	Color string   `json:"color"`
	Docs  []string `json:"docs"`
	TTL   float64  `json:"ttl"` // seconds
}

// parseHookAnswer decodes and checks a 200 answer into claims valid from now.
func parseHookAnswer(body []byte, now time.Time) (*Claims, error) {
	var a hookAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: bad JSON: %v", errAuthUnavailable, err)
	}
	if a.Sub == "" {
		return nil, fmt.Errorf("%w: answer has no sub", errAuthUnavailable)
	}
	for _, g := range a.Docs {
		if _, _, err := parseGrant(g); err != nil {
			return nil, fmt.Errorf("%w: %v", errAuthUnavailable, err)
		}
	}
	ttl := defaultHookTTL
	if a.TTL > 0 {
		ttl = maxHookTTL
		if a.TTL < maxHookTTL.Seconds() { // compare before converting: a huge float overflows a Duration
			ttl = time.Duration(a.TTL * float64(time.Second))
		}
	}
	if ttl < time.Second {
		ttl = time.Second
	}
	return &Claims{Name: a.Name, Color: a.Color, Docs: a.Docs, RegisteredClaims: jwt.RegisteredClaims{
		Subject: a.Sub, ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), IssuedAt: jwt.NewNumericDate(now),
	}}, nil
}

// authHook asks the application's auth callback about credentials that
// are not collabd tokens, caching allowed answers for their ttl.
type authHook struct {
	url     string
	secret  []byte
	client  *http.Client
	slots   chan struct{} // one per call in flight
	cache   *claimsCache
	metrics *authMetrics

	mu       sync.Mutex // guards inflight
	inflight map[[sha256.Size]byte]*hookCall
	onWait   func() // tests: a request joined a call in flight
}

// hookCall is one callback request in flight; requests for the same
// credential and document wait for it instead of calling again.
type hookCall struct {
	done   chan struct{} // closed when claims and err are set
	claims *Claims
	err    error
}

func newAuthHook(raw string, secret []byte, timeout time.Duration, cacheSize int) (*authHook, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server: auth webhook URL %q: want http(s)://host/path", raw)
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w: the webhook secret signs auth callbacks: %d bytes, at least %d are needed",
			ErrWeakSecret, len(secret), MinSecretBytes)
	}
	return &authHook{
		url:    u.String(),
		secret: secret,
		client: &http.Client{
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		slots:    make(chan struct{}, maxHookInflight),
		cache:    newClaimsCache(cacheSize),
		inflight: make(map[[sha256.Size]byte]*hookCall),
	}, nil
}

// ask returns the claims for q.Credential: from the cache, from the
// call in flight for the same credential and document, or from the
// callback (200: allowed; 401: errAuthRefused; 403: errAuthForbidden;
// anything else, a timeout or a bad answer: errAuthUnavailable).
func (h *authHook) ask(ctx context.Context, q hookRequest, now time.Time) (*Claims, error) {
	key := cacheKey(q.Credential, q.Document)
	if c := h.cache.get(key, now); c != nil {
		h.metrics.hookHit()
		return c, nil
	}
	h.mu.Lock()
	if call, ok := h.inflight[key]; ok {
		h.mu.Unlock()
		if h.onWait != nil {
			h.onWait()
		}
		select {
		case <-call.done:
			return call.claims, call.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", errAuthUnavailable, ctx.Err())
		}
	}
	call := &hookCall{done: make(chan struct{})}
	h.inflight[key] = call
	h.mu.Unlock()
	// The first request's cancellation must not fail the others waiting:
	// the call is bounded by the client's timeout instead.
	call.claims, call.err = h.call(context.WithoutCancel(ctx), q, key, now)
	h.mu.Lock()
	delete(h.inflight, key)
	h.mu.Unlock()
	close(call.done)
	return call.claims, call.err
}

// call makes one callback request and caches an allowed answer.
func (h *authHook) call(ctx context.Context, q hookRequest, key [sha256.Size]byte, now time.Time) (*Claims, error) {
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return nil, fmt.Errorf("%w: %d calls in flight", errAuthUnavailable, maxHookInflight)
	}
	body, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAuthUnavailable, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAuthUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "collabd")
	req.Header.Set(SignatureHeader, Sign(h.secret, now, body))
	start := time.Now()
	c, err := h.do(req, now)
	result := "allowed"
	switch {
	case errors.Is(err, errAuthRefused):
		result = "unauthorized"
	case errors.Is(err, errAuthForbidden):
		result = "forbidden"
	case err != nil:
		result = "error"
	}
	h.metrics.hookCall(result, time.Since(start))
	if err != nil {
		return nil, err
	}
	h.cache.put(key, c)
	return c, nil
}

// do sends the callback request and reads its answer.
func (h *authHook) do(req *http.Request, now time.Time) (*Claims, error) {
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAuthUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxHookAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAuthUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, errAuthRefused
	case http.StatusForbidden:
		return nil, errAuthForbidden
	default:
		return nil, fmt.Errorf("%w: HTTP %d", errAuthUnavailable, resp.StatusCode)
	}
	if len(answer) > maxHookAnswer {
		return nil, fmt.Errorf("%w: answer over %d bytes", errAuthUnavailable, maxHookAnswer)
	}
	return parseHookAnswer(answer, now)
}

// cacheKey hashes the credential, so the cache holds no credentials, and
// the document, since the application may answer per document.
func cacheKey(credential, doc string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(credential))
	h.Write([]byte{0})
	h.Write([]byte(doc))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// claimsCache is an LRU of callback answers, each valid until its
// claims expire.
type claimsCache struct {
	mu    sync.Mutex // guards order and items
	max   int
	order *list.List // of *cacheEntry, most recent first
	items map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key    [sha256.Size]byte
	claims *Claims
}

func newClaimsCache(max int) *claimsCache {
	return &claimsCache{max: max, order: list.New(), items: make(map[[sha256.Size]byte]*list.Element)}
}

func (c *claimsCache) get(key [sha256.Size]byte, now time.Time) *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil
	}
	ent := e.Value.(*cacheEntry)
	if !now.Before(ent.claims.ExpiresAt.Time) {
		c.order.Remove(e)
		delete(c.items, key)
		return nil
	}
	c.order.MoveToFront(e)
	return ent.claims
}

func (c *claimsCache) put(key [sha256.Size]byte, claims *Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*cacheEntry).claims = claims
		c.order.MoveToFront(e)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, claims: claims})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *claimsCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
