package collab

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// Presence timing of the client.
const (
	// PresenceInterval is the shortest time between two presence sends of
	// one document: changes in between are coalesced (latest state wins)
	// and sent when the interval ends, so a document sends at most ~30 a
	// second however often the cursor moves.
	PresenceInterval = time.Second / 30
	// PresenceHeartbeat is the longest time between two presence sends of a
	// live document: the client resends its state this often while idle
	// (half the server's default TTL).
	PresenceHeartbeat = presence.DefaultTTL / 2
)

// Peer is one session on a document, as the server last told this client,
// with its cursor resolved against the local replica.
type Peer struct {
	Session  string        // server session id (unique per connection)
	User     presence.User // stamped by the server from the session's token
	ReadOnly bool          // the session joined read-only
	Self     bool          // this client's own session (see Document.Self)
	Meta     map[string]string
	Cursor   Cursor // zero Root: no cursor
}

// Cursor is a peer's selection in one text root. Anchor is where the
// selection started and Head where the caret is (equal for a caret), as
// code-point indexes in the local replica at the time Peers was called.
// Resolved is false when the replica has not seen the characters the
// positions name yet (their insert is still on its way) or the positions do
// not decode; Anchor and Head are then -1. AnchorPos and HeadPos are the
// relative positions themselves: resolve them again after edits with
// Document.Resolve.
type Cursor struct {
	Root         string
	Anchor, Head int
	Resolved     bool
	AnchorPos    crdt.RelPos
	HeadPos      crdt.RelPos
}

// docPresence is a document's presence as the loop sees it.
type docPresence struct {
	own       presence.State           // this client's latest state
	dirty     bool                     // own changed since it was last sent on the current join
	lastSent  time.Time                // last PresenceSet of this document
	holdUntil time.Time                // rate limited by the server: no send before
	peers     map[string]presence.Peer // session -> latest state, as the server told
	err       error                    // the last refusal of the server
	changes   chan struct{}            // capacity 1
}

func newDocPresence() docPresence {
	return docPresence{peers: make(map[string]presence.Peer), changes: make(chan struct{}, 1)}
}

func (p *docPresence) notify() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}

// lost forgets the other peers: the connection dropped, so who is there is
// unknown until the next full presence.
func (p *docPresence) lost() {
	if len(p.peers) > 0 {
		clear(p.peers)
		p.notify()
	}
}

// apply applies a Presence frame: a full one replaces the view, a delta
// adds its new peers, updates the state of moved ones and removes the gone
// sessions.
func (p *docPresence) apply(m *protocol.Presence) {
	if m.Full {
		clear(p.peers)
	}
	for _, peer := range m.Peers {
		p.peers[peer.Session] = peer
	}
	for _, mv := range m.Moved { // state only: keep the identity already known
		if peer, ok := p.peers[mv.Session]; ok {
			peer.State = mv.State
			p.peers[mv.Session] = peer
		}
	}
	for _, s := range m.Gone {
		delete(p.peers, s)
	}
	p.notify()
}

// due is when the document should next send its presence: at the end of
// the coalescing interval (or of a server rate-limit hold) if its state
// changed, else at the heartbeat.
func (p *docPresence) due() time.Time {
	t := p.lastSent.Add(PresenceHeartbeat)
	if p.dirty {
		t = p.lastSent.Add(PresenceInterval)
		if p.holdUntil.After(t) {
			t = p.holdUntil
		}
	}
	return t
}

// presenceLive reports whether d may send presence now.
func (c *Client) presenceLive(d *docState) bool {
	return d.live && c.cn != nil && c.cn.welcome
}

// flushPresence sends d's presence if it is due at now.
func (c *Client) flushPresence(d *docState, now time.Time) {
	p := &d.pres
	if !c.presenceLive(d) || now.Before(p.due()) {
		return
	}
	st := p.own
	st.Meta = maps.Clone(st.Meta)
	c.send(&protocol.PresenceSet{Doc: d.id, State: st})
	p.lastSent, p.dirty = now, false
}

// presenceResumed runs when d's sync has completed: the server lists the
// session with no state, so a state it had is sent again.
func (c *Client) presenceResumed(d *docState) {
	p := &d.pres
	now := time.Now()
	if p.own.Cursor.IsZero() && len(p.own.Meta) == 0 && !p.dirty {
		p.lastSent = now // the join listed the session: it counts as a heartbeat
		return
	}
	p.dirty = true
	c.flushPresence(d, now)
}

// presenceWake is the earliest time a document needs a presence send; zero
// if none can be sent.
func (c *Client) presenceWake() time.Time {
	var t time.Time
	if c.cn == nil || !c.cn.welcome {
		return t
	}
	for _, d := range c.docs {
		if d.live && (t.IsZero() || d.pres.due().Before(t)) {
			t = d.pres.due()
		}
	}
	return t
}

// presenceError handles a server error about presence; it reports false
// when e is not one. Presence errors never end the document: a refusal is
// kept for Document.PresenceErr, a rate limit holds the next send until
// the hint has passed and then resends the latest state.
func (c *Client) presenceError(d *docState, e *protocol.Error) bool {
	p := &d.pres
	switch {
	case e.Code == protocol.CodePresenceRefused,
		e.Code == protocol.CodeReadOnly && e.Batch == 0: // a cursor of a read-only session refused
		p.err = e
		p.notify()
	case e.Code == protocol.CodeRateLimited && e.Batch == 0 && d.live:
		// Updates always carry their batch; a document not live yet was
		// refused its Join (the join rate), which is retried like any
		// retryable document error.
		p.holdUntil = time.Now().Add(time.Duration(e.RetryAfterMs) * time.Millisecond)
		p.dirty = true
	default:
		return false
	}
	return true
}

// setPresence replaces the document's own state on the loop and sends it
// when the coalescing interval allows.
func (d *Document) setPresence(f func(st *presence.State) error) error {
	var err error
	if e := d.c.do(func() {
		if d.st.left {
			err = ErrLeft
			return
		}
		p := &d.st.pres
		next := p.own
		next.Meta = maps.Clone(next.Meta)
		if err = f(&next); err != nil {
			return
		}
		if err = checkStrings(next); err != nil {
			return
		}
		p.own, p.dirty = next, true
		d.c.flushPresence(d.st, time.Now())
	}); e != nil {
		return e
	}
	return err
}

// checkStrings refuses strings the server's decoder would take for a bad
// frame (which closes the whole connection) rather than a refused presence.
func checkStrings(st presence.State) error {
	if len(st.Cursor.Root) > protocol.DefaultMaxString {
		return fmt.Errorf("collab: root name of %d bytes, more than %d", len(st.Cursor.Root), protocol.DefaultMaxString)
	}
	for k, v := range st.Meta {
		if len(k) > protocol.DefaultMaxString || len(v) > protocol.DefaultMaxString {
			return fmt.Errorf("collab: presence metadata %q: a key or value over %d bytes", k[:min(len(k), 32)], protocol.DefaultMaxString)
		}
	}
	return nil
}

// SetCursor sets this client's selection in text root to anchor..head
// (code-point indexes in the local replica; anchor == head is a caret) and
// shows it to the other peers. The indexes are turned into relative
// positions, so the selection stays on its characters while others edit
// before it: a caret sticks to the character before it (it stays right after
// what its owner just typed, and text others insert at the caret lands
// after it); a selection's start sticks to its first character and its end
// to its last, so it neither grows nor shrinks at its edges. Moves are sent
// at most every PresenceInterval (the latest wins).
func (d *Document) SetCursor(root string, anchor, head int) error {
	if root == "" {
		return fmt.Errorf("collab: a cursor needs a root")
	}
	return d.setPresence(func(st *presence.State) error {
		aa, ha := crdt.AssocBefore, crdt.AssocBefore
		switch {
		case anchor < head:
			aa = crdt.AssocAfter
		case head < anchor:
			ha = crdt.AssocAfter
		}
		a, err := relPos(d.st.doc, root, anchor, aa)
		if err != nil {
			return err
		}
		h, err := relPos(d.st.doc, root, head, ha)
		if err != nil {
			return err
		}
		st.Cursor = presence.Cursor{Root: root, Anchor: crdt.EncodeRelPos(a), Head: crdt.EncodeRelPos(h)}
		return nil
	})
}

// ClearCursor removes this client's cursor (it stays listed as a peer).
func (d *Document) ClearCursor() error {
	return d.setPresence(func(st *presence.State) error {
		st.Cursor = presence.Cursor{}
		return nil
	})
}

// SetMeta replaces this client's presence metadata (small application
// data such as "typing": "1"; nil clears it). A key or value over
// protocol.DefaultMaxString bytes is refused here; the server refuses
// metadata over its presence limits (Document.PresenceErr). It cannot change the name,
// user id or color others see: the server stamps those from the token.
func (d *Document) SetMeta(meta map[string]string) error {
	return d.setPresence(func(st *presence.State) error {
		st.Meta = maps.Clone(meta)
		if len(st.Meta) == 0 {
			st.Meta = nil
		}
		return nil
	})
}

// Presence returns this client's own latest state on the document (what it
// sends, whether or not the server has it yet).
func (d *Document) Presence() presence.State {
	var st presence.State
	_ = d.c.do(func() {
		st = d.st.pres.own
		st.Meta = maps.Clone(st.Meta)
	})
	return st
}

// PresenceErr is the last refusal of this client's presence by the server
// (a *protocol.Error with CodePresenceRefused, or CodeReadOnly for a cursor
// of a read-only session), or nil. A refusal does not end the document.
func (d *Document) PresenceErr() error {
	var err error
	if e := d.c.do(func() { err = d.st.pres.err }); e != nil {
		return e
	}
	return err
}

// Self is this client's session id on the current connection ("" while
// disconnected); its own entry in Peers has it.
func (d *Document) Self() string {
	var s string
	_ = d.c.do(func() {
		if d.c.cn != nil {
			s = d.c.session
		}
	})
	return s
}

// Peers returns the sessions on the document, this client's own included
// (Peer.Self), sorted by session, with cursors resolved against the local
// replica now. It is empty while the client is disconnected: who is there is
// unknown until the server sends the full presence after the rejoin.
func (d *Document) Peers() []Peer {
	var out []Peer
	_ = d.c.do(func() {
		self := ""
		if d.c.cn != nil {
			self = d.c.session
		}
		out = d.st.peerList(self)
	})
	return out
}

// peerList builds the resolved peer list (on the loop).
func (d *docState) peerList(self string) []Peer {
	out := make([]Peer, 0, len(d.pres.peers))
	for _, p := range d.pres.peers {
		out = append(out, Peer{
			Session:  p.Session,
			User:     p.User,
			ReadOnly: p.ReadOnly,
			Self:     p.Session == self && self != "",
			Meta:     maps.Clone(p.Meta),
			Cursor:   resolveCursor(d.doc, p.Cursor),
		})
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Session, b.Session) })
	return out
}

// PresenceChanges is signalled (capacity 1, coalesced) when the peers
// changed: a full or delta presence arrived, the connection dropped, or the
// server refused this client's presence. Cursors also move when the text
// changes: watch Changes too, and call Peers again. It is never closed.
func (d *Document) PresenceChanges() <-chan struct{} { return d.st.pres.changes }

// Resolve returns the current code-point index in text root of a relative
// position (a Cursor's AnchorPos or HeadPos). It reports false when the
// local replica has not seen the character p names.
func (d *Document) Resolve(root string, p crdt.RelPos) (int, bool) {
	var i int
	var ok bool
	_ = d.View(func(doc *crdt.Doc) { i, ok = resolve(doc, root, p) })
	return i, ok
}

// hasRoot reports whether doc has the text root (Doc.Text would create it).
func hasRoot(doc *crdt.Doc, root string) bool {
	return slices.Contains(doc.Roots(), root)
}

// relPos is the relative position of index in root; a root that does not
// exist yet is an empty text.
func relPos(doc *crdt.Doc, root string, index int, assoc crdt.Assoc) (crdt.RelPos, error) {
	if !hasRoot(doc, root) {
		if index != 0 {
			return crdt.RelPos{}, fmt.Errorf("collab: cursor %d in the empty text %q: %w", index, root, crdt.ErrPosition)
		}
		return crdt.RelPos{Assoc: assoc}, nil
	}
	p, err := doc.Text(root).RelPos(index, assoc)
	if err != nil {
		return crdt.RelPos{}, fmt.Errorf("collab: %w", err)
	}
	return p, nil
}

func resolve(doc *crdt.Doc, root string, p crdt.RelPos) (int, bool) {
	if !hasRoot(doc, root) {
		if p.Item.IsZero() {
			return 0, true // the empty text
		}
		return 0, false
	}
	return doc.Text(root).Resolve(p)
}

// resolveCursor decodes and resolves a peer's cursor.
func resolveCursor(doc *crdt.Doc, c presence.Cursor) Cursor {
	out := Cursor{Root: c.Root, Anchor: -1, Head: -1}
	if c.IsZero() {
		return Cursor{}
	}
	a, errA := crdt.DecodeRelPos(c.Anchor)
	h, errH := crdt.DecodeRelPos(c.Head)
	if errA != nil || errH != nil {
		return out
	}
	out.AnchorPos, out.HeadPos = a, h
	ai, okA := resolve(doc, c.Root, a)
	hi, okH := resolve(doc, c.Root, h)
	if okA && okH {
		out.Anchor, out.Head, out.Resolved = ai, hi, true
	}
	return out
}
