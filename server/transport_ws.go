package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/protocol"
)

// transport is how a session's frames reach its peer: a WebSocket, or the
// SSE + POST fallback (transport_rt.go). The writer goroutine is its only
// writer.
type transport interface {
	writeFrames(frames [][]byte, deadline time.Time) error
	closeWith(code protocol.Code, reason string) // best-effort close frame; the read loop then ends
	// finish releases the connection once the read loop has ended and the
	// close frame is out (flushed closed) or could not be sent in time.
	finish(flushed <-chan struct{})
}

// closeLinger bounds how long a closed WebSocket waits for its peer to
// close too (see wsTransport.closeWith).
const closeLinger = 2 * time.Second

// wsTransport is a session over a WebSocket. cork is the connection under
// conn (nil if the upgrade did not go through corkHijacker).
type wsTransport struct {
	conn *websocket.Conn
	cork *corkConn
}

// corkMin is the size of a lone frame from which writeFrames corks it too:
// gorilla writes a frame that does not fit its 4 KiB write buffer as two
// writes (header and start, then the rest), which the cork makes one.
const corkMin = 4096 - 16

// writeFrames writes a drained batch. More than one frame (or one large
// frame) goes out corked: gorilla's writes are queued and sent with one
// writev at the end (corkConn), one syscall instead of one per frame.
func (t wsTransport) writeFrames(frames [][]byte, deadline time.Time) (err error) {
	_ = t.conn.SetWriteDeadline(deadline)
	if t.cork != nil && (len(frames) > 1 || len(frames) == 1 && len(frames[0]) >= corkMin) {
		t.cork.cork(deadline)
		defer func() {
			if uerr := t.cork.uncork(); err == nil {
				err = uerr
			}
		}()
	}
	for _, f := range frames {
		if err := t.conn.WriteMessage(websocket.BinaryMessage, f); err != nil {
			return err
		}
	}
	return nil
}

// upgradeWS upgrades the request to a WebSocket whose connection can be
// corked; the upgrader answers a failed upgrade itself.
func (s *Server) upgradeWS(w http.ResponseWriter, r *http.Request) (*websocket.Conn, wsTransport, error) {
	h := &corkHijacker{ResponseWriter: w, slack: s.cfg.WriteTimeout / renewSlack}
	conn, err := s.upgrader.Upgrade(h, r, nil)
	if err != nil {
		return nil, wsTransport{}, err
	}
	return conn, wsTransport{conn: conn, cork: h.conn}, nil
}

// closeWith sends the close frame and half-closes the connection: the
// peer gets everything written, the close frame and then the end of the
// stream. Closing the socket at once would make the kernel answer what the
// peer sent meanwhile (and the server never read) with a reset, which can
// destroy data the peer had not read yet (the close frame with its reason,
// a denial before it). The read loop drains until the peer closes or
// closeLinger passes; finish then releases the connection.
func (t wsTransport) closeWith(code protocol.Code, reason string) {
	msg := websocket.FormatCloseMessage(int(code), reason)
	_ = t.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)) // best effort
	if hc, ok := t.conn.NetConn().(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		_ = t.conn.NetConn().SetReadDeadline(time.Now().Add(closeLinger))
		return
	}
	_ = t.conn.Close()
}

func (t wsTransport) finish(flushed <-chan struct{}) {
	wait := time.NewTimer(closeLinger + time.Second)
	defer wait.Stop()
	select {
	case <-flushed:
		// Drain what the peer still sends until it closes or the linger
		// deadline closeWith set passes (a read error is sticky: a dead
		// connection returns at once).
		for {
			if _, _, err := t.conn.NextReader(); err != nil {
				break
			}
		}
	case <-wait.C:
	}
	_ = t.conn.Close()
}

// isClosed reports whether the session has been closed: its read loop then
// only drains what the peer still sends.
func (s *session) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// wsReadLoop authenticates the connection with its hello, then routes
// frames, until the connection ends.
func (s *session) wsReadLoop(ctx context.Context, conn *websocket.Conn) {
	conn.SetReadLimit(int64(s.srv.cfg.MaxFrame))
	defer s.leaveAll(ctx)
	hello := true
	s.readWS(conn, s.srv.cfg.HelloTimeout, &hello, func(data []byte) bool { return s.frame(ctx, data, &hello) })
}

// readWS reads binary frames and hands them to handle until the connection
// ends or handle reports false. The first frame must come within first
// (while *hello is true a timeout is CodeHelloTimeout); after that any
// frame or pong renews the read deadline to a ping interval plus the pong
// timeout (plus up to renewSlack: see below). Once the session is closed it
// only drains (see closeWith). handle's data is valid only during the call:
// a frame is read into a buffer of the server's pool (frameBufs), taken once
// the frame has begun, so an idle connection holds none.
func (s *session) readWS(conn *websocket.Conn, first time.Duration, hello *bool, handle func([]byte) bool) {
	// Only the duration is captured: a closure over the whole Config would
	// keep a copy of it on the heap for every connection.
	renew := s.srv.cfg.PingInterval + s.srv.cfg.PongTimeout
	slack := renew / renewSlack
	var renewed time.Time // the deadline holds for frames until then
	deadline := func() {
		now := time.Now()
		s.lastSeen.Store(now.UnixNano())
		if now.Before(renewed) {
			return
		}
		// One deadline per slack, not per frame (a runtime timer each):
		// it is set slack further, so it never falls earlier than renew
		// after the last frame.
		renewed = now.Add(slack)
		_ = conn.SetReadDeadline(now.Add(renew + slack))
	}
	s.lastSeen.Store(time.Now().UnixNano())
	conn.SetPongHandler(func(string) error { deadline(); return nil }) // control pongs from clients that send control pings
	_ = conn.SetReadDeadline(time.Now().Add(first))
	for {
		typ, r, err := conn.NextReader()
		var buf *[]byte
		if err == nil {
			buf = s.srv.frameBuf()
			*buf, err = readAll(r, *buf)
		}
		if err != nil {
			s.srv.putFrameBuf(buf)
			var ne net.Error
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				s.close(protocol.CodeFrameTooLarge, "frame too large")
			case hello != nil && *hello && errors.As(err, &ne) && ne.Timeout():
				s.close(protocol.CodeHelloTimeout, "no hello in time")
			case errors.As(err, &ne) && ne.Timeout():
				s.close(protocol.CodeNoPong, "no pong in time")
			default:
				s.close(protocol.CodeGoingAway, "connection lost")
			}
			return
		}
		if s.isClosed() {
			s.srv.putFrameBuf(buf)
			continue // draining until the peer closes (closeWith)
		}
		deadline()
		if typ != websocket.BinaryMessage {
			s.srv.putFrameBuf(buf)
			s.close(protocol.CodeBadFrame, "text frames are not part of the protocol")
			return
		}
		ok := handle(*buf)
		s.srv.putFrameBuf(buf)
		if !ok {
			return
		}
	}
}

// renewSlack: a read deadline is renewed at most once per 1/renewSlack of
// its duration (35 s by default: about once a second), and a write
// deadline kept while it is at most WriteTimeout/renewSlack later than
// asked (corkConn).
const renewSlack = 32

// readAll reads r to its end into buf[:0], growing it as needed (the
// connection's read limit bounds it), as io.ReadAll does into a new slice.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// frameBuf takes a frame buffer from the server's pool.
func (s *Server) frameBuf() *[]byte {
	if b, ok := s.frameBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, frameBufSize)
	return &b
}

// putFrameBuf gives a frame buffer back (one grown past maxPooledFrame by a
// large frame is left to the garbage collector).
func (s *Server) putFrameBuf(b *[]byte) {
	if b != nil && cap(*b) <= maxPooledFrame {
		*b = (*b)[:0]
		s.frameBufs.Put(b)
	}
}

// Frame buffers: the first size of one, and the largest kept for reuse.
const (
	frameBufSize   = 512
	maxPooledFrame = 16 << 10
)

// readBufferSize is each WebSocket connection's read buffer (see the
// upgrader in New). gorilla needs at least a control frame's 125 bytes.
const readBufferSize = 256
