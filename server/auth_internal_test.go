package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseJWKSRejects(t *testing.T) {
	for _, c := range []struct {
		name, set string
		keys      int
		err       error
	}{
		{"empty", `{"keys":[]}`, 0, nil},
		{"unsupported skipped", `{"keys":[{"kty":"oct","k":"AA"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"OKP","crv":"X25519","x":"AA"}]}`, 0, nil},
		{"encryption key skipped", `{"keys":[{"kty":"OKP","crv":"Ed25519","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, 0, nil},
		{"Ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, 1, nil},
		{"alg mismatch skipped", `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, 0, nil},
		{"short Ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`, 0, ErrBadJWKS},
		{"EC point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`, 0, ErrBadJWKS},
		{"small RSA", `{"keys":[{"kty":"RSA","n":"` + "AQAB" + `","e":"AQAB"}]}`, 0, ErrBadJWKS},
		{"even RSA exponent", `{"keys":[{"kty":"RSA","n":"AQAB","e":"Ag"}]}`, 0, ErrBadJWKS},
		{"not JSON", `{"keys":`, 0, ErrBadJWKS},
		{"not base64", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"!!"}]}`, 0, ErrBadJWKS},
	} {
		keys, err := parseJWKS([]byte(c.set))
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) || len(keys) != c.keys {
			t.Errorf("%s: %d keys, %v; want %d, %v", c.name, len(keys), err, c.keys, c.err)
		}
	}
	many := `{"keys":[{"kty":"oct"}`
	for range maxJWKSKeys {
		many += `,{"kty":"oct"}`
	}
	if _, err := parseJWKS([]byte(many + `]}`)); !errors.Is(err, ErrBadJWKS) {
		t.Errorf("%d keys: %v", maxJWKSKeys+1, err)
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil && keys != nil {
			t.Fatal("keys with an error")
		}
		for _, k := range keys {
			if alg, err := keyAlg(k.key); err != nil || alg != k.alg {
				t.Fatalf("key %q: alg %s, %v", k.kid, alg, err)
			}
		}
	})
}

func FuzzHookAnswer(f *testing.F) {
	f.Add([]byte(`{"sub":"ann","name":"Ann","docs":["d:rw","x/*:r"],"ttl":60}`))
	f.Add([]byte(`{"sub":"ann","ttl":1e300}`))
	f.Add([]byte(`{"sub":"","docs":["d"]}`))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseHookAnswer(body, now)
		if err != nil {
			if !errors.Is(err, errAuthUnavailable) || c != nil {
				t.Fatalf("error %v (claims %v)", err, c)
			}
			return
		}
		if c.Subject == "" {
			t.Fatal("claims without a subject")
		}
		if ttl := c.ExpiresAt.Sub(now); ttl < 0 || ttl > maxHookTTL {
			t.Fatalf("ttl %s", ttl)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHookAnswerTTL(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		ttl  string
		want time.Duration
	}{
		{`60`, time.Minute}, {`0`, defaultHookTTL}, {`-5`, defaultHookTTL}, {`null`, defaultHookTTL},
		{`1e12`, maxHookTTL}, {`0.01`, time.Second},
	} {
		cl, err := parseHookAnswer([]byte(`{"sub":"a","ttl":`+c.ttl+`}`), now)
		if err != nil {
			t.Fatalf("ttl %s: %v", c.ttl, err)
		}
		if got := cl.ExpiresAt.Sub(now); got != c.want {
			t.Errorf("ttl %s: expiry in %s, want %s", c.ttl, got, c.want)
		}
	}
}

func TestClaimsCacheLRU(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newClaimsCache(2)
	claims := func(sub string, ttl time.Duration) *Claims {
		return &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
	}
	c.put(cacheKey("a", ""), claims("a", time.Minute))
	c.put(cacheKey("b", ""), claims("b", time.Minute))
	if c.get(cacheKey("a", ""), now) == nil { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(cacheKey("c", ""), claims("c", time.Second))
	if c.get(cacheKey("b", ""), now) != nil || c.len() != 2 {
		t.Fatalf("b should have been evicted (len %d)", c.len())
	}
	if c.get(cacheKey("a", "doc"), now) != nil {
		t.Fatal("the key must include the document")
	}
	if c.get(cacheKey("c", ""), now.Add(time.Second)) != nil || c.len() != 1 {
		t.Fatal("an expired answer was served")
	}
}

// Concurrent requests with one credential make one callback request.
func TestAuthHookSingleFlight(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		<-release
		_, _ = io.WriteString(w, `{"sub":"ann","docs":["d:rw"],"ttl":60}`)
	}))
	defer app.Close()
	h, err := newAuthHook(app.URL, []byte("hook-secret-hook-secret-hook-sec"), 10*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, 10)
	h.onWait = func() { waiting <- struct{}{} }
	const n = 5
	results := make(chan *Claims, n)
	for range n {
		go func() {
			c, err := h.ask(context.Background(), hookRequest{Credential: "Bearer x", Document: "d"}, time.Now())
			if err != nil {
				c = nil
			}
			results <- c
		}()
	}
	deadline := time.After(10 * time.Second)
	for range n - 1 {
		select {
		case <-waiting:
		case <-deadline:
			t.Fatal("requests did not join the call in flight")
		}
	}
	close(release)
	for range n {
		if c := <-results; c == nil || c.Subject != "ann" {
			t.Fatalf("claims %v", c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("callback requests: %d, want 1", calls)
	}
}
