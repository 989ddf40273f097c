package chaos

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// raw is a raw-protocol subscriber on one WebSocket: hello and join, then
// its owner either runs its reader (run) or leaves it unread (a slow
// consumer). It never sends updates, so it claims no agent.
type raw struct {
	ws   *websocket.Conn
	doc  string
	dead atomic.Bool // run has returned
}

// dialRaw connects and says hello. rcvbuf > 0 makes a narrow socket: it
// sets SO_RCVBUF (the TCP window stays that small) and a TCP_MAXSEG of 536
// before it connects. The small MSS matters as much: Linux sizes a sender's
// socket buffer from the peer's MSS and congestion window, so on loopback
// (MSS 64 KiB) the server's kernel would otherwise absorb up to tcp_wmem's
// 4 MiB before the server's own queue sees any backpressure.
func dialRaw(ctx context.Context, url string, rcvbuf int) (*raw, error) {
	nd := &net.Dialer{}
	if rcvbuf > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
				if serr == nil {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536)
				}
			}); err != nil {
				return err
			}
			return serr
		}
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: nd.DialContext, ReadBufferSize: 4096, WriteBufferSize: 4096}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: dial: %w", err)
	}
	r := &raw{ws: ws}
	if err := r.send(&protocol.Hello{Version: protocol.Version, Client: "collabd-chaos"}); err != nil {
		_ = ws.Close()
		return nil, err
	}
	m, err := r.read(ctx)
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	if _, ok := m.(*protocol.Welcome); !ok {
		_ = ws.Close()
		return nil, fmt.Errorf("chaos: expected welcome, got %T", m)
	}
	return r, nil
}

func (r *raw) send(m protocol.Message) error {
	_ = r.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := r.ws.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
		return fmt.Errorf("chaos: send: %w", err)
	}
	return nil
}

// read reads one frame before ctx's deadline (10 s if none).
func (r *raw) read(ctx context.Context) (protocol.Message, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = r.ws.SetReadDeadline(dl)
	_, b, err := r.ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("chaos: read: %w", err)
	}
	m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: 8 << 20})
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*protocol.Error); ok {
		return nil, e
	}
	return m, nil
}

// join joins doc read-only and reads its sync up to the final chunk.
func (r *raw) join(ctx context.Context, doc string) error {
	r.doc = doc
	if err := r.send(&protocol.Join{Doc: doc, SV: crdt.NewDoc(crdt.Options{Agent: 1}).StateVector(), ReadOnly: true}); err != nil {
		return err
	}
	for {
		m, err := r.read(ctx)
		if err != nil {
			return err
		}
		if s, ok := m.(*protocol.Sync); ok && s.Doc == doc && s.Final {
			return nil
		}
	}
}

// run reads until the connection ends and calls onUpdate with the ops of
// every fanned-out update and the time it arrived. It returns the close
// code the server sent (0 if the connection ended without one).
func (r *raw) run(onUpdate func(ops []crdt.Op, at time.Time)) int {
	defer r.dead.Store(true)
	_ = r.ws.SetReadDeadline(time.Time{})
	for {
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code
			}
			return 0
		}
		at := time.Now()
		if len(b) < 2 {
			continue
		}
		switch protocol.Type(b[1]) {
		case protocol.TypePing: // keepalive: the server closes a connection that never answers
			if m, err := protocol.Decode(b, protocol.DecodeLimits{}); err == nil {
				if p, ok := m.(*protocol.Ping); ok && r.send(&protocol.Pong{Nonce: p.Nonce}) != nil {
					return 0
				}
			}
			continue
		case protocol.TypeUpdate:
		case protocol.TypeError:
			if m, err := protocol.Decode(b, protocol.DecodeLimits{}); err == nil {
				if e, ok := m.(*protocol.Error); ok && e.Doc == "" {
					return int(e.Code) // a connection error; the close follows
				}
			}
			continue
		default:
			continue
		}
		if onUpdate == nil {
			continue
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: 8 << 20})
		if err != nil {
			continue
		}
		if u, ok := m.(*protocol.Update); ok && u.Doc == r.doc && u.Batch == 0 {
			if ops, err := crdt.DecodeUpdate(u.Update, crdt.Limits{}); err == nil {
				onUpdate(ops, at)
			}
		}
	}
}

func (r *raw) close() {
	_ = r.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = r.ws.Close()
}
