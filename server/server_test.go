package server_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// testServer runs a Server over a store in dir on a loopback httptest server.
type testServer struct {
	t     *testing.T
	store *storage.Store
	srv   *server.Server
	http  *httptest.Server
	url   string
}

func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	store, err := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, IdleUnload: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ts := &testServer{t: t, store: store, srv: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"}
	t.Cleanup(ts.stop)
	return ts
}

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

// client is a bare protocol client over gorilla/websocket.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	doc  *crdt.Doc
}

func dial(t *testing.T, url string, agent crdt.AgentID) *client {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &client{t: t, conn: conn, doc: crdt.NewDoc(crdt.Options{Agent: agent})}
	c.send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{agent}, Client: "test"})
	if _, ok := c.read().(*protocol.Welcome); !ok {
		t.Fatal("no welcome")
	}
	return c
}

func (c *client) send(m protocol.Message) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
		c.t.Fatal(err)
	}
}

// read waits for the next frame that is not presence (presence frames come
// unasked; tests of presence use readAny), with a deadline.
func (c *client) read() protocol.Message {
	c.t.Helper()
	for {
		if m := c.readAny(); m.Type() != protocol.TypePresence {
			return m
		}
	}
}

// readAny waits for the next frame, with a deadline. It answers the
// server's keepalive Pings itself, as every client must.
func (c *client) readAny() protocol.Message {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ != websocket.BinaryMessage {
			c.t.Fatalf("frame type %d", typ)
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			c.t.Fatal(err)
		}
		if p, ok := m.(*protocol.Ping); ok { // the server only pings for keepalive
			c.send(&protocol.Pong{Nonce: p.Nonce})
			continue
		}
		return m
	}
}

// join joins doc and applies the sync chunks; it answers with what the server lacks.
func (c *client) join(doc string) {
	c.t.Helper()
	c.send(&protocol.Join{Doc: doc, SV: c.doc.StateVector()})
	for {
		m, ok := c.read().(*protocol.Sync)
		if !ok {
			c.t.Fatal("expected sync")
		}
		if err := c.doc.ApplyUpdate(m.Update); err != nil {
			c.t.Fatal(err)
		}
		if m.Final {
			if missing := c.doc.EncodeDiff(m.SV); !emptyUpdate(missing) {
				c.send(&protocol.Update{Doc: doc, Batch: 1 << 40, Update: missing})
			}
			return
		}
	}
}

func emptyUpdate(u []byte) bool {
	ops, err := crdt.DecodeUpdate(u, crdt.Limits{})
	return err == nil && len(ops) == 0
}

// edit applies f locally and sends the update as batch.
func (c *client) edit(doc string, batch uint64, f func(*crdt.Text) error) {
	c.t.Helper()
	if err := f(c.doc.Text("body")); err != nil {
		c.t.Fatal(err)
	}
	c.send(&protocol.Update{Doc: doc, Batch: batch, Update: c.doc.TakeUpdate()})
}

// closeCode waits for the server to close the connection and returns the code.
func (c *client) closeCode() int {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func TestEditFanOutAndAcks(t *testing.T) {
	ts := startServer(t, t.TempDir())
	a := dial(t, ts.url, 1)
	b := dial(t, ts.url, 2)
	a.join("d1")
	b.join("d1")
	a.edit("d1", 7, func(x *crdt.Text) error { return x.Insert(0, "hello") })

	var applied, durable bool
	for !applied || !durable {
		switch m := a.read().(type) {
		case *protocol.Ack:
			if m.Batch != 7 {
				t.Fatalf("ack for batch %d", m.Batch)
			}
			applied = applied || m.Status == protocol.AckApplied
			durable = durable || m.Status == protocol.AckDurable
			if m.Status == protocol.AckDurable && m.Durable < 5 {
				t.Errorf("durable watermark %d, want >= 5", m.Durable)
			}
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
	m, ok := b.read().(*protocol.Update)
	if !ok || m.Doc != "d1" {
		t.Fatalf("b got %T", m)
	}
	if err := b.doc.ApplyUpdate(m.Update); err != nil {
		t.Fatal(err)
	}
	if got := b.doc.Text("body").String(); got != "hello" {
		t.Fatalf("b has %q", got)
	}
}

func TestDurableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	a := dial(t, ts.url, 1)
	a.join("doc")
	a.edit("doc", 1, func(x *crdt.Text) error { return x.Insert(0, "persist me") })
	for {
		if m, ok := a.read().(*protocol.Ack); ok && m.Status == protocol.AckDurable {
			break
		}
	}
	ts.stop()
	ts2 := startServer(t, dir)
	c := dial(t, ts2.url, 3)
	c.join("doc")
	if got := c.doc.Text("body").String(); got != "persist me" {
		t.Fatalf("after restart: %q", got)
	}
}

func TestHostileFrames(t *testing.T) {
	ts := startServer(t, t.TempDir())
	tests := []struct {
		name string
		send func(c *client)
		want int
	}{
		{"text frame", func(c *client) { _ = c.conn.WriteMessage(websocket.TextMessage, []byte("hi")) }, int(protocol.CodeBadFrame)},
		{"array32 bomb", func(c *client) {
			_ = c.conn.WriteMessage(websocket.BinaryMessage, []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
		}, int(protocol.CodeBadFrame)},
		{"nested arrays", func(c *client) {
			_ = c.conn.WriteMessage(websocket.BinaryMessage, []byte(strings.Repeat("\x91", 1<<16)))
		}, int(protocol.CodeBadFrame)},
		// The WebSocket layer refuses an oversized frame from its header,
		// before reading the payload, with the standard 1009.
		{"frame too large", func(c *client) {
			_ = c.conn.WriteMessage(websocket.BinaryMessage, make([]byte, 2<<20))
		}, websocket.CloseMessageTooBig},
		{"forged agent", func(c *client) {
			other := crdt.NewDoc(crdt.Options{Agent: 99})
			_ = other.Text("body").Insert(0, "x")
			c.join("f")
			c.send(&protocol.Update{Doc: "f", Batch: 1, Update: other.TakeUpdate()})
		}, int(protocol.CodeForgedAgent)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.url, crdt.AgentID(100+i))
			tc.send(c)
			if got := c.closeCode(); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
		})
	}
	// The server is still alive and serving.
	ok := dial(t, ts.url, 500)
	ok.join("after")
}

func TestUpdateForDocumentNotJoined(t *testing.T) {
	ts := startServer(t, t.TempDir())
	c := dial(t, ts.url, 1)
	_ = c.doc.Text("body").Insert(0, "x")
	c.send(&protocol.Update{Doc: "nope", Batch: 3, Update: c.doc.TakeUpdate()})
	m, ok := c.read().(*protocol.Error)
	if !ok || m.Code != protocol.CodeNotJoined || m.Batch != 3 {
		t.Fatalf("got %+v", m)
	}
}
