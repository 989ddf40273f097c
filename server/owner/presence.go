package owner

import (
	"errors"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// presenceState is the presence half of an owner: the document's
// presence.Set and the flush schedule.
//
// Changes are flushed at most once per PresenceInterval: the first change
// after a quiet period goes out at once, later ones wait for the interval
// to end and go out together (latest state per peer). A subscriber too far
// behind for a presence event misses it (presence is the first thing
// dropped; an editor is never disconnected for presence) and is marked
// stale: the next flush sends it the whole presence instead of the delta,
// so it never keeps a peer's old state.
type presenceState struct {
	set   *presence.Set
	last  time.Time   // last flush
	timer *time.Timer // fires the next flush; live while armed (made with the first flush that waits)
	armed bool
	stale map[Subscriber]bool // made with the first entry
	// posted: sessions left states in the box (presencebox.go) for the
	// next flush to take
	posted bool
}

func newPresenceState(cfg *Config) presenceState {
	return presenceState{set: presence.New(cfg.PresenceLimits, cfg.PresenceTTL)}
}

// stop stops the flush timer (the owner's state is dropped or it exits).
func (p *presenceState) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.armed = false
}

// markStale makes s get the whole presence with the next flush.
func (p *presenceState) markStale(s Subscriber) {
	if p.stale == nil {
		p.stale = make(map[Subscriber]bool)
	}
	p.stale[s] = true
}

// flushC is the flush timer's channel while a flush is scheduled, else nil.
func (p *presenceState) flushC() <-chan time.Time {
	if p.armed {
		return p.timer.C
	}
	return nil
}

// presenceJoin lists the session as a peer (identity from its token); the
// next flush (at once, or within the interval) sends it everyone's
// presence. Joins in one interval share one full event.
func (o *Owner) presenceJoin(m Join, now time.Time) {
	err := o.pres.set.Join(m.Sub.ID(), m.User, m.ReadOnly, now)
	if err != nil && !errors.Is(err, presence.ErrJoined) {
		// The document stays joined; the session is just not listed.
		o.deliver(m.Sub, &ErrorEvent{Doc: o.id, Code: protocol.CodePresenceRefused, Message: err.Error()})
	}
	o.pres.markStale(m.Sub)
	o.schedulePresence(now)
}

// presenceLeave removes the subscriber's peer at once.
func (o *Owner) presenceLeave(s Subscriber, now time.Time) {
	o.pres.set.Leave(s.ID())
	delete(o.pres.stale, s)
	o.schedulePresence(now)
}

// setPresence applies a session's own presence. One that carries a slot
// registers it: the session's later states come through the box
// (presencebox.go).
func (o *Owner) setPresence(m SetPresence, now time.Time) {
	st := o.subs[m.Sub]
	if st == nil || !st.peer {
		o.deliver(m.Sub, notSubscribed(o.id, 0))
		return
	}
	if m.Slot != nil {
		registerSlot(st, m.Slot)
	}
	if o.applyPresence(m.Sub, m.State, now) {
		o.schedulePresence(now)
	}
}

// applyPresence sets a joined session's presence; a refusal is delivered
// to it. It reports whether the state was set.
func (o *Owner) applyPresence(s Subscriber, state presence.State, now time.Time) bool {
	if o.cfg.HideReadOnlyCursors && !state.Cursor.IsZero() && o.readOnlyPeer(s) {
		o.deliver(s, &ErrorEvent{Doc: o.id, Code: protocol.CodeReadOnly, Message: "read-only sessions do not show a cursor on this server"})
		return false
	}
	if err := o.pres.set.Set(s.ID(), state, now); err != nil {
		o.deliver(s, &ErrorEvent{Doc: o.id, Code: protocol.CodePresenceRefused, Message: err.Error()})
		return false
	}
	return true
}

// readOnlyPeer reports whether s is listed in presence as read-only.
func (o *Owner) readOnlyPeer(s Subscriber) bool {
	p, ok := o.pres.set.Get(s.ID()) // a copy: only when read-only cursors are hidden
	return ok && p.ReadOnly
}

// expirePresence is the fallback for connections that died without
// closing: a peer whose subscriber has shown no sign of life for the TTL is
// removed. A live idle session is kept, whatever its last presence.
func (o *Owner) expirePresence(now time.Time) {
	for s, st := range o.subs {
		if st.peer {
			// The peer counts as alive from its connection's last sign of
			// life, so it leaves TTL after that (within a tick of TTL/3).
			if seen := s.Seen(); !seen.After(now) {
				o.pres.set.Touch(s.ID(), seen)
			}
		}
	}
	o.lastExpiry = now
	if gone := o.pres.set.Expire(now); len(gone) > 0 {
		o.cfg.Logger.Debug("presence expired", "doc", o.id, "sessions", gone)
	}
	o.expireAwareness(now)
	o.schedulePresence(now)
}

// schedulePresence flushes now if the last flush is an interval old, or
// arms the timer for the end of the interval.
func (o *Owner) schedulePresence(now time.Time) {
	p := &o.pres
	if p.armed || (!p.set.Dirty() && len(p.stale) == 0 && !p.posted && !o.aware.pending()) {
		return
	}
	wait := o.presenceInterval() - now.Sub(p.last)
	if wait <= 0 {
		o.flushPresence(now)
		return
	}
	if p.timer == nil {
		p.timer = time.NewTimer(wait)
	} else {
		p.timer.Reset(wait)
	}
	p.armed = true
}

// crowdPeers is how many peers one presence interval serves: a document
// with more flushes less often, one more interval per crowdPeers peers
// (100 peers: every 2 intervals). Each flush writes a frame to every
// peer, so the frames a document sends per second grow with its peers
// rather than with their square; carets in a crowded document move at 10
// Hz instead of 20 (Liveblocks throttles to 10 Hz for everyone).
const crowdPeers = 50

// presenceInterval is the flush interval for the document's peers now.
func (o *Owner) presenceInterval() time.Duration {
	n := o.pres.set.Len()
	return o.cfg.PresenceInterval * time.Duration(1+(max(n, 1)-1)/crowdPeers)
}

// flushPresence builds what changed once and delivers it; stale
// subscribers get the whole presence instead.
func (o *Owner) flushPresence(now time.Time) {
	p := &o.pres
	// The states sessions left in the box go out with this flush. Applying
	// them may drop a subscriber (a refusal it cannot take): armed keeps
	// that from scheduling a flush of its own meanwhile.
	p.armed = true
	o.drainPresence(now)
	p.armed = false
	p.last = now
	var delta, full *PresenceEvent
	if changes := p.set.Flush(); len(changes) > 0 {
		m := &protocol.Presence{Doc: o.id}
		var gone, joined int
		for _, c := range changes {
			switch {
			case c.Removed:
				gone++
			case c.New:
				joined++
			}
		}
		// Sized at once: a storm moves every peer each flush (growing the
		// slice entry by entry was a third of a flush).
		if gone > 0 {
			m.Gone = make([]string, 0, gone)
		}
		if joined > 0 {
			m.Peers = make([]presence.Peer, 0, joined)
		}
		if moved := len(changes) - gone - joined; moved > 0 {
			m.Moved = make([]presence.Peer, 0, moved)
		}
		for _, c := range changes {
			switch {
			case c.Removed:
				m.Gone = append(m.Gone, c.Peer.Session)
			case c.New:
				m.Peers = append(m.Peers, c.Peer)
			default: // receivers know who it is: state only
				m.Moved = append(m.Moved, presence.Peer{Session: c.Peer.Session, State: c.Peer.State})
			}
		}
		delta = o.presenceEvent(m)
	}
	for s := range o.subs {
		ev := delta
		if p.stale[s] {
			if full == nil {
				full = o.presenceEvent(&protocol.Presence{Doc: o.id, Full: true, Peers: p.set.Peers()})
			}
			ev = full
		}
		if ev == nil {
			continue
		}
		if s.DeliverSoft(ev) {
			delete(p.stale, s)
		} else {
			p.markStale(s)
			o.metrics().PresenceDropped()
		}
	}
	if len(p.stale) == 0 {
		p.stale = nil // made again with the next stale subscriber
	}
	if o.flushAwareness() || len(p.stale) > 0 {
		o.schedulePresence(now)
	}
}

// presenceEvent wraps m with the cursor resolution followers need.
func (o *Owner) presenceEvent(m *protocol.Presence) *PresenceEvent {
	return &PresenceEvent{Msg: m, resolve: func(root string) map[string][2]int { return o.resolveCursors(m, root) }}
}

// resolveCursors resolves the cursors in m that are in root to indexes of
// the root's current text (-1 where a position does not resolve).
func (o *Owner) resolveCursors(m *protocol.Presence, root string) map[string][2]int {
	o.thaw()
	out := map[string][2]int{}
	for _, list := range [][]presence.Peer{m.Peers, m.Moved} {
		for _, p := range list {
			if p.Cursor.Root == root && len(p.Cursor.Anchor) > 0 {
				out[p.Session] = [2]int{o.doc.ResolveCursor(root, p.Cursor.Anchor), o.doc.ResolveCursor(root, p.Cursor.Head)}
			}
		}
	}
	return out
}
