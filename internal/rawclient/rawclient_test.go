package rawclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/rawclient"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// startServer runs a real server on loopback and returns its ws URL.
func startServer(t *testing.T) string {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"
}

type runResult struct {
	code int
	err  error
}

// TestFanOutToReplica: a writer's insert reaches a subscriber's onUpdate
// and replica, and is acked with the batch number Insert returned.
func TestFanOutToReplica(t *testing.T) {
	url := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := rawclient.Dial(ctx, url, rawclient.Options{Replica: true, Client: "test-writer"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sub, err := rawclient.Dial(ctx, url, rawclient.Options{Replica: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if w.Agent() == 0 || sub.Agent() != 0 {
		t.Fatalf("agents: writer %d (want non-zero), read-only %d (want 0)", w.Agent(), sub.Agent())
	}
	for _, c := range []*rawclient.Conn{w, sub} {
		if err := c.Join(ctx, "doc"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sub.Insert("t", 0, "x"); !errors.Is(err, rawclient.ErrNoReplica) {
		t.Fatalf("read-only Insert: err %v, want ErrNoReplica", err)
	}
	got := make(chan string, 16)
	done := make(chan runResult, 1)
	go func() {
		code, err := sub.Run(func(ops []crdt.Op, _ time.Time) {
			for _, op := range ops {
				got <- op.Text
			}
		})
		done <- runResult{code, err}
	}()
	batch, err := w.Insert("t", 0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if batch != 1 {
		t.Errorf("first Insert batch = %d, want 1", batch)
	}
	for acked := false; !acked; {
		m, err := w.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the ack: %v", err)
		}
		a, ok := m.(*protocol.Ack)
		acked = ok && a.Batch == batch && a.Status != protocol.AckRejected
	}
	select {
	case s := <-got:
		if s != "hello" {
			t.Errorf("onUpdate op text = %q, want %q", s, "hello")
		}
	case <-ctx.Done():
		t.Fatal("the subscriber never saw the insert")
	}
	if !sub.Alive() {
		t.Error("subscriber not alive while Run reads")
	}
	sub.Close()
	select {
	case r := <-done:
		if r.code != 0 && r.err != nil {
			t.Errorf("Run after Close = %d, %v", r.code, r.err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after Close")
	}
	if sub.Alive() {
		t.Error("Alive after Run returned")
	}
	if s := sub.Doc().Text("t").String(); s != "hello" {
		t.Errorf("subscriber replica = %q, want %q", s, "hello")
	}
	if sub.Frames() < 3 || sub.Bytes() <= sub.Frames() {
		t.Errorf("subscriber counted %d frames, %d bytes: want welcome, sync, update at least", sub.Frames(), sub.Bytes())
	}
}

// fakeServer speaks the server's side of a scripted exchange with one
// client; what it saw goes to the returned channel, one line per step, and
// an error ends the script.
func fakeServer(t *testing.T, script func(ws *websocket.Conn, read func() (protocol.Message, error)) error) (string, <-chan error) {
	t.Helper()
	errc := make(chan error, 1)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			errc <- err
			return
		}
		defer ws.Close()
		read := func() (protocol.Message, error) {
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				return nil, err
			}
			return protocol.Decode(b, protocol.DecodeLimits{})
		}
		errc <- script(ws, read)
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http"), errc
}

func send(ws *websocket.Conn, m protocol.Message) error {
	return ws.WriteMessage(websocket.BinaryMessage, protocol.Encode(m))
}

// TestReadOnlyPongAndErrorCode: a read-only Conn claims no agent, joins
// read-only with no state vector, answers a Ping with its nonce, skips
// frames it has no use for, and Run returns the code of a connection Error.
func TestReadOnlyPongAndErrorCode(t *testing.T) {
	url, errc := fakeServer(t, func(ws *websocket.Conn, read func() (protocol.Message, error)) error {
		m, err := read()
		if err != nil {
			return err
		}
		if h, ok := m.(*protocol.Hello); !ok || len(h.Agents) != 0 || h.Client != "chaos" {
			return fmt.Errorf("hello = %#v, want no agents and client %q", m, "chaos")
		}
		if err := send(ws, &protocol.Welcome{}); err != nil {
			return err
		}
		if m, err = read(); err != nil {
			return err
		}
		if j, ok := m.(*protocol.Join); !ok || j.Doc != "d" || !j.ReadOnly || len(j.SV) != 0 {
			return fmt.Errorf("join = %#v, want read-only d with no state vector", m)
		}
		if err := send(ws, &protocol.Sync{Doc: "d", Final: true, SV: crdt.StateVector{}}); err != nil {
			return err
		}
		if err := send(ws, &protocol.Ack{Doc: "other", Batch: 3, Status: protocol.AckApplied}); err != nil {
			return err
		}
		if err := send(ws, &protocol.Ping{Nonce: 0xfeed}); err != nil {
			return err
		}
		if m, err = read(); err != nil {
			return err
		}
		if p, ok := m.(*protocol.Pong); !ok || p.Nonce != 0xfeed {
			return fmt.Errorf("answer to Ping{0xfeed} = %#v, want the Pong", m)
		}
		if err := send(ws, &protocol.Error{Doc: "d", Code: protocol.CodeRateLimited}); err != nil {
			return err // a document's error does not end Run
		}
		return send(ws, &protocol.Error{Code: protocol.CodeSlow})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rawclient.Dial(ctx, url, rawclient.Options{ReadOnly: true, Client: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if c.Doc() != nil {
		t.Error("a Conn without Options.Replica has a replica")
	}
	code, err := c.Run(nil)
	if code != int(protocol.CodeSlow) || err != nil {
		t.Errorf("Run = %d, %v; want %d (CodeSlow), nil", code, err, protocol.CodeSlow)
	}
	if err := <-errc; err != nil {
		t.Errorf("server side: %v", err)
	}
}

// TestCloseCode: Run returns the code of the server's close frame.
func TestCloseCode(t *testing.T) {
	url, errc := fakeServer(t, func(ws *websocket.Conn, read func() (protocol.Message, error)) error {
		if _, err := read(); err != nil {
			return err
		}
		if err := send(ws, &protocol.Welcome{}); err != nil {
			return err
		}
		return ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(protocol.CodeGoingAway), "bye"), time.Now().Add(5*time.Second))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rawclient.Dial(ctx, url, rawclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, err := c.Run(nil); code != int(protocol.CodeGoingAway) || err != nil {
		t.Errorf("Run = %d, %v; want %d, nil", code, err, protocol.CodeGoingAway)
	}
	if err := <-errc; err != nil {
		t.Errorf("server side: %v", err)
	}
}

// TestSilentServer: a server that announced pings and then sends nothing
// (gone without closing the connection) ends Run with an error after twice
// ping interval + pong timeout, not never.
func TestSilentServer(t *testing.T) {
	url, errc := fakeServer(t, func(ws *websocket.Conn, read func() (protocol.Message, error)) error {
		if _, err := read(); err != nil {
			return err
		}
		if err := send(ws, &protocol.Welcome{Limits: protocol.Limits{PingIntervalMs: 40, PongTimeoutMs: 10}}); err != nil {
			return err
		}
		_, err := read() // nothing more: wait for the client to give up and close
		if err == nil {
			return errors.New("the client sent a frame")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rawclient.Dial(ctx, url, rawclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan runResult, 1)
	start := time.Now()
	go func() {
		code, err := c.Run(nil)
		done <- runResult{code, err}
	}()
	select {
	case r := <-done:
		if r.code != 0 || r.err == nil {
			t.Errorf("Run = %d, %v; want 0 and a timeout error", r.code, r.err)
		}
		if took := time.Since(start); took < 100*time.Millisecond {
			t.Errorf("Run gave up after %v, before 2 × (40 + 10) ms", took)
		}
	case <-ctx.Done():
		t.Fatal("Run never gave up on a silent server")
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Errorf("server side: %v", err)
	}
}

// TestHandshakeRefused: anything but a Welcome fails Dial with
// ErrHandshake, and an Error frame comes back as itself.
func TestHandshakeRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply protocol.Message
		check func(error) bool
	}{
		{"error frame", &protocol.Error{Code: protocol.CodeOverloaded}, func(err error) bool {
			e, ok := errors.AsType[*protocol.Error](err)
			return ok && e.Code == protocol.CodeOverloaded
		}},
		{"not a welcome", &protocol.Pong{}, func(err error) bool { return errors.Is(err, rawclient.ErrHandshake) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, errc := fakeServer(t, func(ws *websocket.Conn, read func() (protocol.Message, error)) error {
				if _, err := read(); err != nil {
					return err
				}
				return send(ws, tc.reply)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := rawclient.Dial(ctx, url, rawclient.Options{})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !tc.check(err) {
				t.Errorf("Dial: %v", err)
			}
			if err := <-errc; err != nil {
				t.Errorf("server side: %v", err)
			}
		})
	}
}

// TestNarrowSocket: Options.RcvBuf sets the socket's receive buffer (the
// kernel doubles what was asked and keeps a minimum) and its MSS.
func TestNarrowSocket(t *testing.T) {
	url := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rcvbuf := func(o rawclient.Options) (buf, mss int) {
		t.Helper()
		c, err := rawclient.Dial(ctx, url, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := rawclient.SyscallConn(c)
		if err != nil {
			t.Fatal(err)
		}
		var gerr error
		if err := sc.Control(func(fd uintptr) {
			buf, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			if gerr == nil {
				mss, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatal(gerr)
		}
		return buf, mss
	}
	wide, wideMSS := rcvbuf(rawclient.Options{})
	narrow, narrowMSS := rcvbuf(rawclient.Options{RcvBuf: 4096})
	if narrow > 2*4096 || narrow >= wide {
		t.Errorf("SO_RCVBUF = %d with RcvBuf 4096 (default socket: %d), want at most 8192", narrow, wide)
	}
	if narrowMSS > 536 || narrowMSS >= wideMSS {
		t.Errorf("TCP_MAXSEG = %d with RcvBuf (default socket: %d), want at most 536", narrowMSS, wideMSS)
	}
}

// TestPingBeforeWelcome: a Ping that arrives before the Welcome (the
// server's pinger on a loaded server) is answered and Dial goes on; acks
// of the joined document reach Options.OnAck, others' do not.
func TestPingBeforeWelcome(t *testing.T) {
	url, errc := fakeServer(t, func(ws *websocket.Conn, read func() (protocol.Message, error)) error {
		if _, err := read(); err != nil {
			return err
		}
		if err := send(ws, &protocol.Ping{Nonce: 7}); err != nil {
			return err
		}
		m, err := read()
		if err != nil {
			return err
		}
		if p, ok := m.(*protocol.Pong); !ok || p.Nonce != 7 {
			return fmt.Errorf("answer to Ping{7} = %#v, want the Pong", m)
		}
		if err := send(ws, &protocol.Welcome{}); err != nil {
			return err
		}
		if _, err := read(); err != nil { // the join
			return err
		}
		if err := send(ws, &protocol.Sync{Doc: "d", Final: true, SV: crdt.StateVector{}}); err != nil {
			return err
		}
		for _, a := range []*protocol.Ack{
			{Doc: "other", Batch: 1, Status: protocol.AckDurable},
			{Doc: "d", Batch: 1, Status: protocol.AckApplied},
			{Doc: "d", Batch: 1, Status: protocol.AckDurable},
		} {
			if err := send(ws, a); err != nil {
				return err
			}
		}
		return send(ws, &protocol.Error{Code: protocol.CodeSlow})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var acks []protocol.Ack // appended on Run's goroutine, read after Run returned
	c, err := rawclient.Dial(ctx, url, rawclient.Options{OnAck: func(a *protocol.Ack, _ time.Time) { acks = append(acks, *a) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Run(nil); code != int(protocol.CodeSlow) || err != nil {
		t.Errorf("Run = %d, %v; want %d, nil", code, err, protocol.CodeSlow)
	}
	want := []protocol.Ack{{Doc: "d", Batch: 1, Status: protocol.AckApplied}, {Doc: "d", Batch: 1, Status: protocol.AckDurable}}
	if fmt.Sprint(acks) != fmt.Sprint(want) {
		t.Errorf("OnAck got %v, want %v", acks, want)
	}
	if err := <-errc; err != nil {
		t.Errorf("server side: %v", err)
	}
}
