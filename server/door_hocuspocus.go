package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
	"github.com/collabd/collabd/server/owner"
)

// Hocuspocus scopes (the Authenticated message's text).
const (
	scopeReadWrite = "read-write"
	scopeReadOnly  = "readonly"
)

// serveHocuspocus is the Hocuspocus door: many documents on one
// connection, each opened by its provider's Auth message (with the token).
func (s *Server) serveHocuspocus(w http.ResponseWriter, r *http.Request) {
	sess, conn, release, claims, _ := s.openYjs(w, r, "hocuspocus")
	if sess == nil {
		return
	}
	ping := yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HPing})
	sess.keepalive = func() { sess.enqueue(ping) } // the provider answers with a Pong frame
	s.runSession(sess, release, func() { sess.hocuspocusLoop(s.ctx, conn, claims) })
}

// hocuspocusConn is the read loop's state of a Hocuspocus connection: its
// providers' subs by routing key.
type hocuspocusConn struct {
	s       *session
	upgrade *Claims // what the upgrade request's credentials granted (nil: none)
	subs    map[string]*yjsSub
	lim     yproto.Limits
}

// hocuspocusLoop serves one Hocuspocus connection.
func (s *session) hocuspocusLoop(ctx context.Context, conn *websocket.Conn, upgrade *Claims) {
	h := &hocuspocusConn{s: s, upgrade: upgrade, subs: map[string]*yjsSub{}, lim: s.srv.yjsDecodeLimits()}
	defer func() {
		for _, sub := range h.subs {
			s.leaveYjs(ctx, sub)
		}
	}()
	s.readYjs(conn, func(data []byte) bool { return h.frame(ctx, data) })
}

// frame handles one frame. It reports false when the connection must end.
func (h *hocuspocusConn) frame(ctx context.Context, data []byte) bool {
	s := h.s
	m, err := yproto.DecodeHocuspocus(data, h.lim)
	if err != nil {
		s.close(protocol.CodeBadFrame, err.Error())
		return false
	}
	switch m.Type {
	case yproto.HPing:
		return s.enqueue(yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HPong}))
	case yproto.HPong:
		return true
	}
	key := m.Doc
	if m.HasKey {
		key += "\x00" + m.Session
	}
	sub := h.subs[key]
	if sub != nil && sub.ended.Load() { // denied by its owner (deleted, other kind): forgotten
		s.leaveYjs(ctx, sub)
		delete(h.subs, key)
		sub = nil
	}
	if m.Type == yproto.HAuth {
		if m.Auth != yproto.AuthToken {
			return true // the other subtypes are the server's to send
		}
		return offload(func() bool { return h.auth(ctx, m, key, sub) }) // authentication: off the read loop's stack
	}
	if sub == nil {
		// Not authenticated (yet, or denied): the provider sends its
		// token first, so this is a provider the server refused. Dropped.
		return true
	}
	switch m.Type {
	case yproto.HSync:
		return s.yjsSync(ctx, sub, m.Sync, m.Payload)
	case yproto.HAwareness:
		return s.yjsAwareness(ctx, sub, m.Payload)
	case yproto.HQueryAwareness:
		return sub.o.Send(ctx, owner.Awareness{Sub: sub})
	case yproto.HStateless:
		return h.stateless(ctx, sub, m.Stateless)
	case yproto.HClose: // the provider detached from the document
		s.leaveYjs(ctx, sub)
		delete(h.subs, key)
	}
	return true
}

// auth opens a provider's document with its token (or the upgrade
// request's credentials when it sends none) and answers Authenticated
// with its scope, or PermissionDenied with the reason; the connection and
// its other documents go on either way. A second Auth for an open document
// (a provider that reconnected its document) answers with the scope again.
func (h *hocuspocusConn) auth(ctx context.Context, m yproto.HMessage, key string, sub *yjsSub) bool {
	s := h.s
	reply := func(t yproto.AuthType, text string) bool {
		f := yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: m.Doc, Session: m.Session, HasKey: m.HasKey,
			Auth: t, Text: text, HasText: true})
		return s.enqueue(f)
	}
	deny := func(code protocol.Code, reason string) bool {
		s.srv.metrics.ErrorSent(code)
		return reply(yproto.AuthPermissionDenied, reason)
	}
	scope := func(readOnly bool) string {
		if readOnly {
			return scopeReadOnly
		}
		return scopeReadWrite
	}
	if sub != nil {
		return reply(yproto.AuthAuthenticated, scope(sub.readOnly))
	}
	if err := protocol.CheckDocID(m.Doc, 0); err != nil {
		return deny(protocol.CodeBadDocID, err.Error())
	}
	if len(m.Text) > protocol.DefaultMaxToken { // the native Hello's bound, here too
		return deny(protocol.CodeUnauthorized, fmt.Sprintf("token of %d bytes, more than %d", len(m.Text), protocol.DefaultMaxToken))
	}
	access, claims := AccessWrite, (*Claims)(nil)
	if auth := s.srv.auth; auth != nil {
		claims = h.upgrade
		if m.Text != "" {
			c, err := auth.authenticate(ctx, authInput{Token: m.Text, Doc: m.Doc, Source: "hocuspocus", IP: s.remote, UserAgent: s.userAgent}, time.Now())
			if err != nil {
				return deny(authCode(err), "authentication failed: "+err.Error())
			}
			claims = c
		}
		if claims == nil {
			return deny(protocol.CodeUnauthorized, "no token")
		}
		if access = claims.access(m.Doc); access == AccessNone {
			return deny(protocol.CodeForbidden, "the token does not grant this document")
		}
	}
	if len(h.subs) >= s.srv.cfg.MaxDocsPerConn {
		return deny(protocol.CodeTooManyDocs, "too many documents on one connection")
	}
	if !s.joins.Allow() {
		return deny(protocol.CodeRateLimited, "join rate exceeded; reconnect later")
	}
	if claims != nil {
		if s.subject == "" {
			s.subject = claims.Subject
		}
		h.expireWith(claims)
	}
	sub = s.newYjsSub(m.Doc, hocusKey(m), claims)
	sub.scope = scope(access == AccessRead)
	// Authenticated goes out when the owner has accepted the join
	// (JoinedEvent), before anything else it sends for the document; a
	// document of the other kind, deleted or refused is PermissionDenied
	// alone.
	if !s.joinYjs(ctx, sub, access == AccessRead) {
		return false
	}
	h.subs[key] = sub
	return true
}

// expireWith closes the connection when the earliest of its tokens
// expires (a provider reconnects with a fresh one).
func (h *hocuspocusConn) expireWith(c *Claims) {
	s := h.s
	if c.ExpiresAt == nil {
		return
	}
	if cur := s.claims; cur != nil && cur.ExpiresAt != nil && cur.ExpiresAt.Before(c.ExpiresAt.Time) {
		return
	}
	s.claims = c
	s.setExpiry(c)
}

// stateless relays a provider's stateless message to the document's other
// subscribers as a broadcast message (Hocuspocus providers get it as a
// stateless message, collabd clients and SSE followers as a message
// event). A payload that is not JSON travels as a JSON string.
func (h *hocuspocusConn) stateless(ctx context.Context, sub *yjsSub, payload string) bool {
	s := h.s
	if sub.readOnly || !s.msgLimiter().Allow() {
		return true // dropped: stateless messages have no refusal
	}
	data := []byte(payload)
	if len(data) > s.srv.cfg.MaxMessage {
		return true
	}
	if !json.Valid(data) {
		data, _ = json.Marshal(payload)
	}
	return sub.o.Send(ctx, owner.Broadcast{From: sub, Data: data})
}
