package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// feedParams are the query parameters shared by the SSE and long-poll feeds.
type feedParams struct {
	id       string
	root     string
	units    units
	presence bool
}

func (s *Server) feedParams(w http.ResponseWriter, r *http.Request) (feedParams, bool) {
	id, ok := docID(w, r)
	if !ok {
		return feedParams{}, false
	}
	if _, ok := s.authorize(w, r, id, AccessRead); !ok {
		return feedParams{}, false
	}
	q := r.URL.Query()
	root, ok := rootOf(w, r)
	if !ok {
		return feedParams{}, false
	}
	p := feedParams{id: id, root: root, presence: q.Get("presence") != "0"}
	switch q.Get("units") {
	case "", "codepoints":
	case "utf16":
		p.units = utf16Units
	default:
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "units must be codepoints or utf16")
		return feedParams{}, false
	}
	return p, true
}

// parseSince reads a resume version. Anything that is not a version (garbage,
// negative, too large) becomes one no document reaches, so the feed answers
// with a reset.
func parseSince(v string) *uint64 {
	if v == "" {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		n = math.MaxUint64
	}
	return &n
}

// startFeed registers a follower with the document's owner and waits for
// its first item. The follower holds one of the server's connection slots
// (MaxConns, MaxConnsPerIP) until stop. The caller must call stop.
func (s *Server) startFeed(ctx context.Context, ip string, p feedParams, since *uint64) (f *follower, first feedItem, stop func(), err error) {
	release, code := s.admit(ip)
	if release == nil {
		return nil, feedItem{}, nil, &apiErr{code, "connection refused: " + code.String()}
	}
	o, err := s.acquire(ctx, p.id)
	if err != nil {
		release()
		return nil, feedItem{}, nil, err
	}
	f = newFollower(p.root, p.presence, s.cfg.FollowerQueue)
	stop = func() {
		o.Send(context.Background(), owner.Unfollow{Sub: f})
		o.Release()
		release()
	}
	if !o.Send(ctx, owner.Follow{Sub: f, Root: p.root, Since: since, MaxSteps: s.cfg.FollowerQueue / 2}) {
		stop()
		if ctx.Err() != nil {
			return nil, feedItem{}, nil, ctx.Err()
		}
		return nil, feedItem{}, nil, &apiErr{protocol.CodeGoingAway, "server shutting down"}
	}
	select {
	case it, ok := <-f.ch:
		if !ok {
			stop()
			return nil, feedItem{}, nil, &apiErr{protocol.CodeOverloaded, "feed dropped"}
		}
		if it.kind == feedError || it.kind == feedDeleted {
			stop()
			return nil, feedItem{}, nil, &apiErr{it.code, it.msg}
		}
		return f, it, stop, nil
	case <-ctx.Done():
		stop()
		return nil, feedItem{}, nil, ctx.Err()
	}
}

// stepSplices returns the splices of root in a step, in order.
func stepSplices(st owner.Step, root string) []splice {
	var out []splice
	for _, c := range st.Changes {
		if c.Root == root {
			out = append(out, splice{Pos: c.Pos, Del: c.Del, Ins: c.Ins})
		}
	}
	return out
}

// splice is a position-based edit (see owner.Splice).
type splice = owner.Splice

// feedWriter turns feed items into JSON events in the follower's units.
type feedWriter struct {
	p      feedParams
	shadow *utf16Shadow // utf16 only: the follower's copy of the text
}

type snapshotEvent struct {
	Version uint64          `json:"version"`
	Root    string          `json:"root"`
	Text    string          `json:"text"`
	JSON    json.RawMessage `json:"json,omitempty"` // a Yjs map, array or XML fragment root: its JSON (text is empty)
	Reset   bool            `json:"reset,omitempty"`
}

// jsonEvent is a non-text root's new JSON (event "json").
type jsonEvent struct {
	Version uint64          `json:"version"`
	Root    string          `json:"root"`
	JSON    json.RawMessage `json:"json"`
}

type changeEvent struct {
	From    uint64    `json:"from"`
	Version uint64    `json:"version"`
	Ops     []deltaOp `json:"ops"`
}

type presencePeer struct {
	Session  string            `json:"session"`
	User     *presence.User    `json:"user,omitempty"`
	ReadOnly bool              `json:"read_only,omitempty"`
	Anchor   *int              `json:"anchor,omitempty"` // in the feed's root and units; absent: no cursor there
	Head     *int              `json:"head,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
}

type presenceEvent struct {
	Full  bool           `json:"full,omitempty"`
	Peers []presencePeer `json:"peers,omitempty"`
	Gone  []string       `json:"gone,omitempty"`
}

// event returns the SSE event name, the id ("" for none) and the JSON data.
func (fw *feedWriter) event(it feedItem) (name, id string, data any) {
	switch it.kind {
	case feedSnapshot, feedReset:
		if fw.p.units == utf16Units {
			fw.shadow = newUTF16Shadow(it.text)
		}
		name = "snapshot"
		if it.kind == feedReset {
			name = "reset"
		}
		return name, strconv.FormatUint(it.version, 10), snapshotEvent{Version: it.version, Root: fw.p.root, Text: it.text, JSON: it.data, Reset: it.kind == feedReset}
	case feedJSON:
		return "json", strconv.FormatUint(it.version, 10), jsonEvent{Version: it.version, Root: fw.p.root, JSON: it.data}
	case feedChange:
		ss := stepSplices(it.step, fw.p.root)
		if fw.shadow != nil {
			for i := range ss {
				ss[i] = fw.shadow.convert(ss[i])
			}
		}
		ops := compose(ss, fw.p.units)
		if ops == nil {
			ops = []deltaOp{}
		}
		return "change", strconv.FormatUint(it.version, 10), changeEvent{From: it.step.From, Version: it.step.To, Ops: ops}
	case feedPresence:
		return "presence", "", fw.presence(it)
	case feedDeleted:
		return "deleted", "", map[string]any{"code": it.code, "message": it.msg}
	case feedCurrent:
		return "", "", nil
	case feedMessage:
		return "message", "", messageOut{From: it.from, Data: json.RawMessage(it.data)}
	}
	return "error", "", map[string]any{"code": it.code, "message": it.msg}
}

func (fw *feedWriter) presence(it feedItem) presenceEvent {
	ev := presenceEvent{Full: it.pres.Full, Gone: it.pres.Gone}
	conv := func(i int) *int {
		if i >= 0 && fw.shadow != nil {
			i = fw.shadow.units(0, min(i, len(fw.shadow.text)))
		}
		return &i
	}
	add := func(p presence.Peer, withUser bool) {
		pp := presencePeer{Session: p.Session, Meta: p.Meta}
		if withUser {
			u := p.User
			pp.User, pp.ReadOnly = &u, p.ReadOnly
		}
		if c, ok := it.cursors[p.Session]; ok {
			pp.Anchor, pp.Head = conv(c[0]), conv(c[1])
		}
		ev.Peers = append(ev.Peers, pp)
	}
	for _, p := range it.pres.Peers {
		add(p, true)
	}
	for _, p := range it.pres.Moved {
		add(p, false)
	}
	return ev
}

// startSSE answers with the headers of an event stream and a reconnect hint
// (retryMs plus up to twice as much jitter: browsers reconnect after it, and
// spreading them avoids a stampede), and returns a write function with a
// per-write deadline (no server-wide WriteTimeout can kill a stream). It
// returns nil if the first write failed.
func (s *Server) startSSE(w http.ResponseWriter, retryMs int) func([]byte) bool {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(fmt.Appendf(nil, "retry: %d\n\n", retryMs+rand.IntN(2*retryMs))) {
		return nil
	}
	return write
}

// serveEvents is GET /v1/docs/{id}/events: a Server-Sent Events stream.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	p, ok := s.feedParams(w, r)
	if !ok {
		return
	}
	since := parseSince(r.Header.Get("Last-Event-ID"))
	if since == nil {
		since = parseSince(r.URL.Query().Get("last_event_id"))
	}
	f, first, stop, err := s.startFeed(r.Context(), s.clientIP(r), p, since)
	if err != nil {
		answerErr(w, err)
		return
	}
	defer stop()
	write := s.startSSE(w, 1000)
	if write == nil {
		return
	}
	fw := &feedWriter{p: p}
	send := func(it feedItem) bool {
		name, id, data := fw.event(it)
		if name == "" {
			return true // nothing to tell
		}
		b, _ := json.Marshal(data)
		var out []byte
		if id != "" {
			out = fmt.Appendf(out, "id: %s\n", id)
		}
		out = fmt.Appendf(out, "event: %s\ndata: %s\n\n", name, b)
		return write(out) && it.kind != feedDeleted && it.kind != feedError
	}
	if !send(first) {
		return
	}
	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case it, ok := <-f.ch:
			if !ok { // fell behind: the browser reconnects with Last-Event-ID
				return
			}
			for _, it := range coalesceJSON(it, f.ch) {
				if !send(it) {
					return
				}
			}
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

// coalesceJSON takes first and whatever else is already queued on ch, and
// keeps of consecutive json items only the last (each is the whole root:
// a follower that is behind skips to the newest).
func coalesceJSON(first feedItem, ch <-chan feedItem) []feedItem {
	items := []feedItem{first}
	for len(items) < cap(ch)+1 {
		select {
		case it, ok := <-ch:
			if !ok {
				return items
			}
			if n := len(items); it.kind == feedJSON && items[n-1].kind == feedJSON {
				items[n-1] = it
				continue
			}
			items = append(items, it)
			continue
		default:
		}
		break
	}
	return items
}

// messageOut is a broadcast message in a feed.
type messageOut struct {
	From string          `json:"from,omitempty"` // the sending session; absent: the app
	Data json.RawMessage `json:"data"`
}

// pollAnswer is the JSON of GET /v1/docs/{id}/changes.
type pollAnswer struct {
	Version  uint64         `json:"version"`
	Changes  []changeEvent  `json:"changes"`
	Reset    *snapshotEvent `json:"reset,omitempty"`
	Messages []messageOut   `json:"messages,omitempty"`
	JSON     *jsonEvent     `json:"json,omitempty"` // a Yjs map, array or fragment root: its JSON after the last change
}

// longPoll is GET /v1/docs/{id}/changes?since=V&wait=30s: the changes after
// V, waiting up to wait for the first one; an empty list when none came.
// Without since (or when V is no longer in the recent history) the answer
// is a reset with the current text.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request) {
	p, ok := s.feedParams(w, r)
	if !ok {
		return
	}
	p.presence = false
	q := r.URL.Query()
	wait := 30 * time.Second
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 60*time.Second {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "wait must be a duration from 0s to 60s")
			return
		}
		wait = d
	}
	since := parseSince(q.Get("since"))
	if since == nil {
		zero := uint64(math.MaxUint64)
		since = &zero // no since: a reset with the current text
	}
	f, first, stop, err := s.startFeed(r.Context(), s.clientIP(r), p, since)
	if err != nil {
		answerErr(w, err)
		return
	}
	defer stop()
	fw := &feedWriter{p: p}
	ans := pollAnswer{Version: *since, Changes: []changeEvent{}}
	add := func(it feedItem) {
		_, _, data := fw.event(it)
		switch ev := data.(type) {
		case snapshotEvent:
			ans.Reset, ans.Version, ans.Changes = &ev, ev.Version, []changeEvent{}
		case changeEvent:
			ans.Changes = append(ans.Changes, ev)
			ans.Version = ev.Version
		case jsonEvent:
			ans.JSON, ans.Version = &ev, ev.Version
		case messageOut:
			ans.Messages = append(ans.Messages, ev)
		}
	}
	// The first item is a reset, the first change after since, or (the
	// follower is up to date) feedCurrent: then wait for a change.
	if first.kind != feedCurrent {
		add(first)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	if ans.Reset == nil && ans.JSON == nil && len(ans.Changes) == 0 && len(ans.Messages) == 0 {
		select {
		case it, ok := <-f.ch:
			if ok {
				add(it)
			}
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}
	for drained := false; !drained; { // whatever else is already there
		select {
		case it, ok := <-f.ch:
			if !ok {
				drained = true
			} else if it.kind == feedChange || it.kind == feedMessage || it.kind == feedJSON {
				add(it)
			}
		default:
			drained = true
		}
	}
	writeJSON(w, http.StatusOK, ans)
}
