package server_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

func startServerWith(t testing.TB, dir string, cfg server.Config) *testServer {
	t.Helper()
	store, err := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, store: store, srv: srv}
	ts.http = httptest.NewServer(srv.Handler())
	ts.url = "ws" + strings.TrimPrefix(ts.http.URL, "http") + "/v1/ws"
	t.Cleanup(ts.stop)
	return ts
}

// waitDurable reads until batch is acked durable.
func (c *client) waitDurable(batch uint64) {
	c.t.Helper()
	for {
		switch m := c.read().(type) {
		case *protocol.Ack:
			if m.Batch == batch && m.Status == protocol.AckDurable {
				return
			}
			if m.Status == protocol.AckRejected {
				c.t.Fatalf("batch %d rejected", m.Batch)
			}
		case *protocol.Error:
			c.t.Fatalf("error %v", m)
		}
	}
}

// TestUnloadReloadRace joins, edits and leaves one document over and over
// from several clients while the server unloads it as soon as it is idle: no
// edit may be lost, whatever owner (old, unloading, new) handled it.
func TestUnloadReloadRace(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{IdleUnload: time.Millisecond})
	const clients, rounds = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := oneRound(ts.url, crdt.AgentID(10+i), i, r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := dial(t, ts.url, 1000)
	c.join("race")
	text := c.doc.Text("body").String()
	for i := range clients {
		for r := range rounds {
			if w := fmt.Sprintf("<%d.%d>", i, r); !strings.Contains(text, w) {
				t.Errorf("lost %s", w)
			}
		}
	}
}

// oneRound runs without testing.T so it can run in a goroutine.
func oneRound(url string, agent crdt.AgentID, i, r int) error {
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	send := func(m protocol.Message) error { return conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)) }
	read := func() (protocol.Message, error) {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		return protocol.Decode(b, protocol.DecodeLimits{})
	}
	// A fresh agent id per round keeps claims simple; seqs restart at 0.
	doc := crdt.NewDoc(crdt.Options{Agent: agent<<16 | crdt.AgentID(r)})
	if err := send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{doc.Agent()}}); err != nil {
		return err
	}
	if err := send(&protocol.Join{Doc: "race", SV: doc.StateVector()}); err != nil {
		return err
	}
	for synced := false; !synced; {
		m, err := read()
		if err != nil {
			return err
		}
		if s, ok := m.(*protocol.Sync); ok {
			if err := doc.ApplyUpdate(s.Update); err != nil {
				return err
			}
			synced = s.Final
		}
	}
	if err := doc.Text("body").Insert(0, fmt.Sprintf("<%d.%d>", i, r)); err != nil {
		return err
	}
	if err := send(&protocol.Update{Doc: "race", Batch: 1, Update: doc.TakeUpdate()}); err != nil {
		return err
	}
	for {
		m, err := read()
		if err != nil {
			return err
		}
		if a, ok := m.(*protocol.Ack); ok && a.Batch == 1 && a.Status == protocol.AckDurable {
			break
		}
	}
	return send(&protocol.Leave{Doc: "race"})
}

// TestSlowConsumerIsDisconnected: a client that stops reading is closed with
// CodeSlow once its queue overflows; a writer on the same document is not
// slowed down and keeps getting acks.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{QueueBytes: 256 << 10, OpRate: 1e9, OpBurst: 1 << 24})
	slow := dial(t, ts.url, 1)
	slow.join("hot")
	w := dial(t, ts.url, 2)
	w.join("hot")
	// Enough to fill the loopback socket buffers and then the queue.
	big := strings.Repeat("x", 64<<10)
	// Pipelined, so the whole run stays well within the server's write
	// timeout: the slow session is closed while its close frame can still
	// be delivered once it reads again.
	for batch := uint64(1); batch <= 200; batch++ {
		w.edit("hot", batch, func(x *crdt.Text) error { return x.Insert(0, big) })
	}
	w.waitDurable(200) // the writer keeps being served throughout
	if got := slow.closeCode(); got != int(protocol.CodeSlow) {
		t.Fatalf("slow client closed with %d, want %d", got, protocol.CodeSlow)
	}
}

// TestOpRateLimit: a connection that sends ops faster than its token bucket
// allows gets a CodeRateLimited rejection (with a retry hint), the batches
// it pipelined after it are rejected with CodeResync (they may build on
// it), and it stays connected.
func TestOpRateLimit(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{OpRate: 1, OpBurst: 5})
	c := dial(t, ts.url, 1)
	c.join("r")
	limited, resync := 0, 0
	for batch := uint64(1); batch <= 10; batch++ {
		c.edit("r", batch, func(x *crdt.Text) error { return x.Insert(0, "a") })
	}
	for seen := 0; seen < 10; {
		switch m := c.read().(type) {
		case *protocol.Ack:
			if m.Status != protocol.AckApplied {
				seen++ // durable or rejected: the batch is settled
			}
		case *protocol.Error:
			switch {
			case m.Code == protocol.CodeRateLimited && m.RetryAfterMs > 0 && resync == 0:
				limited++
			case m.Code == protocol.CodeResync && limited > 0:
				resync++
			default:
				t.Fatalf("error %+v after %d rate limited, %d resync", m, limited, resync)
			}
		}
	}
	if limited != 1 || limited+resync < 4 {
		t.Fatalf("%d rate limited then %d resync of 10 batches with a burst of 5; want 1 then the rest", limited, resync)
	}
	c.send(&protocol.Ping{Nonce: 9})
	for {
		if p, ok := c.read().(*protocol.Pong); ok && p.Nonce == 9 {
			break // still connected
		}
	}
}

// TestConnectionLimitPerIP refuses connections past the per-address limit.
func TestConnectionLimitPerIP(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{MaxConnsPerIP: 2})
	dial(t, ts.url, 1)
	dial(t, ts.url, 2)
	_, resp, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("third connection: err %v, response %v", err, resp)
	}
}

func TestHelloTimeout(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{HelloTimeout: 200 * time.Millisecond})
	conn, _, err := websocket.DefaultDialer.Dial(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn}
	if got := c.closeCode(); got != int(protocol.CodeHelloTimeout) {
		t.Fatalf("close %d, want %d", got, protocol.CodeHelloTimeout)
	}
}

// TestBombsInsideValidFrames: killer payloads as the update bytes of a
// well-formed frame are refused per batch; the session and the server go on.
func TestBombsInsideValidFrames(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	c := dial(t, ts.url, 1)
	c.join("b")
	bombs := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x94, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x94, 0x01, 0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff},
		[]byte(strings.Repeat("\x91", 4096)),
		{},
	}
	for i, b := range bombs {
		c.send(&protocol.Update{Doc: "b", Batch: uint64(i + 1), Update: b})
		if a, ok := c.read().(*protocol.Ack); !ok || a.Status != protocol.AckRejected {
			t.Fatalf("bomb %d: want a rejected ack, got %+v", i, a)
		}
		if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeInvalidOp {
			t.Fatalf("bomb %d: want CodeInvalidOp, got %+v", i, e)
		}
		c.join("b") // after a rejection the next batch needs a rejoin
	}
	c.edit("b", 99, func(x *crdt.Text) error { return x.Insert(0, "ok") })
	c.waitDurable(99)
}
