package server

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/collabd/collabd/protocol"
)

// rtTransport is the fallback for clients that cannot open a WebSocket
// (a proxy blocks it): the same protocol frames, down as Server-Sent Events
// (base64, one frame per event, id = frame sequence) and up as HTTP POSTs
// of length-prefixed frames, numbered so a retried POST is not applied
// twice. The session behind it is an ordinary session (owners, acks,
// presence, limits). docs/PROTOCOL.md, "Fallback transport".
type rtTransport struct {
	srv     *Server
	s       *session
	id, key string
	inbound chan []byte // POSTed frames, consumed by rtLoop

	mu       sync.Mutex // guards everything below
	frames   []rtFrame  // sent or waiting, oldest first
	bytes    int
	next     uint64 // sequence of the next frame (from 1)
	sent     uint64 // highest sequence written to a stream
	wake     chan struct{}
	closed   bool
	code     protocol.Code
	reason   string
	gen      uint64 // attachments: a newer stream replaces an older one
	streams  int
	lastSeen time.Time // last POST or stream activity

	posting chan struct{} // a token held by the one POST in progress (capacity 1)
	postSeq uint64        // next expected POST sequence (from 1); only the POST holding posting touches it
}

type rtFrame struct {
	seq  uint64
	data []byte
}

var errRTSlow = errors.New("fallback stream fell behind")

func (t *rtTransport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// writeFrames buffers frames for the stream. Frames already written to a
// stream are dropped first when over QueueBytes (kept until then so a
// reconnecting stream can resume); a peer that lets unsent frames pile up
// past it is slow.
func (t *rtTransport) writeFrames(frames [][]byte, _ time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errRTClosed
	}
	for _, f := range frames {
		t.frames = append(t.frames, rtFrame{seq: t.next, data: f})
		t.next++
		t.bytes += len(f)
	}
	drop := 0
	for t.bytes > t.srv.cfg.QueueBytes && drop < len(t.frames) && t.frames[drop].seq <= t.sent {
		t.bytes -= len(t.frames[drop].data)
		drop++
	}
	t.frames = t.frames[drop:]
	t.signal()
	if t.bytes > t.srv.cfg.QueueBytes {
		return errRTSlow
	}
	return nil
}

var errRTClosed = errors.New("fallback session closed")

func (t *rtTransport) finish(<-chan struct{}) {}

func (t *rtTransport) closeWith(code protocol.Code, reason string) {
	t.mu.Lock()
	if !t.closed {
		t.closed, t.code, t.reason = true, code, reason
	}
	t.mu.Unlock()
	t.signal()
}

func (t *rtTransport) alive(now time.Time, window time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams > 0 || now.Sub(t.lastSeen) < window
}

func (t *rtTransport) touch(now time.Time) {
	t.mu.Lock()
	t.lastSeen = now
	t.mu.Unlock()
	t.s.lastSeen.Store(now.UnixNano())
}

// rtCreate is POST /v1/rt: it opens a fallback session. The client then
// attaches the event stream and POSTs its hello like any first frame.
func (s *Server) rtCreate(w http.ResponseWriter, r *http.Request) {
	release, code := s.admit(s.clientIP(r))
	if release == nil {
		s.refused(r, "limits", "code", int(code))
		writeError(w, 0, code, "connection refused: "+code.String())
		return
	}
	var claims *Claims
	if in := s.httpAuthInput(r, ""); s.auth.offered(in) {
		c, err := s.auth.authenticate(r.Context(), in, time.Now())
		if err != nil {
			release()
			s.refused(r, "auth", "err", err.Error())
			writeError(w, 0, authCode(err), "authentication failed")
			return
		}
		claims = c
	}
	var b [24]byte
	_, _ = crand.Read(b[:])
	t := &rtTransport{srv: s, id: hex.EncodeToString(b[:8]), key: hex.EncodeToString(b[8:]), inbound: make(chan []byte, 4), posting: make(chan struct{}, 1),
		next: 1, postSeq: 1, wake: make(chan struct{}, 1), lastSeen: time.Now()}
	sess := newSession(s, t, t.id)
	sess.claims, sess.remote, sess.userAgent = claims, s.clientIP(r), r.UserAgent()
	s.cfg.Logger.Debug("session opened", "session", sess.id, "remote", sess.remote, "transport", "fallback")
	t.s = sess
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		writeError(w, 0, protocol.CodeGoingAway, "shutting down")
		return
	}
	s.sessions[sess] = true
	s.rt[t.id] = t
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer release()
		defer func() {
			sess.close(protocol.CodeGoingAway, "closed")
			s.mu.Lock()
			delete(s.sessions, sess)
			delete(s.rt, t.id)
			s.mu.Unlock()
		}()
		defer sess.recoverPanic()
		t.loop(s.ctx)
	}()
	base := "/v1/rt/" + t.id
	writeJSON(w, http.StatusCreated, map[string]string{"session": t.id, "key": t.key,
		"events": base + "/events?key=" + t.key, "frames": base + "/frames?key=" + t.key})
}

// loop is the session's read loop: it consumes POSTed frames and ends the
// session when the hello is late or the peer shows no life (no stream
// attached and no POST) for PingInterval+PongTimeout.
func (t *rtTransport) loop(ctx context.Context) {
	s, cfg := t.s, t.srv.cfg
	defer s.leaveAll(ctx)
	s.lastSeen.Store(time.Now().UnixNano())
	hello := true
	helloTimer := time.NewTimer(cfg.HelloTimeout)
	defer helloTimer.Stop()
	check := time.NewTicker(max(cfg.PingInterval/2, time.Millisecond))
	defer check.Stop()
	for {
		select {
		case data := <-t.inbound:
			if !s.frame(ctx, data, &hello) {
				return
			}
		case <-helloTimer.C:
			if hello {
				s.close(protocol.CodeHelloTimeout, "no hello in time")
				return
			}
		case now := <-check.C:
			if !t.alive(now, cfg.PingInterval+cfg.PongTimeout) {
				s.close(protocol.CodeNoPong, "no stream and no request in time")
				return
			}
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// rtLookup finds the session of the request and checks its key.
func (s *Server) rtLookup(w http.ResponseWriter, r *http.Request) (*rtTransport, bool) {
	s.mu.Lock()
	t := s.rt[r.PathValue("session")]
	s.mu.Unlock()
	key := r.URL.Query().Get("key")
	if key == "" {
		key = r.Header.Get("X-Collabd-Key")
	}
	if t == nil || subtle.ConstantTimeCompare([]byte(key), []byte(t.key)) != 1 {
		writeError(w, http.StatusGone, protocol.CodeResync, "no such session: open a new one")
		return nil, false
	}

	return t, true
}

// rtEvents is GET /v1/rt/{session}/events: the server's frames as SSE,
// resuming after Last-Event-ID.
func (s *Server) rtEvents(w http.ResponseWriter, r *http.Request) {
	t, ok := s.rtLookup(w, r)
	if !ok {
		return
	}
	since := uint64(0)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("last_event_id")} {
		if v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "bad Last-Event-ID")
				return
			}
			since = n
			break
		}
	}
	t.mu.Lock()
	first := t.next
	if len(t.frames) > 0 {
		first = t.frames[0].seq
	}
	if since+1 < first || since >= t.next {
		t.mu.Unlock()
		writeError(w, http.StatusGone, protocol.CodeResync, "resume point lost: open a new session and rejoin")
		return
	}
	t.gen++
	gen := t.gen
	t.streams++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.streams--
		t.lastSeen = time.Now()
		t.mu.Unlock()
	}()
	write := s.startSSE(w, 500)
	if write == nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	var out []byte
	for {
		t.mu.Lock()
		if t.gen != gen { // a newer stream took over
			t.mu.Unlock()
			return
		}
		out = out[:0]
		for _, f := range t.frames {
			if f.seq > since {
				out = fmt.Appendf(out, "id: %d\ndata: %s\n\n", f.seq, base64.StdEncoding.EncodeToString(f.data))
				since = f.seq
			}
		}
		t.sent = max(t.sent, since)
		closed, code, reason := t.closed, t.code, t.reason
		t.mu.Unlock()
		if closed {
			out = fmt.Appendf(out, "event: close\ndata: {\"code\":%d,\"reason\":%q}\n\n", code, reason)
		}
		if len(out) > 0 && !write(out) {
			return
		}
		if closed {
			return
		}
		t.touch(time.Now())
		select {
		case <-t.wake:
		case <-heartbeat.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// rtFrames is POST /v1/rt/{session}/frames?seq=N: frames from the client,
// each a 4-byte big-endian length and the frame. POSTs are numbered from 1
// and applied in order, one at a time; a repeated number (a retry whose
// answer was lost) is acknowledged without applying it again.
func (s *Server) rtFrames(w http.ResponseWriter, r *http.Request) {
	t, ok := s.rtLookup(w, r)
	if !ok {
		return
	}
	select {
	case <-t.s.done: // closed, on its way out of the map (its stream says why)
		writeError(w, http.StatusGone, protocol.CodeResync, "session closed: open a new one")
		return
	default:
	}
	seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "seq must be a POST number from 1")
		return
	}
	// One POST at a time per session, taken before the body is read (never
	// waited for: a second concurrent POST is a client bug or an attack).
	select {
	case t.posting <- struct{}{}:
		defer func() { <-t.posting }()
	default:
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusConflict, protocol.CodeTooManyRequests, "another POST of this session is in progress")
		return
	}
	switch {
	case seq < t.postSeq:
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusOK, map[string]any{"duplicate": true})
		return
	case seq > t.postSeq:
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusConflict, protocol.CodeBadFrame, fmt.Sprintf("expected POST %d", t.postSeq))
		return
	}
	body, release, ok := s.readBody(w, r, int64(4*s.cfg.MaxFrame)) // a few frames: a client posts what it has queued
	if !ok {
		return
	}
	defer release()
	frames, err := splitFrames(body, s.cfg.MaxFrame)
	if err != nil {
		if errors.Is(err, errRTFrameTooLarge) {
			t.s.close(protocol.CodeFrameTooLarge, "frame too large")
			writeError(w, 0, protocol.CodeFrameTooLarge, err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, err.Error())
		return
	}
	t.touch(time.Now())
	for _, f := range frames { // once started, all frames of the POST are delivered
		select {
		case t.inbound <- f:
		case <-t.s.done:
			writeError(w, http.StatusGone, protocol.CodeResync, "session closed")
			return
		}
	}
	t.postSeq++
	w.WriteHeader(http.StatusNoContent)
}

// rtMaxFramesPerPost bounds the frames of one POST (a client batches what
// it has, a few frames at most; a body of empty frames must not become a
// million of them).
const rtMaxFramesPerPost = 256

var errRTFrameTooLarge = errors.New("frame too large")

// splitFrames parses a POST body of length-prefixed frames (4-byte big-endian
// length, then the frame): every frame 1..maxFrame bytes, at most
// rtMaxFramesPerPost of them. The frames alias body.
func splitFrames(body []byte, maxFrame int) ([][]byte, error) {
	var frames [][]byte
	for rest := body; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, errors.New("truncated frame length")
		}
		n := uint64(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		switch {
		case n == 0:
			return nil, errors.New("empty frame")
		case n > uint64(maxFrame):
			return nil, fmt.Errorf("%w: %d bytes, more than %d", errRTFrameTooLarge, n, maxFrame)
		case n > uint64(len(rest)):
			return nil, errors.New("truncated frame")
		case len(frames) == rtMaxFramesPerPost:
			return nil, fmt.Errorf("more than %d frames in one POST", rtMaxFramesPerPost)
		}
		frames, rest = append(frames, rest[:n]), rest[n:]
	}
	return frames, nil
}

// rtClose is DELETE /v1/rt/{session}: the client is done.
func (s *Server) rtClose(w http.ResponseWriter, r *http.Request) {
	t, ok := s.rtLookup(w, r)
	if !ok {
		return
	}
	t.s.close(protocol.CodeGoingAway, "closed by the client")
	w.WriteHeader(http.StatusNoContent)
}
