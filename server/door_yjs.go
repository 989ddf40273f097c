package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
	"github.com/collabd/collabd/server/owner"
)

// The Yjs doors (docs/YJS.md): y-websocket at GET /v1/yjs/{doc...} and
// Hocuspocus at GET /v1/hocuspocus. Their connections are sessions like
// the native ones (same queue, writer, limits, shutdown); their documents
// are yjsSubs, Yjs documents behind the same owners.

// errNoCredentials is the refusal of a Yjs door connection without a
// token in auth mode.
var errNoCredentials = errors.New("no token: pass it as the token query parameter (y-websocket params) or in the Authorization header")

// yjsLimits are the decoders' limits for the Yjs doors: a frame may hold a
// client's whole offline history (its first sync step 2).
func (s *Server) yjsDecodeLimits() yproto.Limits {
	return yproto.Limits{MaxMessage: s.cfg.MaxYjsFrame}
}

// openYjs admits and upgrades a Yjs door connection. Credentials on the
// upgrade request are checked first: claims is what they grant, authErr
// why they were refused (both nil without credentials or auth).
func (s *Server) openYjs(w http.ResponseWriter, r *http.Request, door string) (sess *session, conn *websocket.Conn, release func(), claims *Claims, authErr error) {
	ip := s.clientIP(r)
	release, code := s.admit(ip)
	if release == nil {
		s.refused(r, "limits", "code", int(code))
		w.Header().Set("Retry-After", "10")
		http.Error(w, code.String(), httpStatus(code))
		return nil, nil, nil, nil, nil
	}
	if in := s.httpAuthInput(r, ""); s.auth.offered(in) {
		claims, authErr = s.auth.authenticate(r.Context(), in, time.Now())
		if authErr != nil {
			claims = nil
		}
	}
	conn, t, err := s.upgradeWS(w, r)
	if err != nil {
		release()
		return nil, nil, nil, nil, nil // the upgrader has answered
	}
	conn.SetReadLimit(int64(s.cfg.MaxYjsFrame))
	sess = newSession(s, t, newSessionID())
	sess.hailed.Store(true) // no hello in the Yjs protocols
	sess.remote, sess.userAgent, sess.door = ip, r.UserAgent(), door
	s.cfg.Logger.Debug("session opened", "session", sess.id, "remote", ip, "transport", door)
	return sess, conn, release, claims, authErr
}

// serveYWebsocket is the y-websocket door: one document per connection,
// named by the path (the provider appends "/" + room to its server URL),
// the token in the upgrade request.
func (s *Server) serveYWebsocket(w http.ResponseWriter, r *http.Request) {
	doc := r.PathValue("doc")
	if err := protocol.CheckDocID(doc, 0); err != nil {
		writeError(w, 0, protocol.CodeBadDocID, err.Error())
		return
	}
	sess, conn, release, claims, authErr := s.openYjs(w, r, "y-websocket")
	if sess == nil {
		return
	}
	sess.keepalive = func() { // a WebSocket ping: browsers and ws answer it themselves
		_ = conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteTimeout))
	}
	s.runSession(sess, release, func() { sess.yWebsocketLoop(s.ctx, conn, doc, claims, authErr) })
}

// yWebsocketLoop serves one y-websocket connection.
func (s *session) yWebsocketLoop(ctx context.Context, conn *websocket.Conn, doc string, claims *Claims, authErr error) {
	access := AccessWrite
	if s.srv.auth != nil {
		switch {
		case authErr != nil:
			s.yjsDeny(authCode(authErr), "authentication failed: "+authErr.Error())
			return
		case claims == nil:
			s.yjsDeny(protocol.CodeUnauthorized, errNoCredentials.Error())
			return
		}
		if access = claims.access(doc); access == AccessNone {
			s.yjsDeny(protocol.CodeForbidden, "the token does not grant this document")
			return
		}
		s.claims, s.subject = claims, claims.Subject
		s.setExpiry(claims)
	}
	sub := s.newYjsSub(doc, nil, claims)
	if !s.joinYjs(ctx, sub, access == AccessRead) {
		return
	}
	defer s.leaveYjs(ctx, sub)
	lim := s.srv.yjsDecodeLimits()
	s.readYjs(conn, func(data []byte) bool {
		m, err := yproto.Decode(data, lim)
		if err != nil {
			s.close(protocol.CodeBadFrame, err.Error())
			return false
		}
		switch m.Type {
		case yproto.TypeSync:
			return s.yjsSync(ctx, sub, m.Sync, m.Payload)
		case yproto.TypeAwareness:
			return s.yjsAwareness(ctx, sub, m.Payload)
		case yproto.TypeQueryAwareness:
			return sub.o.Send(ctx, owner.Awareness{Sub: sub})
		}
		return true // auth messages are the server's to send
	})
}

// yjsDeny refuses a y-websocket connection in the protocol's words (the
// auth message's permission denied, which the provider logs) and closes it
// with code.
func (s *session) yjsDeny(code protocol.Code, reason string) {
	s.enqueue(yproto.AppendAuthDenied(nil, reason))
	s.close(code, reason)
}

// newYjsSub makes a sub of the connection for doc (key: the Hocuspocus
// routing key, encoded; nil for y-websocket).
func (s *session) newYjsSub(doc string, key []byte, claims *Claims) *yjsSub {
	s.yjsSubs++
	id := s.id
	if s.yjsSubs > 1 {
		id += "." + strconv.Itoa(s.yjsSubs)
	}
	return &yjsSub{conn: s, id: id, doc: doc, key: key, claims: claims, clients: map[uint64]bool{}}
}

// joinYjs acquires the sub's document and joins it as a Yjs document
// (without a sync: the peer starts it with its step 1). It reports false
// when the connection must end.
func (s *session) joinYjs(ctx context.Context, sub *yjsSub, readOnly bool) bool {
	return offload(func() bool { return s.joinYjsHere(ctx, sub, readOnly) }) // off the read loop's stack (see offload)
}

func (s *session) joinYjsHere(ctx context.Context, sub *yjsSub, readOnly bool) bool {
	o, err := s.srv.subscribe(ctx, sub.doc)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		s.close(protocol.CodeOverloaded, err.Error())
		return false
	}
	sub.o, sub.readOnly = o, readOnly
	return o.Send(ctx, owner.Join{Sub: sub, Kind: owner.KindYjs, NoSync: true, ReadOnly: readOnly, User: sub.user()})
}

// leaveYjs leaves the sub's document (its awareness states go at once).
func (s *session) leaveYjs(ctx context.Context, sub *yjsSub) {
	if sub.o == nil {
		return
	}
	sub.o.Send(ctx, owner.Leave{Sub: sub})
	sub.o.Release()
	sub.o = nil
}

// yjsSync handles a sync message: step 1 asks for what the peer lacks
// (answered by step 2 and the server's step 1); step 2 and updates are
// update batches, acked (Hocuspocus: SyncStatus) once durable.
func (s *session) yjsSync(ctx context.Context, sub *yjsSub, t yproto.SyncType, payload []byte) bool {
	if t == yproto.SyncStep1 {
		return sub.o.Send(ctx, owner.Sync{Sub: sub, SV: payload})
	}
	if sub.readOnly {
		empty := isEmptyYjsUpdate(payload) // a step 2 with nothing new: no write
		switch {
		case sub.hocus():
			return s.enqueue(sub.hframe(yproto.HMessage{Type: yproto.HSyncStatus, Synced: empty}))
		case !empty && !sub.denied:
			sub.denied = true
			return s.enqueue(yproto.AppendAuthDenied(nil, "read-only: your updates are not applied"))
		}
		return true
	}
	sub.batch++
	return sub.o.Send(ctx, owner.Update{Sub: sub, Batch: sub.batch, Update: payload})
}

// isEmptyYjsUpdate reports whether u is the empty Yjs update (no structs,
// no deletes): what a peer that has nothing new sends as its step 2.
func isEmptyYjsUpdate(u []byte) bool { return len(u) == 2 && u[0] == 0 && u[1] == 0 }

// yjsAwareness relays an awareness update, within the connection's
// presence rate (past it updates are dropped: the next one carries the
// latest state).
func (s *session) yjsAwareness(ctx context.Context, sub *yjsSub, update []byte) bool {
	if !s.presLimiter().Allow() {
		return true
	}
	stamped, err := sub.stampAwareness(update, s.srv.yjsDecodeLimits())
	if err != nil || stamped == nil {
		return true // malformed awareness is dropped, never the document
	}
	return sub.o.Send(ctx, owner.Awareness{Sub: sub, Update: stamped})
}

// readYjs reads frames until the connection ends or handle reports false
// (the server pings every PingInterval; any frame or pong renews the
// deadline).
func (s *session) readYjs(conn *websocket.Conn, handle func([]byte) bool) {
	// Not cfg := s.srv.cfg: that copies the whole Config (700 bytes) into
	// the read loop's frame, which then no longer fits the 2 KiB stack it
	// waits on (readWS). handle keeps what it decodes: a frame of its own
	// (readWS reuses its buffer).
	s.readWS(conn, s.srv.cfg.PingInterval+s.srv.cfg.PongTimeout, nil, func(data []byte) bool { return handle(bytes.Clone(data)) })
}
