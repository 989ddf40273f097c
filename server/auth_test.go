package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

var secret = []byte("test-secret-of-enough-length-32b")

func token(t *testing.T, sub string, ttl time.Duration, docs ...string) string {
	t.Helper()
	tok, err := server.NewToken(secret, server.Claims{Docs: docs, RegisteredClaims: jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialRaw connects and sends a hello with tok; it returns the client and
// the first frame or close code.
func dialRaw(t *testing.T, url string, header http.Header, tok string, agent crdt.AgentID) (*client, protocol.Message, int) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		if resp != nil {
			return nil, nil, resp.StatusCode
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &client{t: t, conn: conn, doc: crdt.NewDoc(crdt.Options{Agent: agent})}
	c.send(&protocol.Hello{Version: protocol.Version, Token: tok, Agents: []crdt.AgentID{agent}})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := conn.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); ok {
		return c, nil, ce.Code
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.Decode(b, protocol.DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return c, m, 0
}

func TestAuthMatrix(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	good := token(t, "alice", time.Hour, "notes/*:rw", "shared:r")
	tests := []struct {
		name   string
		header http.Header
		query  string
		hello  string
		want   int // close code or HTTP status; 0: welcome
	}{
		{"no token", nil, "", "", int(protocol.CodeUnauthorized)},
		{"garbage token", nil, "", "not-a-jwt", int(protocol.CodeUnauthorized)},
		{"wrong secret", nil, "", wrongSecret(t), int(protocol.CodeUnauthorized)},
		{"expired", nil, "", token(t, "alice", -time.Minute, "notes/*:rw"), int(protocol.CodeTokenExpired)},
		{"hello token", nil, "", good, 0},
		{"bearer header", http.Header{"Authorization": {"Bearer " + good}}, "", "", 0},
		{"query parameter", nil, "?token=" + good, "", 0},
		{"bad header refused before upgrade", http.Header{"Authorization": {"Bearer nope"}}, "", "", http.StatusUnauthorized},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, m, code := dialRaw(t, ts.url+tc.query, tc.header, tc.hello, crdt.AgentID(10+i))
			if code != tc.want {
				t.Fatalf("got code %d (%T), want %d", code, m, tc.want)
			}
			if tc.want == 0 {
				if _, ok := m.(*protocol.Welcome); !ok {
					t.Fatalf("got %T, want a welcome", m)
				}
				_ = c
			}
		})
	}
}

func wrongSecret(t *testing.T) string {
	tok, err := server.NewToken([]byte("another-secret-another-secret-32"), server.Claims{Docs: []string{"*:rw"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "mallory", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDocumentGrants(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	c, m, _ := dialRaw(t, ts.url, nil, token(t, "alice", time.Hour, "notes/*:rw", "shared:r"), 1)
	if _, ok := m.(*protocol.Welcome); !ok {
		t.Fatalf("got %T", m)
	}
	// Not granted: forbidden, the connection stays.
	c.send(&protocol.Join{Doc: "secret", SV: c.doc.StateVector()})
	if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeForbidden {
		t.Fatalf("join of an ungranted document: %+v", e)
	}
	// Read-only grant: joining works, writing is refused.
	c.join("shared")
	c.edit("shared", 5, func(x *crdt.Text) error { return x.Insert(0, "x") })
	if a, ok := c.read().(*protocol.Ack); !ok || a.Status != protocol.AckRejected || a.Batch != 5 {
		t.Fatalf("write to a read-only document: %+v", a)
	}
	if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeReadOnly {
		t.Fatalf("want CodeReadOnly, got %+v", e)
	}
	// A pattern grant with write access.
	c.join("notes/2026/todo")
	c.edit("notes/2026/todo", 6, func(x *crdt.Text) error { return x.Insert(0, "y") })
	c.waitDurable(6)
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	// Refreshed in time: the session outlives its first token.
	c, _, _ := dialRaw(t, ts.url, nil, token(t, "bob", 1500*time.Millisecond, "*:rw"), 1)
	c.send(&protocol.Refresh{Token: token(t, "bob", time.Hour, "*:rw")})
	c.join("d")
	c.edit("d", 1, func(x *crdt.Text) error { return x.Insert(0, "still here") })
	c.waitDurable(1)
	// Another subject's token is not a refresh.
	c.send(&protocol.Refresh{Token: token(t, "eve", time.Hour, "*:rw")})
	if got := c.closeCode(); got != int(protocol.CodeUnauthorized) {
		t.Fatalf("foreign refresh: close %d", got)
	}
	// Not refreshed: closed with CodeTokenExpired when the token runs out.
	d, _, _ := dialRaw(t, ts.url, nil, token(t, "bob", 1200*time.Millisecond, "*:rw"), 2)
	if got := d.closeCode(); got != int(protocol.CodeTokenExpired) {
		t.Fatalf("expiry: close %d, want %d", got, protocol.CodeTokenExpired)
	}
}

func TestOriginMatrix(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AllowedOrigins: []string{"https://app.example.com"}})
	host := strings.TrimPrefix(ts.http.URL, "http://")
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // native clients send none
		{"https://app.example.com", true},
		{"https://app.example.com.evil.com", false},
		{"http://app.example.com", false}, // scheme matters
		{"https://evil.com", false},
		{"http://" + host, true}, // the server's own origin is always allowed (its demo page, an app it serves)
		{"null", false},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(ts.url, h)
		if tc.ok != (err == nil) {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("origin %q: connected=%v (status %d), want %v", tc.origin, err == nil, status, tc.ok)
		}
		if conn != nil {
			_ = conn.Close()
		}
	}
}
