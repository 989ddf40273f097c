// Package e2e runs the real server (server.New over storage on a loopback
// httptest server) against the real Go client (clients/go).
package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// testServer is a server over a store file in dir, listening on a fixed
// loopback address so that clients reconnect to it across restarts.
type testServer struct {
	t     *testing.T
	dir   string
	addr  string
	cfg   server.Config
	store *storage.Store
	srv   *server.Server
	http  *httptest.Server
}

func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	if cfg.IdleUnload == 0 {
		cfg.IdleUnload = time.Minute
	}
	if cfg.ShutdownRetry == 0 {
		cfg.ShutdownRetry = 20 * time.Millisecond
	}
	ts := &testServer{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", cfg: cfg}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	store, err := storage.Open(filepath.Join(ts.dir, "collabd.db"), storage.Options{})
	if err != nil {
		ts.t.Fatal(err)
	}
	cfg := ts.cfg
	cfg.Store = store
	srv, err := server.New(cfg)
	if err != nil {
		ts.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", ts.addr)
	if err != nil {
		ts.t.Fatalf("listen %s: %v", ts.addr, err)
	}
	ts.addr = ln.Addr().String()
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler()}}
	hs.Start()
	ts.store, ts.srv, ts.http = store, srv, hs
}

func (ts *testServer) url() string { return "ws://" + ts.addr + "/v1/ws" }

func (ts *testServer) stop() {
	if ts.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	ts.http.Close()
	if err := ts.store.Close(); err != nil {
		ts.t.Errorf("store close: %v", err)
	}
	ts.http = nil
}

// restart stops the server and starts a new one over the same store file,
// on the same address.
func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	ts.start()
}

// netSwitch is a dialer hook: it records every connection so a test can cut
// them abruptly, and can refuse new ones (offline).
type netSwitch struct {
	mu      sync.Mutex // guards conns, offline
	conns   []net.Conn
	offline bool
}

var errOffline = errors.New("test: offline")

func (n *netSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.offline {
		return nil, errOffline
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		n.conns = append(n.conns, c)
	}
	return c, err
}

// cut closes every connection abruptly (no close frame).
func (n *netSwitch) cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.conns = nil
}

func (n *netSwitch) setOffline(off bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.offline = off
}

// dialClient connects a client with fast backoff through sw (may be nil).
func dialClient(t *testing.T, url string, agent crdt.AgentID, sw *netSwitch) *collab.Client {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if sw != nil {
		d.NetDialContext = sw.dial
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := collab.Dial(ctx, url, collab.Options{
		Agent: agent, Dialer: d, BackoffBase: 2 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func join(t *testing.T, c *collab.Client, doc string) *collab.Document {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.Join(ctx, doc)
	if err != nil {
		t.Fatalf("join %s: %v", doc, err)
	}
	return d
}

// snapshot is what a replica shows of a document: every root's text and
// the encoded state vector.
type snapshot struct {
	texts map[string]string
	sv    string
}

func snap(d *collab.Document) snapshot {
	s := snapshot{texts: map[string]string{}}
	_ = d.View(func(doc *crdt.Doc) {
		for _, r := range doc.Roots() {
			if txt := doc.Text(r).String(); txt != "" {
				s.texts[r] = txt
			}
		}
		s.sv = string(crdt.EncodeStateVector(doc.StateVector()))
	})
	return s
}

func (s snapshot) equal(o snapshot) bool {
	if s.sv != o.sv || len(s.texts) != len(o.texts) {
		return false
	}
	for k, v := range s.texts {
		if o.texts[k] != v {
			return false
		}
	}
	return true
}

// waitSV waits until d has seen exactly the ops of sv (or more), watching
// its change signal, with a deadline.
func waitSV(ctx context.Context, d *collab.Document, sv crdt.StateVector) error {
	for {
		if d.StateVector().Contains(sv) {
			return nil
		}
		select {
		case <-d.Changes():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
