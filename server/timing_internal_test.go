package server

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/protocol"
)

// recordTransport records how its session was closed.
type recordTransport struct {
	mu     sync.Mutex // guards code
	code   protocol.Code
	frames int
}

func (r *recordTransport) writeFrames(f [][]byte, _ time.Time) error {
	r.mu.Lock()
	r.frames += len(f)
	r.mu.Unlock()
	return nil
}

func (*recordTransport) finish(<-chan struct{}) {}

func (r *recordTransport) closeWith(code protocol.Code, _ string) {
	r.mu.Lock()
	r.code = code
	r.mu.Unlock()
}

func (r *recordTransport) closed() protocol.Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code
}

func bareServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	return &Server{cfg: cfg, syncs: newBudget(cfg.SyncBudget)}
}

// A session is closed with CodeTokenExpired exactly when its token expires;
// a refresh moves the deadline.
func TestTokenExpiryTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := bareServer(Config{})
		rt := &recordTransport{}
		s := newSession(srv, rt, "s")
		exp := func(d time.Duration) *Claims {
			return &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u", ExpiresAt: jwt.NewNumericDate(time.Now().Add(d))}}
		}
		s.setExpiry(exp(2 * time.Second)) // whole seconds: JWT times have second precision
		time.Sleep(1900 * time.Millisecond)
		synctest.Wait()
		if rt.closed() != 0 {
			t.Fatal("closed before the token expired")
		}
		s.setExpiry(exp(time.Hour)) // a refresh
		time.Sleep(time.Second)
		synctest.Wait()
		if rt.closed() != 0 {
			t.Fatal("closed at the first token's expiry after a refresh")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := rt.closed(); got != protocol.CodeTokenExpired {
			t.Fatalf("closed with %v, want CodeTokenExpired", got)
		}
	})
}

// A fallback session ends when no stream is attached and no POST came for
// PingInterval+PongTimeout, and not before; a POST renews it.
func TestFallbackExpiryTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := bareServer(Config{PingInterval: 10 * time.Second, PongTimeout: 5 * time.Second, HelloTimeout: time.Hour})
		tr := &rtTransport{srv: srv, inbound: make(chan []byte, 4), posting: make(chan struct{}, 1), next: 1,
			wake: make(chan struct{}, 1), lastSeen: time.Now()}
		s := newSession(srv, tr, "fb")
		tr.s = s
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { defer close(done); tr.loop(ctx) }()
		time.Sleep(14 * time.Second)
		tr.touch(time.Now()) // a POST
		time.Sleep(14 * time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a session renewed 14 s ago ended (window 15 s)")
		default:
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("a silent session outlived its window")
		}
		s.mu.Lock()
		code := s.code
		s.mu.Unlock()
		if code != protocol.CodeNoPong {
			t.Fatalf("ended with %v, want no pong", code)
		}
	})
}

func TestClientIP(t *testing.T) {
	srv := bareServer(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}})
	for _, c := range []struct{ peer, xff, want string }{
		{"203.0.113.7:5000", "", "203.0.113.7"},                              // no proxy
		{"203.0.113.7:5000", "1.2.3.4", "203.0.113.7"},                       // an untrusted peer's header is ignored
		{"10.1.2.3:5000", "198.51.100.9", "198.51.100.9"},                    // one trusted proxy
		{"10.1.2.3:5000", "6.6.6.6, 198.51.100.9, 10.9.9.9", "198.51.100.9"}, // forged left entries skipped
		{"127.0.0.1:5000", "", "127.0.0.1"},                                  // a trusted peer without a header
		{"[::ffff:10.1.2.3]:5000", "198.51.100.9", "198.51.100.9"},           // IPv4-mapped peer
		{"10.1.2.3:5000", "10.4.4.4", "10.4.4.4"},                            // only proxies: the farthest
	} {
		r := &http.Request{RemoteAddr: c.peer, Header: http.Header{}}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := srv.clientIP(r); got != c.want {
			t.Errorf("clientIP(peer %s, XFF %q) = %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}
