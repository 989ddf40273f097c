package protocol

import (
	"fmt"
	"maps"
	"slices"

	"github.com/collabd/collabd/internal/mp"
	"github.com/collabd/collabd/presence"
)

// Presence message types (from the range 32–63 reserved for presence).
const (
	TypePresenceSet Type = 32 // client -> server: [32, doc, root, anchor, head, meta]
	TypePresence    Type = 33 // server -> client: [33, doc, full, peers, gone]
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
// Join: Peers is then everyone (the client replaces its view). Otherwise
// Peers are peers whose state changed (latest state only) and Gone the
// sessions that left.
type Presence struct {
	Doc   string
	Full  bool
	Peers []presence.Peer
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

func appendState(b []byte, st presence.State) []byte {
	b = mp.AppendString(b, st.Cursor.Root)
	b = mp.AppendBin(b, st.Cursor.Anchor)
	b = mp.AppendBin(b, st.Cursor.Head)
	return appendMeta(b, st.Meta)
}

func appendPresence(b []byte, m *Presence) []byte {
	b = append(b, 0x95, byte(TypePresence))
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
	b = mp.AppendArrayLen(b, len(m.Gone))
	for _, g := range m.Gone {
		b = mp.AppendString(b, g)
	}
	return b
}

// meta reads a metadata map (nil allowed): keys and values are UTF-8 strings
// of at most MaxString bytes, keys distinct.
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
		k := d.str("meta key", d.lim.MaxString)
		v := d.str("meta value", d.lim.MaxString)
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
	st.Cursor.Root = d.str("root", d.lim.MaxString)
	if a := d.bin("anchor"); len(a) > 0 {
		st.Cursor.Anchor = append([]byte(nil), a...)
	}
	if h := d.bin("head"); len(h) > 0 {
		st.Cursor.Head = append([]byte(nil), h...)
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
