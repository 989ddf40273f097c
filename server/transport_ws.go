package server

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/protocol"
)

// transport is how a session's frames reach its peer: a WebSocket, or the
// SSE + POST fallback (transport_rt.go). The writer goroutine is its only
// writer.
type transport interface {
	writeFrames(frames [][]byte, deadline time.Time) error
	closeWith(code protocol.Code, reason string) // best-effort close frame, then release the connection
}

// wsTransport is a session over a WebSocket.
type wsTransport struct{ conn *websocket.Conn }

func (t wsTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	_ = t.conn.SetWriteDeadline(deadline)
	for _, f := range frames {
		if err := t.conn.WriteMessage(websocket.BinaryMessage, f); err != nil {
			return err
		}
	}
	return nil
}

func (t wsTransport) closeWith(code protocol.Code, reason string) {
	msg := websocket.FormatCloseMessage(int(code), reason)
	_ = t.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)) // best effort
	_ = t.conn.Close()
}

// wsReadLoop authenticates the connection with its hello, then routes
// frames, until the connection ends.
func (s *session) wsReadLoop(ctx context.Context, conn *websocket.Conn) {
	cfg := s.srv.cfg
	conn.SetReadLimit(int64(cfg.MaxFrame))
	deadline := func() {
		now := time.Now()
		s.lastSeen.Store(now.UnixNano())
		_ = conn.SetReadDeadline(now.Add(cfg.PingInterval + cfg.PongTimeout))
	}
	s.lastSeen.Store(time.Now().UnixNano())
	conn.SetPongHandler(func(string) error { deadline(); return nil }) // control pongs from clients that send control pings
	defer s.leaveAll(ctx)
	_ = conn.SetReadDeadline(time.Now().Add(cfg.HelloTimeout))
	hello := true
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				s.close(protocol.CodeFrameTooLarge, "frame too large")
			case hello && errors.As(err, &ne) && ne.Timeout():
				s.close(protocol.CodeHelloTimeout, "no hello in time")
			case errors.As(err, &ne) && ne.Timeout():
				s.close(protocol.CodeNoPong, "no pong in time")
			default:
				s.close(protocol.CodeGoingAway, "connection lost")
			}
			return
		}
		deadline()
		if typ != websocket.BinaryMessage {
			s.close(protocol.CodeBadFrame, "text frames are not part of the protocol")
			return
		}
		if !s.frame(ctx, data, &hello) {
			return
		}
	}
}
