package server

import (
	"context"
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

func bareServer(cfg Config) *Server { return &Server{cfg: cfg.withDefaults()} }

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
