package presence

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// Defaults for Limits and the TTL.
const (
	DefaultTTL          = 30 * time.Second
	DefaultMaxMetaKeys  = 32
	DefaultMaxMetaBytes = 1 << 10   // keys + values of one peer
	DefaultMaxPosBytes  = 64        // one encoded relative position
	DefaultMaxRootBytes = 128       // the root name of a cursor
	DefaultMaxPeers     = 1000      // peers on one document
	DefaultMaxDocBytes  = 256 << 10 // presence bytes of one document
)

// Limits bound what presence holds. A zero field means its default.
type Limits struct {
	MaxMetaKeys  int // metadata keys per peer
	MaxMetaBytes int // metadata bytes (keys + values) per peer
	MaxPosBytes  int // bytes of one encoded relative position
	MaxRootBytes int // bytes of a cursor's root name
	MaxPeers     int // peers per document
	MaxDocBytes  int // presence bytes per document (sum of Peer.Size)
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxMetaKeys, DefaultMaxMetaKeys)
	def(&l.MaxMetaBytes, DefaultMaxMetaBytes)
	def(&l.MaxPosBytes, DefaultMaxPosBytes)
	def(&l.MaxRootBytes, DefaultMaxRootBytes)
	def(&l.MaxPeers, DefaultMaxPeers)
	def(&l.MaxDocBytes, DefaultMaxDocBytes)
	return l
}

// User is who a peer is, as the server knows it from the session's token.
type User struct {
	ID    string // token subject; "" for anonymous (development mode)
	Name  string // display name
	Color string // CSS color, e.g. "#e5484d"; derived from ID when the token has none
}

// Cursor is a selection in one root: Anchor is where it started, Head where
// the caret is (equal for a plain caret). Both are encoded crdt relative
// positions. The zero Cursor means "no cursor" (the peer is here, not editing).
type Cursor struct {
	Root   string
	Anchor []byte
	Head   []byte
}

// IsZero reports whether c is "no cursor".
func (c Cursor) IsZero() bool { return c.Root == "" && len(c.Anchor) == 0 && len(c.Head) == 0 }

// State is what a client may set of its own presence.
type State struct {
	Cursor Cursor
	Meta   map[string]string // small application data ("typing": "1", "status": "away")
}

// Peer is one session on the document.
type Peer struct {
	Session  string // server session id (unique per connection)
	User     User
	ReadOnly bool // the session joined read-only
	State
}

// Size is the bytes a peer counts against Limits.MaxDocBytes.
func (p *Peer) Size() int {
	n := len(p.Session) + len(p.User.ID) + len(p.User.Name) + len(p.User.Color) +
		len(p.Cursor.Root) + len(p.Cursor.Anchor) + len(p.Cursor.Head)
	for k, v := range p.Meta {
		n += len(k) + len(v)
	}
	return n
}

// Change is one entry of a Flush: a peer's latest state, or its removal.
type Change struct {
	Peer    Peer // for a removal only Session is set
	Removed bool
	New     bool // the peer joined since the last Flush: receivers do not know its identity yet
}

// Errors. A *LimitError wraps ErrLimit; the others are returned as they are.
var (
	ErrLimit       = errors.New("presence: over a limit")
	ErrUnknownPeer = errors.New("presence: session has not joined")
	ErrJoined      = errors.New("presence: session already joined")
	ErrInvalid     = errors.New("presence: invalid state")
)

// LimitError says which limit a change would exceed.
type LimitError struct {
	Limit string // "meta keys", "meta bytes", "position bytes", "root bytes", "peers", "document bytes"
	Got   int
	Max   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("presence: %s %d over the limit %d", e.Limit, e.Got, e.Max)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

type entry struct {
	Peer
	seen time.Time // last heartbeat
	size int
}

// Set is the presence of one document. The zero value is not usable; call New.
type Set struct {
	lim   Limits
	ttl   time.Duration
	peers map[string]*entry
	dirty map[string]bool // session -> changed since the last Flush
	fresh map[string]bool // session -> joined since the last Flush
	bytes int
}

// New returns an empty Set. ttl <= 0 means DefaultTTL.
func New(lim Limits, ttl time.Duration) *Set {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Set{lim: lim.withDefaults(), ttl: ttl, peers: make(map[string]*entry)}
}

// TTL is how long a peer stays without a heartbeat.
func (s *Set) TTL() time.Duration { return s.ttl }

// Len is the number of peers.
func (s *Set) Len() int { return len(s.peers) }

// Bytes is the presence bytes held (sum of Peer.Size).
func (s *Set) Bytes() int { return s.bytes }

// Join adds a peer with no cursor. The identity comes from the server, never
// from the client.
func (s *Set) Join(session string, u User, readOnly bool, now time.Time) error {
	if _, ok := s.peers[session]; ok {
		return ErrJoined
	}
	if len(s.peers) >= s.lim.MaxPeers {
		return &LimitError{Limit: "peers", Got: len(s.peers) + 1, Max: s.lim.MaxPeers}
	}
	e := &entry{Peer: Peer{Session: session, User: u, ReadOnly: readOnly}, seen: now}
	e.size = e.Size()
	if s.bytes+e.size > s.lim.MaxDocBytes {
		return &LimitError{Limit: "document bytes", Got: s.bytes + e.size, Max: s.lim.MaxDocBytes}
	}
	s.peers[session] = e
	s.bytes += e.size
	s.markDirty(session)
	if s.fresh == nil {
		s.fresh = make(map[string]bool)
	}
	s.fresh[session] = true
	return nil
}

// Set replaces the session's cursor and metadata and counts as a heartbeat.
// A refused state changes nothing. Setting the same state again is only a
// heartbeat (nothing to flush).
func (s *Set) Set(session string, st State, now time.Time) error {
	e, ok := s.peers[session]
	if !ok {
		return ErrUnknownPeer
	}
	if err := s.check(st); err != nil {
		return err
	}
	e.seen = now
	if sameState(e.State, st) {
		return nil
	}
	next := Peer{Session: e.Session, User: e.User, ReadOnly: e.ReadOnly, State: cloneState(st)}
	size := next.Size()
	if s.bytes-e.size+size > s.lim.MaxDocBytes {
		return &LimitError{Limit: "document bytes", Got: s.bytes - e.size + size, Max: s.lim.MaxDocBytes}
	}
	s.bytes += size - e.size
	e.Peer, e.size = next, size
	s.markDirty(session)
	return nil
}

// Touch is a heartbeat without a change. It reports whether the session is a peer.
func (s *Set) Touch(session string, now time.Time) bool {
	e, ok := s.peers[session]
	if ok {
		e.seen = now
	}
	return ok
}

// Leave removes the session at once; the next Flush reports the removal.
// It reports whether the session was a peer.
func (s *Set) Leave(session string) bool {
	e, ok := s.peers[session]
	if !ok {
		return false
	}
	delete(s.peers, session)
	delete(s.fresh, session)
	s.bytes -= e.size
	s.markDirty(session)
	return true
}

// markDirty records a change for the next Flush.
func (s *Set) markDirty(session string) {
	if s.dirty == nil {
		s.dirty = make(map[string]bool)
	}
	s.dirty[session] = true
}

// Expire removes every peer whose last heartbeat is older than the TTL and
// returns their sessions (sorted).
func (s *Set) Expire(now time.Time) []string {
	var gone []string
	for id, e := range s.peers {
		if now.Sub(e.seen) > s.ttl {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		s.Leave(id)
	}
	return gone
}

// Dirty reports whether a Flush would return anything.
func (s *Set) Dirty() bool { return len(s.dirty) > 0 }

// smallFlush is the most changes a Flush frees its maps after (one map
// group's worth).
const smallFlush = 8

// Flush returns what changed since the last Flush, one Change per peer, in
// session order: its latest state, or its removal (a peer that left and
// joined again is reported with its new state). The returned peers share no
// memory with the Set.
func (s *Set) Flush() []Change {
	if len(s.dirty) == 0 {
		return nil
	}
	out := make([]Change, 0, len(s.dirty))
	for id := range s.dirty {
		if e, ok := s.peers[id]; ok {
			out = append(out, Change{Peer: clonePeer(e.Peer), New: s.fresh[id]})
		} else {
			out = append(out, Change{Peer: Peer{Session: id}, Removed: true})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Peer.Session, b.Peer.Session) })
	if len(s.dirty) <= smallFlush {
		// A quiet document holds no change maps: they are made again with
		// the next change (a busy one keeps them to reuse their room).
		s.dirty, s.fresh = nil, nil
	} else {
		clear(s.dirty)
		clear(s.fresh)
	}
	return out
}

// Peers returns every peer (for a join), in session order, sharing no memory
// with the Set.
func (s *Set) Peers() []Peer {
	out := make([]Peer, 0, len(s.peers))
	for _, e := range s.peers {
		out = append(out, clonePeer(e.Peer))
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Session, b.Session) })
	return out
}

// Get returns the session's peer.
func (s *Set) Get(session string) (Peer, bool) {
	e, ok := s.peers[session]
	if !ok {
		return Peer{}, false
	}
	return clonePeer(e.Peer), true
}

// check validates a client-sent state against the per-peer limits.
func (s *Set) check(st State) error {
	c := st.Cursor
	if len(c.Root) > s.lim.MaxRootBytes {
		return &LimitError{Limit: "root bytes", Got: len(c.Root), Max: s.lim.MaxRootBytes}
	}
	for _, p := range [][]byte{c.Anchor, c.Head} {
		if len(p) > s.lim.MaxPosBytes {
			return &LimitError{Limit: "position bytes", Got: len(p), Max: s.lim.MaxPosBytes}
		}
	}
	if !utf8.ValidString(c.Root) {
		return fmt.Errorf("%w: root name is not UTF-8", ErrInvalid)
	}
	if c.Root == "" && (len(c.Anchor) > 0 || len(c.Head) > 0) {
		return fmt.Errorf("%w: a cursor needs a root", ErrInvalid)
	}
	if c.Root != "" && (len(c.Anchor) == 0 || len(c.Head) == 0) {
		return fmt.Errorf("%w: a cursor needs an anchor and a head", ErrInvalid)
	}
	if len(st.Meta) > s.lim.MaxMetaKeys {
		return &LimitError{Limit: "meta keys", Got: len(st.Meta), Max: s.lim.MaxMetaKeys}
	}
	n := 0
	for k, v := range st.Meta {
		n += len(k) + len(v)
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata is not UTF-8", ErrInvalid)
		}
	}
	if n > s.lim.MaxMetaBytes {
		return &LimitError{Limit: "meta bytes", Got: n, Max: s.lim.MaxMetaBytes}
	}
	return nil
}

func sameState(a, b State) bool {
	return a.Cursor.Root == b.Cursor.Root && string(a.Cursor.Anchor) == string(b.Cursor.Anchor) &&
		string(a.Cursor.Head) == string(b.Cursor.Head) && maps.Equal(a.Meta, b.Meta)
}

func cloneState(st State) State {
	c := st.Cursor
	out := State{Cursor: Cursor{Root: c.Root, Anchor: slices.Clone(c.Anchor), Head: slices.Clone(c.Head)}}
	if len(st.Meta) > 0 {
		out.Meta = maps.Clone(st.Meta)
	}
	return out
}

func clonePeer(p Peer) Peer {
	p.State = cloneState(p.State)
	return p
}

// palette holds distinct, readable cursor colors.
var palette = [...]string{
	"#e5484d", "#f76b15", "#ffc53d", "#46a758", "#12a594", "#00a2c7",
	"#0090ff", "#3e63dd", "#6e56cf", "#8e4ec6", "#d6409f", "#ad7f58",
}

// ColorFor derives a stable color from a user id (FNV-1a over the palette),
// so a user keeps one color across sessions when the token names none.
func ColorFor(id string) string {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return palette[h%uint32(len(palette))]
}
