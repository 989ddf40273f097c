package rawclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// Errors returned by a Conn.
var (
	// ErrHandshake: the server did not answer the hello with a Welcome.
	ErrHandshake = errors.New("rawclient: handshake failed")
	// ErrNoReplica: Insert on a Conn that keeps no replica or is read-only.
	ErrNoReplica = errors.New("rawclient: no writable replica")
)

// Options configure Dial. The zero value is a writer with a fresh agent,
// no replica, 4 KiB buffers and 30 s timeouts.
type Options struct {
	// Token is sent in the Hello ("" in development mode).
	Token string
	// Client is the Hello's client name, for the server's logs; "" means
	// "collabd-rawclient".
	Client string
	// ReadOnly claims no agent in the Hello and joins read-only: the Conn
	// cannot send updates.
	ReadOnly bool
	// Replica keeps a crdt.Doc of the joined document: Join applies the
	// sync to it, Run applies every update, and Insert edits it.
	Replica bool
	// BufferSize is the WebSocket read and write buffer in bytes; 0 means
	// 4096 (idle connections use less).
	BufferSize int
	// RcvBuf > 0 makes a narrow socket: SO_RCVBUF of that many bytes (the
	// TCP window stays that small) and a TCP_MAXSEG of 536, set before the
	// connect. The small MSS matters as much: Linux sizes a sender's socket
	// buffer from the peer's MSS and congestion window, so on loopback (MSS
	// 64 KiB) the server's kernel would otherwise absorb up to tcp_wmem's
	// 4 MiB before the server's own queue sees any backpressure.
	RcvBuf int
	// Timeout bounds the WebSocket handshake, and each Read whose ctx has no
	// deadline; 0 means 30 s. Writes have a 10 s deadline.
	Timeout time.Duration
	// OnAck, if set, is called by Run with every Ack of the joined document
	// and the time its frame arrived (the load generator times durable
	// acks). It runs on Run's goroutine and must not block.
	OnAck func(a *protocol.Ack, at time.Time)
}

// maxFrame bounds the frames a Conn decodes (the server's sync chunks are
// smaller).
const maxFrame = 8 << 20

const writeTimeout = 10 * time.Second

// Conn is one raw-protocol connection. See the package doc for which
// goroutine may call what.
type Conn struct {
	ws      *websocket.Conn
	opts    Options
	agent   crdt.AgentID // 0 if read-only
	doc     *crdt.Doc    // the replica; nil without Options.Replica
	docID   string       // the joined document
	batch   uint64       // the last batch sent by Insert
	timeout time.Duration
	silence time.Duration // Run gives up after this long without a frame; 0: never

	bytes  atomic.Int64 // bytes of the frames received
	frames atomic.Int64 // frames received
	dead   atomic.Bool  // Run has returned
	wmu    sync.Mutex   // one writer at a time: Send and Run's pongs
}

// Dial connects to url (ws://host/v1/ws) and completes the hello.
func Dial(ctx context.Context, url string, o Options) (*Conn, error) {
	c := &Conn{opts: o, timeout: o.Timeout}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	buf := o.BufferSize
	if buf <= 0 {
		buf = 4096
	}
	nd := &net.Dialer{}
	if o.RcvBuf > 0 {
		nd.Control = narrow(o.RcvBuf)
	}
	d := websocket.Dialer{HandshakeTimeout: c.timeout, NetDialContext: nd.DialContext, ReadBufferSize: buf, WriteBufferSize: buf}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // the handshake's body; nothing to read in it
	}
	if err != nil {
		return nil, fmt.Errorf("rawclient: dial %s: %w", url, err)
	}
	c.ws = ws
	hello := &protocol.Hello{Version: protocol.Version, Token: o.Token, Client: o.Client}
	if hello.Client == "" {
		hello.Client = "collabd-rawclient"
	}
	if !o.ReadOnly {
		c.agent = crdt.NewAgentID()
		hello.Agents = []crdt.AgentID{c.agent}
	}
	if o.Replica {
		agent := c.agent
		if agent == 0 {
			agent = crdt.NewAgentID() // a read-only replica never edits; crdt wants an agent anyway
		}
		c.doc = crdt.NewDoc(crdt.Options{Agent: agent})
	}
	if err := c.Send(hello); err != nil {
		_ = ws.Close()
		return nil, err
	}
	var w *protocol.Welcome
	for w == nil {
		m, err := c.Read(ctx)
		if err != nil {
			_ = ws.Close()
			return nil, err
		}
		switch m := m.(type) {
		case *protocol.Welcome:
			w = m
		case *protocol.Ping:
			// The server's pinger may reach a connection whose Welcome is
			// still on its way (a loaded server); answer it and go on.
			if err := c.Send(&protocol.Pong{Nonce: m.Nonce}); err != nil {
				_ = ws.Close()
				return nil, err
			}
		default:
			_ = ws.Close()
			return nil, fmt.Errorf("%w: got %T %v, want a welcome", ErrHandshake, m, m)
		}
	}
	if w.Limits.PingIntervalMs > 0 {
		// The server pings at least this often and closes a connection
		// whose pong is late, so twice ping interval + pong timeout without
		// a frame means the server is gone without closing the connection.
		c.silence = 2 * time.Duration(w.Limits.PingIntervalMs+max(w.Limits.PongTimeoutMs, 0)) * time.Millisecond
	}
	return c, nil
}

// narrow returns a dialer Control that sets SO_RCVBUF and TCP_MAXSEG
// before the connect (see Options.RcvBuf).
func narrow(rcvbuf int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
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

// Agent is the agent the Conn claimed in its hello (0 if read-only).
func (c *Conn) Agent() crdt.AgentID { return c.agent }

// Doc is the replica (nil without Options.Replica). Read it only before Run
// or after Run has returned.
func (c *Conn) Doc() *crdt.Doc { return c.doc }

// Bytes is the number of bytes of the frames received so far.
func (c *Conn) Bytes() int64 { return c.bytes.Load() }

// Frames is the number of frames received so far.
func (c *Conn) Frames() int64 { return c.frames.Load() }

// Alive reports whether Run has not returned (the connection is open).
func (c *Conn) Alive() bool { return !c.dead.Load() }

// Send writes one frame.
func (c *Conn) Send(m protocol.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout)) // only fails on a closed conn, which the write reports
	if err := c.ws.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
		return fmt.Errorf("rawclient: send %T: %w", m, err)
	}
	return nil
}

// Read reads and decodes one frame before ctx's deadline (Options.Timeout
// if it has none). An Error frame is returned as the error (*protocol.Error).
// Read does not answer pings: before Run, the server's ping interval is far
// longer than a join.
func (c *Conn) Read(ctx context.Context) (protocol.Message, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(c.timeout)
	}
	_ = c.ws.SetReadDeadline(dl) // only fails on a closed conn, which the read reports
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("rawclient: read: %w", err)
	}
	c.bytes.Add(int64(len(b)))
	c.frames.Add(1)
	m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: maxFrame})
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*protocol.Error); ok {
		return nil, e
	}
	return m, nil
}

// Join joins doc (read-only if Options.ReadOnly) and reads its sync up to
// the final chunk, applying it to the replica if the Conn keeps one. It
// joins with the replica's state vector, or with none.
func (c *Conn) Join(ctx context.Context, doc string) error {
	c.docID = doc
	var sv crdt.StateVector
	if c.doc != nil {
		sv = c.doc.StateVector()
	}
	if err := c.Send(&protocol.Join{Doc: doc, SV: sv, ReadOnly: c.opts.ReadOnly}); err != nil {
		return err
	}
	for {
		m, err := c.Read(ctx)
		if err != nil {
			return err
		}
		s, ok := m.(*protocol.Sync)
		if !ok || s.Doc != doc {
			continue // presence, acks
		}
		if c.doc != nil {
			if err := c.doc.ApplyUpdate(s.Update); err != nil {
				return fmt.Errorf("rawclient: sync of %s: %w", doc, err)
			}
		}
		if s.Final {
			return nil
		}
	}
}

// Insert inserts s at pos of the replica's text root and sends it as the
// next batch, whose number it returns (the server's Ack carries it).
func (c *Conn) Insert(root string, pos int, s string) (batch uint64, err error) {
	if c.doc == nil || c.opts.ReadOnly {
		return 0, ErrNoReplica
	}
	if err := c.doc.Text(root).Insert(pos, s); err != nil {
		return 0, err
	}
	c.batch++
	return c.batch, c.Send(&protocol.Update{Doc: c.docID, Batch: c.batch, Update: c.doc.TakeUpdate()})
}

// Run reads until the connection ends. It answers pings, calls onUpdate
// (if non-nil) with the ops of every update fanned out on the joined
// document and the time the frame arrived, and applies each to the replica.
// It passes the joined document's acks to Options.OnAck, if set, and skips
// every other frame (presence, acks) after counting it.
//
// It returns the code the server ended the connection with: a connection
// Error frame's code (Run returns at once: the close follows, and a slow
// consumer may never read it) or the close frame's; 0 and the error if the
// connection ended otherwise, a fanned-out update did not decode, or the
// server sent nothing (not even a ping) for twice the ping interval plus
// the pong timeout of its Welcome.
func (c *Conn) Run(onUpdate func(ops []crdt.Op, at time.Time)) (code int, err error) {
	defer c.dead.Store(true)
	var dl, set time.Time // the read deadline (zero: none, the Welcome announced no pings) and when it was set
	if c.silence > 0 {
		set = time.Now()
		dl = set.Add(c.silence)
	}
	_ = c.ws.SetReadDeadline(dl) // only fails on a closed conn, which the read reports
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
				return ce.Code, nil
			}
			return 0, fmt.Errorf("rawclient: read: %w", err)
		}
		at := time.Now()
		c.bytes.Add(int64(len(b)))
		c.frames.Add(1)
		if c.silence > 0 && at.Sub(set) > c.silence/4 { // not on every frame: a busy subscriber reads thousands a second
			set = at
			_ = c.ws.SetReadDeadline(at.Add(c.silence))
		}
		if len(b) < 2 {
			continue
		}
		switch protocol.Type(b[1]) {
		case protocol.TypePing:
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				return 0, fmt.Errorf("rawclient: ping: %w", err)
			}
			if p, ok := m.(*protocol.Ping); ok {
				if err := c.Send(&protocol.Pong{Nonce: p.Nonce}); err != nil {
					return 0, err
				}
			}
		case protocol.TypeError:
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				return 0, fmt.Errorf("rawclient: error frame: %w", err)
			}
			if e, ok := m.(*protocol.Error); ok && e.Doc == "" {
				return int(e.Code), nil
			}
		case protocol.TypeUpdate:
			if err := c.update(b, at, onUpdate); err != nil {
				return 0, err
			}
		case protocol.TypeAck:
			if c.opts.OnAck == nil {
				continue
			}
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				return 0, fmt.Errorf("rawclient: ack: %w", err)
			}
			if a, ok := m.(*protocol.Ack); ok && a.Doc == c.docID {
				c.opts.OnAck(a, at)
			}
		}
	}
}

// update handles one fanned-out update frame on Run's goroutine.
func (c *Conn) update(b []byte, at time.Time, onUpdate func(ops []crdt.Op, at time.Time)) error {
	if onUpdate == nil && c.doc == nil {
		return nil // nothing to do with it: not decoded
	}
	m, err := protocol.Decode(b, protocol.DecodeLimits{MaxFrame: maxFrame})
	if err != nil {
		return fmt.Errorf("rawclient: update: %w", err)
	}
	u, ok := m.(*protocol.Update)
	if !ok || u.Doc != c.docID || u.Batch != 0 {
		return nil // another document's, or not a fan-out (Batch 0)
	}
	if onUpdate != nil {
		ops, err := crdt.DecodeUpdate(u.Update, crdt.Limits{})
		if err != nil {
			return fmt.Errorf("rawclient: update of %s: %w", c.docID, err)
		}
		onUpdate(ops, at)
	}
	if c.doc != nil {
		if err := c.doc.ApplyUpdate(u.Update); err != nil {
			return fmt.Errorf("rawclient: update of %s: %w", c.docID, err)
		}
	}
	return nil
}

// Close sends a normal close and closes the connection; Run then returns.
// It may be called from any goroutine, more than once.
func (c *Conn) Close() {
	// WriteControl may run concurrently with Send; both errors mean the
	// connection is already gone, which is what Close wants.
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.ws.Close()
}
