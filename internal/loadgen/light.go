package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// light is a raw-protocol client on one WebSocket: hello, join, then a
// reader. Before run, its owner may call join and send; after run, only
// the reader goroutine touches doc, and only one other goroutine may send.
type light struct {
	ws     *websocket.Conn
	agent  crdt.AgentID
	doc    *crdt.Doc // the joined document's replica
	docID  string
	bytes  atomic.Int64 // bytes received by the reader
	frames atomic.Int64 // frames received by the reader
	batch  uint64
	dead   atomic.Bool // run has returned
	wmu    sync.Mutex  // one writer at a time: the sender and the reader's pongs
}

// dialLight connects and completes the hello. buf is the WebSocket buffer
// size (small for idle connections).
func dialLight(ctx context.Context, cfg Config, buf int) (*light, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: buf, WriteBufferSize: buf}
	ws, resp, err := d.DialContext(ctx, cfg.URL, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial: %w", err)
	}
	c := &light{ws: ws, agent: crdt.NewAgentID()}
	c.doc = crdt.NewDoc(crdt.Options{Agent: c.agent})
	if err := c.send(&protocol.Hello{Version: protocol.Version, Token: cfg.Token, Agents: []crdt.AgentID{c.agent}, Client: "collabd-bench"}); err != nil {
		_ = ws.Close()
		return nil, err
	}
	m, err := c.read(ctx)
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	if _, ok := m.(*protocol.Welcome); !ok {
		_ = ws.Close()
		return nil, fmt.Errorf("loadgen: expected welcome, got %T %v", m, m)
	}
	return c, nil
}

func (c *light) send(m protocol.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
		return fmt.Errorf("loadgen: send: %w", err)
	}
	return nil
}

// read reads one frame before ctx's deadline (30 s if none).
func (c *light) read(ctx context.Context) (protocol.Message, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = c.ws.SetReadDeadline(dl)
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("loadgen: read: %w", err)
	}
	c.bytes.Add(int64(len(b)))
	c.frames.Add(1)
	m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: 8 << 20})
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*protocol.Error); ok {
		return nil, e
	}
	return m, nil
}

// join joins doc and applies the sync to the replica; it returns after the
// final chunk.
func (c *light) join(ctx context.Context, doc string) error {
	c.docID = doc
	if err := c.send(&protocol.Join{Doc: doc, SV: c.doc.StateVector()}); err != nil {
		return err
	}
	for {
		m, err := c.read(ctx)
		if err != nil {
			return err
		}
		s, ok := m.(*protocol.Sync)
		if !ok || s.Doc != doc {
			continue // presence, pings
		}
		if err := c.doc.ApplyUpdate(s.Update); err != nil {
			return fmt.Errorf("loadgen: sync: %w", err)
		}
		if s.Final {
			return nil
		}
	}
}

// run reads until the connection ends, applying updates to the replica and
// calling onUpdate (if non-nil) with each update's ops and the receive time.
// It runs on the reader goroutine.
func (c *light) run(onUpdate func(ops []crdt.Op, at time.Time)) {
	defer c.dead.Store(true)
	_ = c.ws.SetReadDeadline(time.Time{})
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		c.bytes.Add(int64(len(b)))
		c.frames.Add(1)
		if len(b) >= 2 && b[1] == byte(protocol.TypePing) {
			// Keepalive: the server closes a connection that never answers.
			if m, err := protocol.Decode(b, protocol.DecodeLimits{}); err == nil {
				if p, ok := m.(*protocol.Ping); ok && c.send(&protocol.Pong{Nonce: p.Nonce}) != nil {
					return
				}
			}
			continue
		}
		if len(b) < 2 || b[1] != byte(protocol.TypeUpdate) {
			continue // presence, acks: counted, not decoded
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: 8 << 20})
		if err != nil {
			return
		}
		u, ok := m.(*protocol.Update)
		if !ok || u.Doc != c.docID || u.Batch != 0 {
			continue
		}
		if onUpdate != nil {
			if ops, err := crdt.DecodeUpdate(u.Update, crdt.Limits{}); err == nil {
				onUpdate(ops, at)
			}
		}
		_ = c.doc.ApplyUpdate(u.Update)
	}
}

// insert makes a local insert and sends it as one batch (before run, or
// from the one sending goroutine; the replica is then the sender's).
func (c *light) insert(root string, pos int, s string) error {
	if err := c.doc.Text(root).Insert(pos, s); err != nil {
		return err
	}
	c.batch++
	return c.send(&protocol.Update{Doc: c.docID, Batch: c.batch, Update: c.doc.TakeUpdate()})
}

func (c *light) close() {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.ws.Close()
}

// alive reports whether the reader is still running (the connection is
// open); set by run.
func (c *light) alive() bool { return !c.dead.Load() }
