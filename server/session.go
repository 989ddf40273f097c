package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// A session is one WebSocket connection: a read loop (its own goroutine)
// that decodes frames and routes them to document owners, and a writer that
// drains a queue bounded in bytes. The writer goroutine exists only while
// there is something to write, so an idle connection costs one goroutine;
// pings come from the server's pinger and token expiry from a timer.
// Owners enqueue without blocking; a session whose queue overflows is closed
// with CodeSlow and resyncs when it comes back.
type session struct {
	srv       *Server
	t         transport
	id        string
	remote    string    // the peer's address (logs, the auth callback)
	userAgent string    // the User-Agent of the request that opened it (the auth callback)
	opened    time.Time // when the connection was accepted (logs)
	// door is "y-websocket" or "hocuspocus" for a Yjs door's connection
	// (its frames are that door's, keepalive its door's ping), "" for the
	// native protocol.
	door      string
	keepalive func()
	yjsSubs   int // Yjs subs made on this connection (read loop; names them)

	mu       sync.Mutex // guards queue, queued, borrowed, writing, closed, code, reason, expire
	queue    [][]byte
	queued   int
	borrowed int  // bytes of queued sync frames beyond QueueBytes, taken from the server's sync budget
	writing  bool // a writer goroutine is running (only it writes data frames)
	closed   bool
	code     protocol.Code
	reason   string
	expire   *time.Timer   // closes the session when the token expires
	done     chan struct{} // closed by close()
	// flushed is closed once the close frame has been written (or the
	// writer gave up): the connection may then be released.
	flushed   chan struct{}
	flushOnce sync.Once

	// owned by the read loop
	agents   []crdt.AgentID // claimed by the hello (at most MaxAgents, no duplicate: a slice is smaller than a map)
	docs     map[string]docRef
	readOnly map[string]bool                // the documents joined read-only (made with the first)
	slots    map[string]*owner.PresenceSlot // presence slots since the last join of each document (made with the first)
	claims   *Claims                        // nil in development mode (or before the Hello)
	subject  string                         // claims.Subject, fixed by the Hello (read by owners)
	pres     *rate.Limiter                  // made with the first presence frame (presLimiter)
	joins    *rate.Limiter
	msgs     *rate.Limiter // made with the first broadcast message (msgLimiter)
	presErr  time.Time     // last CodeRateLimited sent for presence
	lastRoot string        // the root of the last presence set (its decode reuses the string)

	// ops limits the op rate; made with the first update (opLimiter: by
	// the owners that admit updates, so concurrently).
	ops atomic.Pointer[rate.Limiter]

	lastSeen atomic.Int64 // unix nanos of the last frame or pong (read by owners)
	// hailed: the hello was answered (a Yjs door's session: from the
	// start); the pinger pings no one before it, the welcome comes first.
	hailed atomic.Bool
}

func newSession(srv *Server, t transport, id string) *session {
	return &session{
		srv:     srv,
		t:       t,
		id:      id,
		opened:  time.Now(),
		done:    make(chan struct{}),
		flushed: make(chan struct{}),
		docs:    make(map[string]docRef),
		joins:   rate.NewLimiter(rate.Limit(srv.cfg.JoinRate), srv.cfg.JoinBurst),
	}
}

// enqueue queues a frame for the writer, starting it if needed. It never
// blocks. It reports false if the session is closed or was just closed for
// being slow.
func (s *session) enqueue(frame []byte) bool { return s.push(frame, s.srv.cfg.QueueBytes, true) }

// enqueueSync queues a frame of a document's sync (what a joining client
// lacks). A sync may be larger than the connection's queue (a big
// document, a fresh client): what does not fit in QueueBytes is borrowed
// from the server-wide sync budget (Config.SyncBudget) until it is
// written. Only when that is spent too is the session closed as slow
// (retryable), as for any frame.
func (s *session) enqueueSync(frame []byte) bool {
	s.mu.Lock()
	if !s.closed && s.queued+len(frame) > s.srv.cfg.QueueBytes && s.srv.syncs.take(int64(len(frame))) {
		s.queue = append(s.queue, frame)
		s.borrowed += len(frame)
		start := !s.writing
		s.writing = true
		s.mu.Unlock()
		if start {
			s.startWriter()
		}
		return true
	}
	s.mu.Unlock()
	return s.enqueue(frame)
}

// enqueueSoft queues a frame the session can do without (presence): if the
// queue is over half full the frame is dropped, never the connection. It
// reports whether the frame was queued.
func (s *session) enqueueSoft(frame []byte) bool {
	return s.push(frame, s.srv.cfg.QueueBytes/2, false)
}

// push queues frame unless the queue would pass limit bytes; then it closes
// the session as slow (closeIfFull) or just drops the frame.
func (s *session) push(frame []byte, limit int, closeIfFull bool) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.queued+len(frame) > limit {
		// A frame larger than the whole queue (a Yjs update of a big
		// paste) could never fit: it is borrowed from the sync budget, as
		// a sync is, rather than closing every subscriber as slow (they
		// would reconnect and sync the same bytes through the budget).
		if !(closeIfFull && len(frame) > limit && s.srv.syncs.take(int64(len(frame)))) {
			s.mu.Unlock()
			if closeIfFull {
				s.close(protocol.CodeSlow, "outbound queue full")
			}
			return false
		}
		s.borrowed += len(frame)
	} else {
		s.queued += len(frame)
	}
	s.queue = append(s.queue, frame)
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		s.startWriter()
	}
	return true
}

// Seen is when the peer last showed life (a frame or a pong).
func (s *session) Seen() time.Time { return time.Unix(0, s.lastSeen.Load()) }

// ID is the session id (its name in presence).
func (s *session) ID() string { return s.id }

var _ owner.Subscriber = (*session)(nil)

// Deliver encodes an owner event as protocol frames and queues them. An
// update fanned out to many sessions is encoded once (the event's Memo).
func (s *session) Deliver(ev owner.Event) bool {
	switch ev := ev.(type) {
	case *owner.SyncEvent:
		m := &protocol.Sync{Doc: ev.Doc, Chunk: ev.Chunk, Final: ev.Final, Update: ev.Update, Snapshot: ev.Snapshot}
		if ev.SV != nil {
			sv, err := crdt.DecodeStateVector(ev.SV, crdt.Limits{})
			if err != nil {
				return s.enqueue(protocol.Encode(&protocol.Error{Code: protocol.CodeInternal, Doc: ev.Doc, Message: "sync failed"}))
			}
			m.SV = sv
		}
		return s.enqueueSync(protocol.Encode(m))
	case *owner.UpdateEvent:
		if ev.Memo == nil {
			for _, u := range ev.Updates {
				ev.Memo = append(ev.Memo, protocol.Encode(&protocol.Update{Doc: ev.Doc, Update: u}))
			}
		}
		for _, f := range ev.Memo {
			if !s.enqueue(f) {
				return false
			}
		}
		return true
	case *owner.AckEvent:
		return s.enqueue(protocol.Encode(&protocol.Ack{Doc: ev.Doc, Batch: ev.Batch, Status: ev.Status, Applied: ev.Applied, Durable: ev.Durable}))
	case *owner.ErrorEvent:
		ok := s.enqueue(protocol.Encode(&protocol.Error{Code: ev.Code, Doc: ev.Doc, Batch: ev.Batch, Message: ev.Message,
			RetryAfterMs: int(ev.RetryAfter / time.Millisecond)}))
		if ev.Code == protocol.CodeForgedAgent { // a client that forges ops is not served further
			s.close(protocol.CodeForgedAgent, ev.Message)
			return false
		}
		return ok
	case *owner.PresenceEvent:
		return s.enqueue(presenceFrame(ev))
	case *owner.MessageEvent:
		return s.enqueue(messageFrame(ev))
	}
	return true // follower events
}

// DeliverSoft queues presence and broadcast messages unless the session is
// behind (then they are dropped, never the session).
func (s *session) DeliverSoft(ev owner.Event) bool {
	switch ev := ev.(type) {
	case *owner.PresenceEvent:
		return s.enqueueSoft(presenceFrame(ev))
	case *owner.MessageEvent:
		return s.enqueueSoft(messageFrame(ev))
	}
	return s.Deliver(ev)
}

// messageFrame is the event's frame, encoded once for every session.
func messageFrame(ev *owner.MessageEvent) []byte {
	if ev.Memo == nil {
		ev.Memo = protocol.Encode(&protocol.Broadcast{Doc: ev.Doc, From: ev.From, Data: ev.Data})
	}
	return ev.Memo
}

// presenceFrame is the event's frame, encoded once for every session.
func presenceFrame(ev *owner.PresenceEvent) []byte {
	if ev.Memo == nil {
		ev.Memo = protocol.Encode(ev.Msg)
	}
	return ev.Memo
}

// msgLimiter is the connection's limiter of broadcast messages, made with
// the first one (most connections send none). Read loop only.
func (s *session) msgLimiter() *rate.Limiter {
	if s.msgs == nil {
		s.msgs = rate.NewLimiter(rate.Limit(s.srv.cfg.MessageRate), s.srv.cfg.MessageBurst)
	}
	return s.msgs
}

// presLimiter is the connection's limiter of presence frames, made with
// the first one (an idle connection that never moved its cursor holds
// none). Read loop only.
func (s *session) presLimiter() *rate.Limiter {
	if s.pres == nil {
		s.pres = rate.NewLimiter(rate.Limit(s.srv.cfg.PresenceRate), s.srv.cfg.PresenceBurst)
	}
	return s.pres
}

// opLimiter is the connection's op rate limiter, made with the first
// update it sends. Owners call it concurrently: the first to store one wins.
func (s *session) opLimiter() *rate.Limiter {
	if l := s.ops.Load(); l != nil {
		return l
	}
	l := rate.NewLimiter(rate.Limit(s.srv.cfg.OpRate), s.srv.cfg.OpBurst)
	if s.ops.CompareAndSwap(nil, l) {
		return l
	}
	return s.ops.Load()
}

// setReadOnly records whether doc is joined read-only.
func (s *session) setReadOnly(doc string, ro bool) {
	if !ro {
		delete(s.readOnly, doc)
		return
	}
	if s.readOnly == nil {
		s.readOnly = make(map[string]bool)
	}
	s.readOnly[doc] = true
}

// user is who the session is, for presence: from the token, or a guest
// named after the session in development mode.
func (s *session) user() presence.User { return userOf(s.claims, s.id) }

// userOf is who a peer is in presence: from its token, or a guest named
// after its session id in development mode.
func userOf(c *Claims, id string) presence.User {
	if c == nil {
		return presence.User{Name: "Guest " + id[max(0, len(id)-4):], Color: presence.ColorFor(id)}
	}
	u := presence.User{ID: c.Subject, Name: c.Name, Color: c.Color}
	if u.Name == "" {
		u.Name = u.ID
	}
	if u.Color == "" {
		u.Color = presence.ColorFor(u.ID)
	}
	return u
}

func (s *session) startWriter() {
	s.srv.wg.Add(1)
	go func() {
		defer s.srv.wg.Done()
		defer s.recoverPanic()
		s.writer()
	}()
}

// recoverPanic, deferred at the top of a session's goroutines, turns a
// panic into closing that session (CodeInternal, retryable): one
// connection's bad frame must not take the process down.
func (s *session) recoverPanic() {
	if v := recover(); v != nil {
		s.srv.metrics.Panic()
		s.srv.cfg.Logger.Error("session panicked: connection closed", "session", s.id, "panic", v, "stack", string(debug.Stack()))
		s.close(protocol.CodeInternal, "internal error")
		s.t.closeWith(protocol.CodeInternal, "internal error")
		s.markFlushed()
	}
}

// markFlushed records that the close frame is out.
func (s *session) markFlushed() { s.flushOnce.Do(func() { close(s.flushed) }) }

func (s *session) sendError(code protocol.Code, doc string, batch uint64, msg string) {
	s.srv.metrics.ErrorSent(code)
	s.enqueue(protocol.Encode(&protocol.Error{Code: code, Doc: doc, Batch: batch, Message: msg}))
}

// close marks the session closed with a code; the writer sends what is
// queued (nothing to a slow peer), then the close frame, and closes the
// connection, which ends the read loop. The first code wins.
func (s *session) close(code protocol.Code, reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.code, s.reason = true, code, reason
	s.srv.metrics.closed(code)
	if s.expire != nil {
		s.expire.Stop()
	}
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	close(s.done)
	s.srv.sessionClosed(s, code, reason)
	if start {
		s.startWriter()
	}
}

// writer drains the queue and exits when it is empty; after close it also
// sends the close frame and closes the connection (and stays the last
// writer: writing is never reset once closed).
func (s *session) writer() {
	timeout := s.srv.cfg.WriteTimeout
	for {
		s.mu.Lock()
		frames, borrowed := s.queue, s.borrowed
		s.queue, s.queued, s.borrowed = nil, 0, 0
		closed, code, reason := s.closed, s.code, s.reason
		if len(frames) == 0 && !closed {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if closed {
			timeout = time.Second // best effort on the way out
		}
		if !(closed && code == protocol.CodeSlow) { // a slow peer gets no more data, only the close
			// One deadline for what was queued: a peer must take the whole
			// drained batch within the write timeout.
			if err := s.t.writeFrames(frames, time.Now().Add(timeout)); errors.Is(err, errRTSlow) {
				s.close(protocol.CodeSlow, "outbound queue full")
			} else if err != nil {
				s.close(protocol.CodeGoingAway, "write failed")
			}
		}
		if borrowed > 0 {
			s.srv.syncs.give(int64(borrowed))
		}
		if closed {
			s.t.closeWith(code, protocol.CloseReason(code, reason)) // the read loop drains, then ends
			s.markFlushed()
			return
		}
	}
}

// ping queues a protocol Ping frame (docs/PROTOCOL.md, Keepalive): a frame,
// not a WebSocket control ping, so that browser clients, which never see
// control frames, hear the server on an idle document. The peer's Pong (any
// frame) renews its read deadline.
func (s *session) ping() {
	if s.keepalive != nil {
		s.keepalive()
		return
	}
	s.enqueue(protocol.Encode(&protocol.Ping{Nonce: uint64(time.Now().UnixNano())}))
}

// frame handles one inbound frame: the hello first (*hello is true until it
// has been accepted), then routed messages. It reports false when the
// session must end (it has been closed). Read loop only.
//
// data is the read loop's buffer, reused for the next frame: a presence
// set is decoded from it in place; any other frame is copied first (a
// decoded message may alias its frame: an update's bytes).
func (s *session) frame(ctx context.Context, data []byte, hello *bool) bool {
	if !*hello && protocol.IsPresenceSet(data) {
		return s.presenceFrame(ctx, data)
	}
	m, err := protocol.Decode(bytes.Clone(data), s.srv.decodeLimits)
	if err != nil {
		s.refuseFrame(err)
		return false
	}
	if *hello {
		h, ok := m.(*protocol.Hello)
		if !ok {
			s.close(protocol.CodeUnauthorized, "hello must be the first frame")
			return false
		}
		if !offload(func() bool { return s.hello(ctx, h) }) {
			return false
		}
		*hello = false
		s.hailed.Store(true)
		return true
	}
	if j, ok := m.(*protocol.Join); ok {
		return offload(func() bool { return s.route(ctx, j) })
	}
	return s.route(ctx, m)
}

// offload runs f, a read loop's handling of a rare frame that takes a deep
// stack (the hello: authentication; a join: loading the document), on a
// goroutine of its own and waits for it, so the read loop's stack stays
// small for the rest of the connection's life: Go grows a stack on demand
// but gives it back only at a garbage collection, and only while the
// goroutine uses less than a quarter of it, which a read loop blocked in
// its read does not. An idle connection's read loop costs 4 KiB of stack
// instead of 8 (measured: BENCHMARKS.md, Idle connections). A WebSocket
// read loop on plain TCP goes further and handles every frame this way
// (readWS); the hello and join are offloaded here for the others (TLS,
// the SSE + POST fallback). The read loop
// owns the goroutine (it waits for it); a panic in f is raised again on
// the read loop, whose recovery closes the session.
func offload(f func() bool) bool {
	type result struct {
		ok    bool
		panic any
		stack []byte
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if v := recover(); v != nil {
				r.panic, r.stack = v, debug.Stack()
			}
			done <- r
		}()
		r.ok = f()
	}()
	r := <-done
	if r.panic != nil {
		panic(offloadedPanic{r.panic, r.stack})
	}
	return r.ok
}

// offloadedPanic is a panic raised again on the read loop, with the stack
// of the goroutine where it happened.
type offloadedPanic struct {
	v     any
	stack []byte
}

func (p offloadedPanic) String() string { return fmt.Sprintf("%v\n%s", p.v, p.stack) }

func (s *session) hello(ctx context.Context, h *protocol.Hello) bool {
	if h.Version != protocol.Version {
		s.close(protocol.CodeUnsupportedVersion, "unsupported protocol version")
		return false
	}
	if auth := s.srv.auth; auth != nil {
		if s.claims == nil {
			c, err := auth.authenticate(ctx, authInput{Token: h.Token, Source: "hello", IP: s.remote, UserAgent: s.userAgent}, time.Now())
			if err != nil {
				s.close(authCode(err), "authentication failed")
				return false
			}
			s.claims = c
		}
		s.setExpiry(s.claims)
		s.subject = s.claims.Subject
	}
	for _, a := range h.Agents {
		if !s.srv.claimAgent(a, s) {
			s.close(protocol.CodeAgentInUse, "agent claimed by another live session")
			return false
		}
		if !slices.Contains(s.agents, a) {
			s.agents = append(s.agents, a)
		}
	}
	cfg := s.srv.cfg
	return s.enqueue(protocol.Encode(&protocol.Welcome{Version: protocol.Version, Session: s.id, Limits: protocol.Limits{
		MaxFrame: cfg.MaxFrame, MaxDocs: cfg.MaxDocsPerConn, MaxOpsPerBatch: cfg.MaxOpsPerBatch, MaxDocBytes: cfg.MaxDocItems,
		PingIntervalMs: int(cfg.PingInterval / time.Millisecond), PongTimeoutMs: int(cfg.PongTimeout / time.Millisecond),
	}}))
}

// route handles one frame after the hello. It reports false when the
// session must end.
func (s *session) route(ctx context.Context, m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.Join:
		access := s.access(m.Doc)
		if access == AccessNone {
			s.sendError(protocol.CodeForbidden, m.Doc, 0, "the token does not grant this document")
			return true
		}
		if _, ok := s.docs[m.Doc]; ok {
			// A rejoin restarts the sync (a client that suspects a gap
			// asks again); the subscription and its reference stay as they are.
			s.setReadOnly(m.Doc, m.ReadOnly || access == AccessRead)
			delete(s.slots, m.Doc) // the next presence registers a new slot, after this join
			return s.sendTo(ctx, m.Doc, s.joinMsg(m))
		}
		if len(s.docs) >= s.srv.cfg.MaxDocsPerConn {
			s.sendError(protocol.CodeTooManyDocs, m.Doc, 0, "too many documents on one connection")
			return true
		}
		if !s.joins.Allow() {
			s.sendRetry(protocol.CodeRateLimited, m.Doc, 0, "join rate exceeded; join again later", time.Second)
			return true
		}
		o, err := s.srv.subscribe(ctx, m.Doc)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			s.sendRetry(protocol.CodeOverloaded, m.Doc, 0, err.Error(), time.Second)
			return true
		}
		s.docs[m.Doc] = o
		s.setReadOnly(m.Doc, m.ReadOnly || access == AccessRead)
		return s.sendTo(ctx, m.Doc, s.joinMsg(m))
	case *protocol.PresenceSet:
		return s.presenceSet(ctx, []byte(m.Doc), m.State)
	case *protocol.Update:
		if _, ok := s.docs[m.Doc]; !ok {
			s.sendError(protocol.CodeNotJoined, m.Doc, m.Batch, "update for a document not joined")
			return true
		}
		return s.sendTo(ctx, m.Doc, owner.Update{Sub: s, Batch: m.Batch, Update: m.Update})
	case *protocol.Leave:
		o, ok := s.docs[m.Doc]
		if !ok {
			s.sendError(protocol.CodeNotJoined, m.Doc, 0, "leave of a document not joined")
			return true
		}
		delete(s.docs, m.Doc)
		delete(s.readOnly, m.Doc)
		delete(s.slots, m.Doc)
		o.Send(ctx, owner.Leave{Sub: s})
		o.Release()
		return true
	case *protocol.Broadcast:
		if _, ok := s.docs[m.Doc]; !ok {
			s.sendError(protocol.CodeNotJoined, m.Doc, 0, "message for a document not joined")
			return true
		}
		if s.readOnly[m.Doc] {
			s.sendError(protocol.CodeReadOnly, m.Doc, 0, "document joined read-only: messages need write access")
			return true
		}
		if !s.msgLimiter().Allow() {
			s.sendRetry(protocol.CodeRateLimited, m.Doc, 0, "message rate exceeded; message dropped", time.Second)
			return true
		}
		return s.sendTo(ctx, m.Doc, owner.Broadcast{From: s, Data: m.Data})
	case *protocol.Ping:
		return s.enqueue(protocol.Encode(&protocol.Pong{Nonce: m.Nonce}))
	case *protocol.Refresh:
		return s.refresh(ctx, m.Token)
	case *protocol.Pong:
		return true
	default:
		s.close(protocol.CodeBadFrame, "unexpected message")
		return false
	}
}

// sendTo delivers m to the owner of doc, which the session has joined. It
// reports false when the session must end (the server is shutting down).
func (s *session) sendTo(ctx context.Context, doc string, m owner.Msg) bool {
	return s.docs[doc].Send(ctx, m)
}

// presencePoster is a document reference whose owner takes presence
// through a box (a local owner): see owner.PostPresence.
type presencePoster interface {
	PostPresence(slot *owner.PresenceSlot, st presence.State) bool
}

var _ presencePoster = localRef{}

// presenceSet handles a PresenceSet for doc: within the session's
// presence rate, it goes to doc's owner (setPresence). doc may alias the
// read buffer (presenceFrame): it is copied only when kept.
func (s *session) presenceSet(ctx context.Context, doc []byte, st presence.State) bool {
	ref, ok := s.docs[string(doc)]
	if !ok {
		s.sendError(protocol.CodeNotJoined, string(doc), 0, "presence for a document not joined")
		return true
	}
	now := time.Now()
	if !s.presLimiter().AllowN(now, 1) {
		if now.Sub(s.presErr) >= time.Second {
			s.presErr = now
			s.enqueue(protocol.Encode(&protocol.Error{Code: protocol.CodeRateLimited, Doc: string(doc),
				Message: "presence rate exceeded; frames dropped, send your latest state again", RetryAfterMs: 1000}))
		}
		return true
	}
	return s.setPresence(ctx, ref, doc, st)
}

// setPresence hands the session's presence on doc (joined; ref is its
// owner) over: the first after a join as a SetPresence that registers a
// new slot (in order with the join), the later ones left in that slot for
// the owner's next flush, without a message or a wake-up each. An owner of
// another node gets a SetPresence each time. It reports false when the
// session must end.
func (s *session) setPresence(ctx context.Context, ref docRef, doc []byte, st presence.State) bool {
	box, ok := ref.(presencePoster)
	if !ok {
		return ref.Send(ctx, owner.SetPresence{Sub: s, State: st})
	}
	if slot := s.slots[string(doc)]; slot != nil {
		return box.PostPresence(slot, st)
	}
	slot := owner.NewPresenceSlot(s)
	if s.slots == nil {
		s.slots = make(map[string]*owner.PresenceSlot)
	}
	s.slots[string(doc)] = slot
	return ref.Send(ctx, owner.SetPresence{Sub: s, State: st, Slot: slot})
}

// presenceFrame handles a PresenceSet frame (after the hello), decoded
// without copying what it only looks up (protocol.DecodePresenceSet): the
// frame a storm is made of.
func (s *session) presenceFrame(ctx context.Context, data []byte) bool {
	doc, st, err := protocol.DecodePresenceSet(data, s.srv.decodeLimits, s.lastRoot)
	if err != nil {
		s.refuseFrame(err)
		return false
	}
	s.lastRoot = st.Cursor.Root
	return s.presenceSet(ctx, doc, st)
}

// refuseFrame closes the session for a frame that does not decode.
func (s *session) refuseFrame(err error) {
	code := protocol.CodeBadFrame
	var de *protocol.DecodeError
	if errors.As(err, &de) {
		code = de.Code()
	}
	s.close(code, err.Error())
}

// joinMsg is the owner's Join for a protocol Join.
func (s *session) joinMsg(m *protocol.Join) owner.Join {
	return owner.Join{Sub: s, SV: crdt.EncodeStateVector(m.SV), ReadOnly: s.readOnly[m.Doc], User: s.user(), Snapshot: m.Snapshot}
}

var _ owner.Author = (*session)(nil)

var _ owner.Authored = (*session)(nil)

// Subject is the token subject of the session's user ("" in development
// mode): the author of its changes. Set before the session joins anything
// (a refresh keeps the subject), so the owners may read it.
func (s *session) Subject() string { return s.subject }

// Admit checks a client update on the owner's one decode of it (owner
// goroutine; agents is written only by the hello, before any join): every
// op must be of an agent the session claimed, the batch within
// MaxOpsPerBatch, and the session within its op rate.
func (s *session) Admit(replicas []uint64, ops, length int) error {
	for _, r := range replicas {
		if !slices.Contains(s.agents, crdt.AgentID(r)) {
			return &owner.Refused{Code: protocol.CodeForgedAgent, Message: "op of an agent this session did not claim"}
		}
	}
	if ops > s.srv.cfg.MaxOpsPerBatch {
		return &owner.Refused{Code: protocol.CodeTooManyOps, Message: fmt.Sprintf("%d ops in one update, more than %d", ops, s.srv.cfg.MaxOpsPerBatch)}
	}
	if !s.opLimiter().AllowN(time.Now(), min(length, s.srv.cfg.OpBurst)) {
		return &owner.Refused{Code: protocol.CodeRateLimited, Message: "op rate exceeded; resend later"}
	}
	return nil
}

// sendRetry sends a retryable error with a retry-after hint.
func (s *session) sendRetry(code protocol.Code, doc string, batch uint64, msg string, after time.Duration) {
	s.srv.metrics.ErrorSent(code)
	s.enqueue(protocol.Encode(&protocol.Error{Code: code, Doc: doc, Batch: batch, Message: msg, RetryAfterMs: int(after / time.Millisecond)}))
}

// leaveAll removes the session from every document and gives up its agents.
func (s *session) leaveAll(ctx context.Context) {
	for id, o := range s.docs {
		o.Send(ctx, owner.Leave{Sub: s})
		o.Release()
		delete(s.docs, id)
	}
	for _, a := range s.agents {
		s.srv.releaseAgent(a, s)
	}
}

// access is what the session's token grants for doc (everything in
// development mode).
func (s *session) access(doc string) Access {
	if s.srv.auth == nil {
		return AccessWrite
	}
	return s.claims.access(doc)
}

// refresh replaces the session's token in-band, before it expires. The new
// token must be for the same subject; documents already joined stay joined
// only if still granted.
func (s *session) refresh(ctx context.Context, token string) bool {
	auth := s.srv.auth
	if auth == nil {
		return true
	}
	c, err := auth.authenticate(ctx, authInput{Token: token, Source: "refresh", IP: s.remote, UserAgent: s.userAgent}, time.Now())
	if err != nil {
		s.close(authCode(err), "token refresh failed")
		return false
	}
	if c.Subject != s.claims.Subject {
		s.close(protocol.CodeUnauthorized, "refresh token is for another subject")
		return false
	}
	s.claims = c
	for doc := range s.docs {
		switch c.access(doc) {
		case AccessNone:
			s.close(protocol.CodeForbidden, "refreshed token no longer grants a joined document")
			return false
		case AccessRead:
			if !s.readOnly[doc] {
				s.setReadOnly(doc, true)
				s.docs[doc].Send(context.Background(), owner.ReadOnly{Sub: s})
			}
		}
	}
	s.setExpiry(c)
	return true
}

// setExpiry closes the session with CodeTokenExpired when c expires,
// replacing an earlier expiry.
func (s *session) setExpiry(c *Claims) {
	if c == nil || c.ExpiresAt == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.expire != nil {
		s.expire.Stop()
	}
	s.expire = time.AfterFunc(time.Until(c.ExpiresAt.Time), func() {
		s.close(protocol.CodeTokenExpired, "token expired; reconnect with a new token")
	})
}
