package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkConn is the net.Conn a WebSocket's gorilla Conn writes to. gorilla
// writes every frame with its own Write to the connection it was given, so a
// session writer that drains ten queued frames would make ten write
// syscalls. Instead the writer corks the connection around a drained batch
// (wsTransport.writeFrames): while corked, writes are copied into a
// net.Buffers, and uncork sends them with one WriteTo (writev on a TCP
// connection) under the batch's write deadline. Control frames other
// goroutines write meanwhile (a Yjs door's pings, pongs) queue behind the
// batch's frames in the order gorilla wrote them.
//
// gorilla serialises the Write calls of its frames (one frame at a time,
// under its own lock); uncork is the only write that can run next to one of
// them, and while it sends, the connection stays corked, so later writes
// queue behind it and go out in its next round. Reads, Close and read
// deadlines pass straight through.
type corkConn struct {
	net.Conn

	mu       sync.Mutex  // guards corked, bufs, deadline; never held across I/O
	corked   bool        // writes are queued, not sent
	bufs     net.Buffers // queued writes, copied (gorilla reuses its buffers)
	deadline time.Time   // the corked batch's write deadline

	// gorilla sets the write deadline before every frame it writes, and
	// each set is a runtime timer change. A deadline up to slack later
	// than asked for is kept instead: a set that asks for no more than
	// applied, and at most slack less, changes nothing (a later one sets
	// slack more, so a stream of frames sets it about once per slack).
	slack   time.Duration // 0: every set goes through
	dlmu    sync.Mutex    // guards applied; held across the (non-blocking) set so sets apply in order
	applied time.Time     // the write deadline set on Conn
}

// corkChunk is the size of the chunks small queued writes are copied into,
// so that a batch of small frames is a few iovecs, not two per frame.
const corkChunk = 4096

// corkDirect is the write size above which a corked write is not copied:
// it goes out at once, behind what is queued, in one writev (a large sync
// frame is written from the caller's memory, as without the cork).
const corkDirect = 64 << 10

// cork starts queueing writes; uncork sends them. Only the session's
// writer goroutine corks and uncorks.
func (c *corkConn) cork(deadline time.Time) {
	c.mu.Lock()
	c.corked, c.deadline = true, deadline
	c.mu.Unlock()
}

// uncork sends everything queued, in rounds until nothing more was queued
// during the last one, and stops queueing. A write error drops what is still
// queued: the connection is dead, and the session closes on the error.
func (c *corkConn) uncork() error {
	for {
		c.mu.Lock()
		bufs, deadline := c.bufs, c.deadline
		c.bufs = nil
		if len(bufs) == 0 {
			c.corked = false
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		if err := c.send(bufs, deadline); err != nil {
			c.mu.Lock()
			c.bufs, c.corked = nil, false
			c.mu.Unlock()
			return err
		}
	}
}

// send writes bufs with one WriteTo under deadline. The caller holds the
// right to write: the connection is corked and this is the writer sending a
// round, or gorilla's Write of an oversized frame.
func (c *corkConn) send(bufs net.Buffers, deadline time.Time) error {
	_ = c.setWriteDeadline(deadline)
	_, err := bufs.WriteTo(c.Conn)
	return err
}

// Write sends p at once when the connection is not corked; while corked it
// queues a copy (or, for a write larger than corkDirect, sends the queue and
// p together).
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.corked {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	if len(p) > corkDirect {
		bufs, deadline := append(c.bufs, p), c.deadline
		c.bufs = nil
		c.mu.Unlock()
		if err := c.send(bufs, deadline); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if n := len(c.bufs); n > 0 && cap(c.bufs[n-1])-len(c.bufs[n-1]) >= len(p) {
		c.bufs[n-1] = append(c.bufs[n-1], p...)
	} else {
		b := make([]byte, len(p), max(len(p), corkChunk))
		copy(b, p)
		c.bufs = append(c.bufs, b)
	}
	c.mu.Unlock()
	return len(p), nil
}

// SetWriteDeadline passes through unless corked: queued writes go out
// under the batch's deadline, whatever gorilla set for one of its frames.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	corked := c.corked
	c.mu.Unlock()
	if corked {
		return nil
	}
	return c.setWriteDeadline(t)
}

// setWriteDeadline sets the connection's write deadline to t, or keeps
// the one set if it is no earlier than t and at most slack later; a later
// t is set slack further.
func (c *corkConn) setWriteDeadline(t time.Time) error {
	c.dlmu.Lock()
	defer c.dlmu.Unlock()
	if c.slack > 0 && !t.IsZero() && !c.applied.IsZero() && !t.After(c.applied) && c.applied.Sub(t) <= c.slack {
		return nil
	}
	if c.slack > 0 && !t.IsZero() && t.After(c.applied) {
		t = t.Add(c.slack)
	}
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.applied = t
	return nil
}

// SetDeadline sets the read deadline, and the write deadline as
// SetWriteDeadline does.
func (c *corkConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// CloseWrite half-closes the connection when the underlying one can
// (wsTransport.closeWith).
func (c *corkConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// corkHijacker wraps the ResponseWriter handed to the upgrader so that the
// connection gorilla hijacks is a corkConn, read through a reader of
// readBufferSize bytes the session can see (br: how much gorilla has
// buffered, see session.readWS). The upgrader (ReadBufferSize 0) keeps the
// reader a hijack hands it when it is larger than 256 bytes.
type corkHijacker struct {
	http.ResponseWriter
	slack time.Duration // the connection's write deadline slack (corkConn)
	conn  *corkConn     // set by Hijack
	br    *bufio.Reader // set by Hijack unless the client sent bytes early (the upgrader then refuses it)
}

func (h *corkHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &corkConn{Conn: nc, slack: h.slack}
	if brw.Reader.Buffered() == 0 {
		h.br = bufio.NewReaderSize(h.conn, readBufferSize)
		brw = bufio.NewReadWriter(h.br, brw.Writer)
	}
	return h.conn, brw, nil
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (h *corkHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// underlying is the connection under c (nil for a nil c).
func (c *corkConn) underlying() net.Conn {
	if c == nil {
		return nil
	}
	return c.Conn
}
