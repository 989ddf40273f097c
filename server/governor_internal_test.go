package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// internalServer runs a Server (package-internal view) on loopback.
type internalServer struct {
	srv   *Server
	store *storage.Store
	http  *httptest.Server
}

func startInternal(t *testing.T, cfg Config) *internalServer {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	is := &internalServer{srv: srv, store: store, http: httptest.NewServer(srv.Handler())}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		is.http.Close()
		_ = store.Close()
	})
	return is
}

func (is *internalServer) post(t *testing.T, id, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", is.http.URL+"/v1/docs/"+id+"/edits", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (is *internalServer) text(t *testing.T, id string) (int, string) {
	t.Helper()
	resp, err := http.Get(is.http.URL + "/v1/docs/" + id + "/text")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wsClient is a minimal protocol client for internal tests.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func (is *internalServer) dial(t *testing.T, agent crdt.AgentID) *wsClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(is.http.URL, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &wsClient{t: t, conn: conn}
	c.send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{agent}, Client: "test"})
	c.await(func(m protocol.Message) bool { _, ok := m.(*protocol.Welcome); return ok })
	return c
}

func (c *wsClient) send(m protocol.Message) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
		c.t.Fatal(err)
	}
}

// await reads frames until match accepts one (a deadline of 10 s per frame).
func (c *wsClient) await(match func(protocol.Message) bool) protocol.Message {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			c.t.Fatal(err)
		}
		if p, ok := m.(*protocol.Ping); ok {
			c.send(&protocol.Pong{Nonce: p.Nonce})
			continue
		}
		if match(m) {
			return m
		}
	}
}

// joinSynced joins doc and waits for the final sync chunk.
func (c *wsClient) joinSynced(doc string) {
	c.t.Helper()
	c.send(&protocol.Join{Doc: doc})
	c.await(func(m protocol.Message) bool { s, ok := m.(*protocol.Sync); return ok && s.Final })
}

func errorOf(doc string) func(protocol.Message) bool {
	return func(m protocol.Message) bool { e, ok := m.(*protocol.Error); return ok && e.Doc == doc }
}

func testMetric(t *testing.T, is *internalServer, name string) string {
	t.Helper()
	resp, err := http.Get(is.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// At the loaded-document cap, documents nobody holds are unloaded least
// recently used first, and a load that finds none is refused with the
// retryable CodeOverloaded — the loaded count never passes the cap.
func TestGovernorCapsLoadedDocuments(t *testing.T) {
	const limit = 8
	is := startInternal(t, Config{MaxLoadedDocs: limit, IdleUnload: time.Hour, JoinRate: 1e6})
	for i := range 40 {
		if code := is.post(t, fmt.Sprint("d", i), `{"edits":[[0,0,"x"]]}`); code != 200 {
			t.Fatalf("POST d%d = %d", i, code)
		}
		if n := is.srv.reg.Loaded(); n > limit {
			t.Fatalf("after d%d: %d documents loaded, cap %d", i, n, limit)
		}
	}
	// Every evicted document reloads with its text.
	for _, id := range []string{"d0", "d17", "d39"} {
		if code, text := is.text(t, id); code != 200 || text != "x" {
			t.Errorf("GET %s/text = %d %q", id, code, text)
		}
	}
	// A session holding every slot: the next join is refused, retryable.
	c := is.dial(t, 9)
	for i := range limit {
		c.joinSynced(fmt.Sprint("held", i))
	}
	c.send(&protocol.Join{Doc: "one-too-many"})
	e := c.await(errorOf("one-too-many")).(*protocol.Error)
	if e.Code != protocol.CodeOverloaded || e.RetryAfterMs <= 0 {
		t.Fatalf("join past the cap: %v (retry %d ms), want CodeOverloaded with a retry hint", e.Code, e.RetryAfterMs)
	}
	// Over HTTP the same refusal is a 503 with Retry-After.
	resp, err := http.Get(is.http.URL + "/v1/docs/d5/text")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET at the cap = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Leaving one frees a slot for the next join.
	c.send(&protocol.Leave{Doc: "held0"})
	c.joinSynced("one-too-many")
	if n := is.srv.reg.Loaded(); n > limit {
		t.Fatalf("%d documents loaded, cap %d", n, limit)
	}
}

// Past the replica memory cap, updates that would grow a document are
// refused (retryable), never applied.
func TestGovernorCapsReplicaBytes(t *testing.T) {
	is := startInternal(t, Config{MaxReplicaBytes: owner.BaseBytes + 20<<10, IdleUnload: time.Hour})
	c := is.dial(t, 11)
	c.joinSynced("big")
	d := crdt.NewDoc(crdt.Options{Agent: 11})
	x := d.Text("body")
	accepted := 0
	for batch := uint64(1); ; batch++ {
		if batch > 50 {
			t.Fatalf("50 batches of 100 ops accepted under a %d-byte cap", is.srv.cfg.MaxReplicaBytes)
		}
		// 100 runs of one character each (inserted at the front, each its
		// own run): the estimate grows by at least 100 ops a batch.
		for j := range 100 {
			if err := x.Insert(0, fmt.Sprint(j%10)); err != nil {
				t.Fatal(err)
			}
		}
		c.send(&protocol.Update{Doc: "big", Batch: batch, Update: d.TakeUpdate()})
		m := c.await(func(m protocol.Message) bool {
			a, ok := m.(*protocol.Ack)
			return ok && a.Batch == batch && a.Status != protocol.AckApplied
		}).(*protocol.Ack)
		if m.Status == protocol.AckDurable {
			accepted++
			continue
		}
		e := c.await(errorOf("big")).(*protocol.Error)
		if e.Code != protocol.CodeOverloaded || e.RetryAfterMs <= 0 {
			t.Fatalf("over the cap: %v, want CodeOverloaded with a retry hint", e.Code)
		}
		break
	}
	if accepted == 0 {
		t.Fatal("the first batch was refused")
	}
	if est := is.srv.reg.Bytes(); est > is.srv.cfg.MaxReplicaBytes+100*owner.BytesPerOp+16<<10 {
		t.Errorf("estimate %d passed the cap %d by more than one batch", est, is.srv.cfg.MaxReplicaBytes)
	}
	if _, text := is.text(t, "big"); len([]rune(text)) != 100*accepted {
		t.Errorf("text has %d characters, want the %d of the accepted batches", len([]rune(text)), 100*accepted)
	}
}

// A connection joining documents faster than JoinRate is refused, with a
// retry hint, without loading anything.
func TestJoinRate(t *testing.T) {
	is := startInternal(t, Config{JoinRate: 0.001, JoinBurst: 3})
	c := is.dial(t, 12)
	for i := range 3 {
		c.joinSynced(fmt.Sprint("j", i))
	}
	c.send(&protocol.Join{Doc: "j3"})
	e := c.await(errorOf("j3")).(*protocol.Error)
	if e.Code != protocol.CodeRateLimited || e.RetryAfterMs <= 0 {
		t.Fatalf("join past the rate: %v, want CodeRateLimited with a retry hint", e.Code)
	}
	if n := is.srv.reg.Loaded(); n != 3 {
		t.Errorf("%d documents loaded, want 3", n)
	}
}

// panicTransport panics on every write; it records the close.
type panicTransport struct{ closed chan protocol.Code }

func (p panicTransport) writeFrames([][]byte, time.Time) error { panic("injected write panic") }
func (panicTransport) finish(<-chan struct{})                  {}

func (p panicTransport) closeWith(code protocol.Code, _ string) {
	select {
	case p.closed <- code:
	default:
	}
}

// A panic in a session's goroutine closes that session, not the process.
func TestSessionPanicClosesOnlyThatSession(t *testing.T) {
	is := startInternal(t, Config{})
	pt := panicTransport{closed: make(chan protocol.Code, 1)}
	s := newSession(is.srv, pt, "p")
	s.enqueue([]byte{1})
	select {
	case code := <-pt.closed:
		if code != protocol.CodeInternal {
			t.Errorf("closed with %v, want CodeInternal", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the panicking session was not closed")
	}
	if got := testMetric(t, is, "collabd_panics_recovered_total"); got != "1" {
		t.Errorf("collabd_panics_recovered_total = %s, want 1", got)
	}
	if code := is.post(t, "still", `{"edits":[[0,0,"up"]]}`); code != 200 {
		t.Errorf("server after a session panic: POST = %d", code)
	}
}
