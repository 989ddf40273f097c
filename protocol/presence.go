package protocol

import (
	"fmt"
	"maps"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/collabd/collabd/internal/mp"
	"github.com/collabd/collabd/presence"
)

// Presence message types (from the range 32–63 reserved for presence).
const (
	TypePresenceSet Type = 32 // client -> server: [32, doc, root, anchor, head, meta]
	TypePresence    Type = 33 // server -> client: [33, doc, full, peers, moved, gone]
)

// PresenceSet replaces the sending session's own presence on Doc: its
// cursor (Root "" and empty Anchor/Head: no cursor) and metadata. It carries
// no identity: the server stamps the session's user from its token. It is
// also the heartbeat that keeps an idle peer listed (send it at least every
// 15 s).
type PresenceSet struct {
	Doc   string
	State presence.State
}

// Presence tells a client who is on Doc. Full is set in the answer to a
// Join: Peers is then everyone (the client replaces its view). Otherwise it
// is a delta: Peers are peers that joined (identity and state), Moved are
// peers the client already knows whose state changed (only Session and
// State are set: keep their User and ReadOnly), Gone the sessions that left.
// Each session appears at most once in a frame, with its latest state.
type Presence struct {
	Doc   string
	Full  bool
	Peers []presence.Peer
	Moved []presence.Peer
	Gone  []string
}

func (*PresenceSet) Type() Type { return TypePresenceSet }
func (*Presence) Type() Type    { return TypePresence }

func appendMeta(b []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return mp.AppendNil(b)
	}
	b = mp.AppendMapLen(b, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) { // deterministic bytes
		b = mp.AppendString(b, k)
		b = mp.AppendString(b, m[k])
	}
	return b
}

// appendState writes root, anchor, head, meta. A head equal to its anchor
// (a caret, the common case) is written empty: the decoder restores it.
func appendState(b []byte, st presence.State) []byte {
	c := st.Cursor
	b = mp.AppendString(b, c.Root)
	b = mp.AppendBin(b, c.Anchor)
	if len(c.Anchor) > 0 && string(c.Head) == string(c.Anchor) {
		b = mp.AppendBin(b, nil)
	} else {
		b = mp.AppendBin(b, c.Head)
	}
	return appendMeta(b, st.Meta)
}

func appendPresence(b []byte, m *Presence) []byte {
	b = append(b, 0x96, byte(TypePresence))
	b = mp.AppendString(b, m.Doc)
	b = mp.AppendBool(b, m.Full)
	b = mp.AppendArrayLen(b, len(m.Peers))
	for i := range m.Peers {
		p := &m.Peers[i]
		b = append(b, 0x99)
		b = mp.AppendString(b, p.Session)
		b = mp.AppendString(b, p.User.ID)
		b = mp.AppendString(b, p.User.Name)
		b = mp.AppendString(b, p.User.Color)
		b = mp.AppendBool(b, p.ReadOnly)
		b = appendState(b, p.State)
	}
	b = mp.AppendArrayLen(b, len(m.Moved))
	for i := range m.Moved {
		p := &m.Moved[i]
		b = append(b, 0x95)
		b = mp.AppendString(b, p.Session)
		b = appendState(b, p.State)
	}
	b = mp.AppendArrayLen(b, len(m.Gone))
	for _, g := range m.Gone {
		b = mp.AppendString(b, g)
	}
	return b
}

// meta reads a metadata map (nil allowed): keys and values are UTF-8
// strings, keys distinct.
func (d *decoder) meta() map[string]string {
	if d.err != nil {
		return nil
	}
	if d.r.PeekNil() {
		_ = d.r.Nil()
		return nil
	}
	n, err := d.r.MapLen()
	if err != nil {
		d.mpFail("meta", err)
		return nil
	}
	if n == 0 {
		return nil
	}
	m := make(map[string]string, min(n, 64))
	for range n {
		off := d.r.Offset()
		// Bounded by the frame only: presence limits are the server's to
		// enforce, with a refusal that keeps the connection (4516).
		k := d.str("meta key", d.lim.MaxFrame)
		v := d.str("meta value", d.lim.MaxFrame)
		if d.err != nil {
			return nil
		}
		if _, dup := m[k]; dup {
			d.failAt(off, ErrBadField, fmt.Sprintf("meta key %q twice", k))
			return nil
		}
		m[k] = v
	}
	return m
}

func (d *decoder) state() presence.State {
	var st presence.State
	st.Cursor.Root = d.str("root", d.lim.MaxFrame)
	if a := d.bin("anchor"); len(a) > 0 {
		st.Cursor.Anchor = append([]byte(nil), a...)
	}
	if h := d.bin("head"); len(h) > 0 {
		st.Cursor.Head = append([]byte(nil), h...)
	} else if len(st.Cursor.Anchor) > 0 {
		st.Cursor.Head = append([]byte(nil), st.Cursor.Anchor...) // a caret
	}
	st.Meta = d.meta()
	return st
}

func (d *decoder) presence() *Presence {
	m := &Presence{Doc: d.doc(false)}
	m.Full = d.bool("full")
	if d.err != nil {
		return nil
	}
	n, err := d.r.ArrayLen()
	if err != nil {
		d.mpFail("peers", err)
		return nil
	}
	if n > 0 {
		m.Peers = make([]presence.Peer, 0, min(n, 64))
	}
	for range n {
		k, err := d.r.ArrayLen()
		if err != nil {
			d.mpFail("peer", err)
			return nil
		}
		if k != 9 {
			d.fail(ErrFieldCount, fmt.Sprintf("peer: %d elements, want 9", k))
			return nil
		}
		var p presence.Peer
		p.Session = d.str("session", d.lim.MaxString)
		p.User.ID = d.str("user id", d.lim.MaxString)
		p.User.Name = d.str("user name", d.lim.MaxString)
		p.User.Color = d.str("user color", d.lim.MaxString)
		p.ReadOnly = d.bool("read-only")
		p.State = d.state()
		if d.err != nil {
			return nil
		}
		m.Peers = append(m.Peers, p)
	}
	if n, err = d.r.ArrayLen(); err != nil {
		d.mpFail("moved", err)
		return nil
	}
	for range n {
		k, err := d.r.ArrayLen()
		if err != nil {
			d.mpFail("moved peer", err)
			return nil
		}
		if k != 5 {
			d.fail(ErrFieldCount, fmt.Sprintf("moved peer: %d elements, want 5", k))
			return nil
		}
		p := presence.Peer{Session: d.str("session", d.lim.MaxString)}
		p.State = d.state()
		if d.err != nil {
			return nil
		}
		m.Moved = append(m.Moved, p)
	}
	if n, err = d.r.ArrayLen(); err != nil {
		d.mpFail("gone", err)
		return nil
	}
	for range n {
		m.Gone = append(m.Gone, d.str("gone session", d.lim.MaxString))
		if d.err != nil {
			return nil
		}
	}
	return m
}

// IsPresenceSet reports whether frame b is a PresenceSet by its first two
// bytes (the array header and the type), without decoding it.
func IsPresenceSet(b []byte) bool {
	return len(b) >= 2 && b[0] == 0x96 && b[1] == byte(TypePresenceSet)
}

// DecodePresenceSet decodes a PresenceSet frame as Decode does (the same
// checks, the same errors) into fewer allocations, for a server reading a
// presence storm: the document id is returned as a sub-slice of b (valid
// while b is: look it up, don't keep it), the cursor's root is root when
// the frame names the same one (callers pass the last root they saw), and
// anchor and head share one allocation (a caret: the same bytes; treat
// them as read-only). Nothing else of the state aliases b.
func DecodePresenceSet(b []byte, lim DecodeLimits, root string) (doc []byte, st presence.State, err error) {
	if !IsPresenceSet(b) {
		return slowPresenceSet(b, lim)
	}
	d := decoder{t: TypePresenceSet, lim: lim.withDefaults()}
	if len(b) > d.lim.MaxFrame {
		return slowPresenceSet(b, lim)
	}
	d.r.Reset(b[2:])
	doc, err = d.r.StringBytes()
	if err != nil || !validDocID(doc, d.lim.MaxDocID) {
		return slowPresenceSet(b, lim)
	}
	rb, err := d.r.StringBytes()
	if err != nil || len(rb) > d.lim.MaxFrame || !utf8.Valid(rb) {
		return slowPresenceSet(b, lim)
	}
	if string(rb) == root {
		st.Cursor.Root = root
	} else {
		st.Cursor.Root = string(rb)
	}
	a, aerr := d.r.Bin()
	h, herr := d.r.Bin()
	if aerr != nil || herr != nil {
		return slowPresenceSet(b, lim)
	}
	switch {
	case len(h) == 0 && len(a) > 0: // a caret
		st.Cursor.Anchor = append([]byte(nil), a...)
		st.Cursor.Head = st.Cursor.Anchor
	case len(a)+len(h) > 0:
		buf := make([]byte, len(a)+len(h))
		copy(buf, a)
		copy(buf[len(a):], h)
		if len(a) > 0 {
			st.Cursor.Anchor = buf[:len(a):len(a)]
		}
		st.Cursor.Head = buf[len(a):]
	}
	st.Meta = d.meta()
	if d.err != nil || d.r.Remaining() != 0 {
		return slowPresenceSet(b, lim)
	}
	return doc, st, nil
}

// slowPresenceSet is what DecodePresenceSet answers for a frame its fast
// path does not take: Decode's answer (the reference). Decode may accept
// it (a non-canonical encoding, such as the type as a uint8), and then so
// does DecodePresenceSet; any other message is refused.
func slowPresenceSet(b []byte, lim DecodeLimits) ([]byte, presence.State, error) {
	m, err := Decode(b, lim)
	if err != nil {
		return nil, presence.State{}, err
	}
	if ps, ok := m.(*PresenceSet); ok {
		return []byte(ps.Doc), ps.State, nil
	}
	return nil, presence.State{}, &DecodeError{Type: m.Type(), Reason: "not a presence set", Err: ErrBadField}
}

// validDocID is CheckDocID for bytes, without allocating.
func validDocID(id []byte, maxLen int) bool {
	if maxLen <= 0 {
		maxLen = DefaultMaxDocID
	}
	if len(id) == 0 || len(id) > maxLen || !utf8.Valid(id) {
		return false
	}
	for _, c := range string(id) { // no copy: the compiler ranges over the bytes
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}
