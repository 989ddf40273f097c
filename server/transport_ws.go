package server

import (
	"bufio"
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
	br   *bufio.Reader // gorilla's reader (nil if the upgrade did not go through corkHijacker)
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
	return conn, wsTransport{conn: conn, cork: h.conn, br: h.br}, nil
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
//
// On a plain TCP connection the loop waits for the next frame in
// waitReadable, a few frames deep, and reads and handles what arrived on
// another goroutine (a drain pool worker, drainpool.go, or one of its own:
// offload), waiting for it: the read loop's stack
// stays at the 2 KiB a goroutine starts with. Go grows a stack on demand
// but halves it at a garbage collection only while less than a quarter
// minus 800 bytes of it is in use, which no goroutine blocked in a read
// through gorilla is: an idle connection's read loop kept 4 KiB (8 before
// the hello and join were offloaded). The cost is a hand-over per burst of
// frames (BENCHMARKS.md, Idle connections). Pongs are taken before gorilla
// sees them (takePongs).
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
	// The first deadline is set off the read loop's stack too: setting a
	// deadline runs the runtime's timer code, the deepest call the read
	// loop itself would make (the Yjs doors' loops, a few frames deeper
	// than the native one, outgrew 2 KiB there: IdleSessionStacks/y-websocket).
	offload(func() bool { _ = conn.SetReadDeadline(time.Now().Add(first)); return true })
	r := wsReader{s: s, conn: conn, hello: hello, handle: handle, deadline: deadline}
	t, _ := s.t.(wsTransport)
	rc := rawConnOf(t.cork.underlying())
	if rc == nil || t.br == nil {
		for r.next() {
		}
		return
	}
	r.br = t.br
	for {
		waitReadable(rc)
		if !s.srv.drains.run(r.drain) {
			return
		}
	}
}

// wsReader reads a WebSocket's frames for readWS; a copy goes to each
// goroutine that drains the frames of a wake-up.
type wsReader struct {
	s        *session
	conn     *websocket.Conn
	br       *bufio.Reader // gorilla's reader: bytes it holds raise no socket readiness
	hello    *bool
	handle   func([]byte) bool
	deadline func()
}

// drain reads and handles frames until gorilla holds no more read bytes
// (the socket may have more: the read loop's wait sees them). It reports
// false when the loop is to end.
func (r wsReader) drain() bool {
	if r.br.Buffered() == 0 {
		// The socket is readable (one read, no wait), has ended, or its
		// deadline passed: gorilla reads the error again and reports it.
		if _, err := r.br.Peek(1); err != nil {
			return r.next()
		}
	}
	for {
		takePongs(r.br, r.conn.PongHandler())
		if r.br.Buffered() == 0 {
			return true
		}
		if !r.next() {
			return false
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

// takePongs consumes the pong control frames at the head of what br holds
// (whole frames only) and calls onPong with each one's payload, as gorilla
// would. gorilla handles a control frame inside its read of the next
// message and then waits there, deep, for that message: an idle connection
// that answers the server's WebSocket pings (the Yjs doors' keepalive;
// browsers answer by themselves) would keep a goroutine with a deep stack
// between pings. Between messages gorilla's reader is at a frame boundary,
// so the frames taken here are never seen by gorilla. Other control frames
// (ping, close) and anything malformed are left to gorilla.
func takePongs(br *bufio.Reader, onPong func(string) error) {
	for {
		n := br.Buffered()
		if n < 6 {
			return
		}
		h, _ := br.Peek(n)
		// FIN, no RSV bits, opcode 10 (pong); masked (as every client
		// frame must be), at most 125 bytes (a control frame's limit).
		size := int(h[1] & 0x7f)
		if h[0] != 0x8a || h[1]&0x80 == 0 || size > 125 || n < 6+size {
			return
		}
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = h[6+i] ^ h[2+i%4]
		}
		_, _ = br.Discard(6 + size)
		_ = onPong(string(payload)) // readWS's handler renews the deadline; it never fails
	}
}

// next reads one message and handles it. It reports false when the loop
// is to end (the session is then closed).
func (r wsReader) next() bool {
	s := r.s
	typ, rd, err := r.conn.NextReader()
	var buf *[]byte
	if err == nil {
		buf = s.srv.frameBuf()
		*buf, err = readAll(rd, *buf)
	}
	if err != nil {
		s.srv.putFrameBuf(buf)
		var ne net.Error
		switch {
		case errors.Is(err, websocket.ErrReadLimit):
			s.close(protocol.CodeFrameTooLarge, "frame too large")
		case r.hello != nil && *r.hello && errors.As(err, &ne) && ne.Timeout():
			s.close(protocol.CodeHelloTimeout, "no hello in time")
		case errors.As(err, &ne) && ne.Timeout():
			s.close(protocol.CodeNoPong, "no pong in time")
		default:
			s.close(protocol.CodeGoingAway, "connection lost")
		}
		return false
	}
	if s.isClosed() {
		s.srv.putFrameBuf(buf)
		return true // draining until the peer closes (closeWith)
	}
	r.deadline()
	if typ != websocket.BinaryMessage {
		s.srv.putFrameBuf(buf)
		s.close(protocol.CodeBadFrame, "text frames are not part of the protocol")
		return false
	}
	ok := r.handle(*buf)
	s.srv.putFrameBuf(buf)
	return ok
}

// readBufferSize is each WebSocket connection's read buffer (see the
// upgrader in New and corkHijacker). gorilla needs at least a control
// frame's 125 bytes, and keeps a hijacked reader only if it is larger than
// 256 bytes; 288 is a size class of Go's allocator.
const readBufferSize = 288
