package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
	"github.com/collabd/collabd/server"
)

// dialYjs opens a raw WebSocket to a Yjs door path of ts.
func dialYjs(t *testing.T, ts *testServer, path string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closeCode reads until the server closes c and returns its close code
// (0 if the connection stayed open for 5 s).
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return ce.Code
		case err != nil:
			return 0
		}
	}
}

// readUntil reads frames until one satisfies match (5 s at most).
func readUntil(t *testing.T, c *websocket.Conn, what string, match func([]byte) bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(data) {
			return
		}
	}
}

// Hostile frames through both Yjs doors: each gets its typed close code
// (or is dropped when it harms nobody), nothing is allocated for lengths
// the frame does not hold, and the server goes on serving.
func TestYjsDoorsHostileFrames(t *testing.T) {
	ts := startServer(t, server.Config{MaxYjsFrame: 64 << 10})
	step1 := yproto.AppendSync(nil, yproto.SyncStep1, []byte{0})
	big := make([]byte, 70<<10)
	cases := []struct {
		name  string
		frame []byte
		text  bool
		want  protocol.Code
	}{
		{"truncated varint", []byte{0x80}, false, protocol.CodeBadFrame},
		{"huge length", []byte{0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f}, false, protocol.CodeBadFrame},
		{"length past the frame", []byte{0, 2, 0x40, 1, 2}, false, protocol.CodeBadFrame},
		{"unknown message type", []byte{9}, false, protocol.CodeBadFrame},
		{"unknown sync type", []byte{0, 7, 0}, false, protocol.CodeBadFrame},
		{"trailing bytes", append(append([]byte{}, step1...), 0), false, protocol.CodeBadFrame},
		{"an update that is not Yjs", yproto.AppendSync(nil, yproto.SyncUpdate, []byte{1, 1, 0xff, 0xff}), false, protocol.CodeInvalidOp},
		{"text frame", []byte("hello"), true, protocol.CodeBadFrame},
		{"frame past the limit", big, false, websocket.CloseMessageTooBig}, // 1009, as Hocuspocus closes it
	}
	for _, c := range cases {
		for _, door := range []string{"y-websocket", "hocuspocus"} {
			var conn *websocket.Conn
			frame := c.frame
			if door == "y-websocket" {
				conn = dialYjs(t, ts, "/v1/yjs/hostile")
			} else {
				conn = dialYjs(t, ts, "/v1/hocuspocus")
				auth := yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: "hostile", Auth: yproto.AuthToken, Text: "", HasText: true})
				_ = conn.WriteMessage(websocket.BinaryMessage, auth)
				readUntil(t, conn, "authenticated", func(b []byte) bool { return bytes.Contains(b, []byte("read-write")) })
				if !c.text && len(frame) < 1000 {
					frame = append(yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HQueryAwareness, Doc: "hostile"})[:8], frame...)
				}
			}
			typ := websocket.BinaryMessage
			if c.text {
				typ = websocket.TextMessage
			}
			_ = conn.WriteMessage(typ, frame)
			if got := closeCode(t, conn); protocol.Code(got) != c.want {
				t.Errorf("%s, %s: closed with %d, want %d", door, c.name, got, c.want)
			}
		}
	}
	// Malformed awareness and frames for documents not opened are dropped;
	// the connection and the document go on.
	conn := dialYjs(t, ts, "/v1/yjs/hostile-ok")
	_ = conn.WriteMessage(websocket.BinaryMessage, yproto.AppendAwareness(nil, []byte{5, 1, 2, 3}))
	_ = conn.WriteMessage(websocket.BinaryMessage, yproto.AppendAwareness(nil, yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{{Client: 1, Clock: 1, State: "{not json"}})))
	_ = conn.WriteMessage(websocket.BinaryMessage, step1)
	readUntil(t, conn, "sync step 2", func(b []byte) bool { return len(b) > 1 && b[0] == 0 && b[1] == byte(yproto.SyncStep2) })
	h := dialYjs(t, ts, "/v1/hocuspocus")
	_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HSync, Doc: "never-opened", Sync: yproto.SyncUpdate, Payload: []byte{0, 0}}))
	_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: "bad\x01id", Auth: yproto.AuthToken, HasText: true}))
	readUntil(t, h, "permission denied for a bad id", func(b []byte) bool {
		m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
		return err == nil && m.Type == yproto.HAuth && m.Auth == yproto.AuthPermissionDenied
	})
	_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: "big-token", Auth: yproto.AuthToken,
		Text: strings.Repeat("t", protocol.DefaultMaxToken+1), HasText: true}))
	readUntil(t, h, "permission denied for a token past the bound", func(b []byte) bool {
		m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
		return err == nil && m.Doc == "big-token" && m.Type == yproto.HAuth && m.Auth == yproto.AuthPermissionDenied
	})
	_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HPing}))
	readUntil(t, h, "pong", func(b []byte) bool { return len(b) == 1 && b[0] == byte(yproto.HPong) })
}

// A browser page of another origin cannot open either door (the Origin
// allowlist applies to the upgrade, as for /v1/ws).
func TestYjsDoorsOrigin(t *testing.T) {
	ts := startServer(t, server.Config{})
	for _, path := range []string{"/v1/yjs/doc", "/v1/hocuspocus"} {
		h := http.Header{"Origin": []string{"https://evil.example"}}
		_, resp, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+path, h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("%s from another origin: err %v, status %d, want 403", path, err, code)
		}
		h = http.Header{"Origin": []string{"http://" + ts.addr}}
		c, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+path, h)
		if err != nil {
			t.Fatalf("%s from the same origin: %v", path, err)
		}
		_ = c.Close()
	}
}

// Deleting a Yjs document tells its providers in their protocol's words:
// y-websocket gets a permission-denied message and close 4511; a
// Hocuspocus provider gets PermissionDenied for that document and its
// connection stays.
func TestYjsDoorsDelete(t *testing.T) {
	ts := startServer(t, server.Config{})
	step1 := yproto.AppendSync(nil, yproto.SyncStep1, []byte{0})
	y := dialYjs(t, ts, "/v1/yjs/gone")
	_ = y.WriteMessage(websocket.BinaryMessage, step1)
	_ = y.WriteMessage(websocket.BinaryMessage, yproto.AppendSync(nil, yproto.SyncUpdate, []byte{1, 1, 5, 0, 4, 1, 1, 116, 1, 120, 0}))
	readUntil(t, y, "sync step 2", func(b []byte) bool { return len(b) > 1 && b[0] == 0 && b[1] == byte(yproto.SyncStep2) })
	h := dialYjs(t, ts, "/v1/hocuspocus")
	for _, doc := range []string{"gone", "stays"} {
		_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: doc, Auth: yproto.AuthToken, HasText: true}))
		_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HSync, Doc: doc, Sync: yproto.SyncStep1, Payload: []byte{0}}))
	}
	readUntil(t, h, "the second document's sync", func(b []byte) bool {
		m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
		return err == nil && m.Doc == "stays" && m.Type == yproto.HSync && m.Sync == yproto.SyncStep1
	})
	if code, _, body := doReq(t, ts, "DELETE", "/v1/docs/gone", "", nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if got := closeCode(t, y); protocol.Code(got) != protocol.CodeDocDeleted {
		t.Fatalf("y-websocket after delete: close %d, want %d", got, protocol.CodeDocDeleted)
	}
	readUntil(t, h, "permission denied for the deleted document", func(b []byte) bool {
		m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
		return err == nil && m.Doc == "gone" && m.Type == yproto.HAuth && m.Auth == yproto.AuthPermissionDenied
	})
	_ = h.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HSync, Doc: "stays", Sync: yproto.SyncStep1, Payload: []byte{0}}))
	readUntil(t, h, "the other document still served", func(b []byte) bool {
		m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
		return err == nil && m.Doc == "stays" && m.Type == yproto.HSync && m.Sync == yproto.SyncStep2
	})
}

// A fresh client loads a Yjs document larger than its connection's queue
// (the sync borrows from the server's sync budget); with the budget spent
// it is closed as slow (retryable), never served half a document.
func TestYjsLargeColdJoin(t *testing.T) {
	for _, c := range []struct {
		name   string
		budget int64
		want   protocol.Code // 0: synced
	}{{"within the sync budget", 0, 0}, {"budget spent", 1 << 10, protocol.CodeSlow}} {
		ts := startServer(t, server.Config{QueueBytes: 64 << 10, SyncBudget: c.budget})
		d := yjs.New(yjs.Limits{})
		if _, err := d.InsertText(77, "t", 0, strings.Repeat("collabd ", 64<<10)); err != nil {
			t.Fatal(err)
		}
		state := d.EncodeState()
		if code, _, body := doReq(t, ts, "PUT", "/v1/docs/big/snapshot", "application/vnd.yjs.update", state); code != http.StatusOK {
			t.Fatalf("%s: import: %d %s", c.name, code, body)
		}
		conn := dialYjs(t, ts, "/v1/yjs/big")
		_ = conn.WriteMessage(websocket.BinaryMessage, yproto.AppendSync(nil, yproto.SyncStep1, []byte{0}))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		received := 0
		for {
			_, data, err := conn.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				if c.want == 0 || protocol.Code(ce.Code) != c.want {
					t.Fatalf("%s: closed with %d after %d bytes, want %d", c.name, ce.Code, received, c.want)
				}
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			received += len(data)
			if len(data) > 1 && data[0] == 0 && data[1] == byte(yproto.SyncStep2) {
				if c.want != 0 {
					t.Fatalf("%s: synced %d bytes with the budget spent", c.name, received)
				}
				if received < len(state) {
					t.Fatalf("%s: synced with %d bytes of a %d-byte document", c.name, received, len(state))
				}
				break
			}
		}
		_ = conn.Close()
		ts.stop()
	}
}

// A Yjs client that stops reading is closed as slow (4008) once its queue
// overflows; the writer and a reader that keeps up are not held up (the
// writer sends each update once the live reader has the one before).
func TestYjsDoorsSlowConsumer(t *testing.T) {
	// The op rate is lifted: 8 MiB from one writer in seconds is past the
	// default (one op per 16 bytes, 2,000/s, burst 100,000).
	ts := startServer(t, server.Config{QueueBytes: 64 << 10, OpRate: 1e9, OpBurst: 1 << 30, WriteTimeout: time.Second})
	step1 := yproto.AppendSync(nil, yproto.SyncStep1, []byte{0})
	slow := dialYjs(t, ts, "/v1/yjs/slow")
	if tc, ok := slow.NetConn().(interface{ SetReadBuffer(int) error }); ok {
		_ = tc.SetReadBuffer(4 << 10) // a small window: the server's writes to it stall
	}
	_ = slow.WriteMessage(websocket.BinaryMessage, step1)
	reader := dialYjs(t, ts, "/v1/yjs/slow")
	_ = reader.WriteMessage(websocket.BinaryMessage, step1)
	readUntil(t, reader, "sync step 2", func(b []byte) bool { return len(b) > 1 && b[1] == byte(yproto.SyncStep2) })
	writer := dialYjs(t, ts, "/v1/yjs/slow")
	_ = writer.WriteMessage(websocket.BinaryMessage, step1)
	d := yjs.New(yjs.Limits{})
	chunk := strings.Repeat("z", 8<<10)
	const updates = 1000 // 8 MiB: past the kernel's socket buffers (tcp_wmem max is 4 MiB here) and the 64 KiB queue
	for i := range updates {
		u, err := d.InsertText(99, "t", i*len(chunk), chunk)
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.WriteMessage(websocket.BinaryMessage, yproto.AppendSync(nil, yproto.SyncUpdate, u)); err != nil {
			t.Fatal(err)
		}
		readUntil(t, reader, fmt.Sprintf("update %d at the live reader", i), func(b []byte) bool {
			return len(b) > 1 && b[0] == 0 && b[1] == byte(yproto.SyncUpdate)
		})
	}
	// The server closed it as slow and let go of it: its connection is gone
	// from the server once the stalled write times out (a peer whose
	// buffers are full may never read the close frame; what its kernel does
	// with the rest is not the server's to hold).
	deadline := time.Now().Add(30 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond) // the server offers no event for a released session: its metrics are polled
	defer poll.Stop()
	for ; ; <-poll.C {
		_, metrics := httpGet(t, ts, "/metrics", "")
		m := string(metrics)
		if strings.Contains(m, "\ncollabd_slow_closes_total 1\n") && strings.Contains(m, `collabd_door_connections{door="y-websocket"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow client was not closed and released:\n%s", m)
		}
	}
}
