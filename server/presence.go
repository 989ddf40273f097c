package server

import (
	"errors"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// ownerPresence is the presence half of an owner: the document's
// presence.Set and the flush schedule. Only the owner goroutine touches it.
//
// Changes are flushed at most once per Config.PresenceInterval: the first
// change after a quiet period goes out at once, later ones wait for the
// interval to end and go out together (latest state per peer). A session
// whose queue is too full for a presence frame misses it (presence is the
// first thing dropped; an editor is never disconnected for presence) and is
// marked stale: the next flush sends it the whole presence instead of the
// delta, so it never keeps a peer's old state.
type ownerPresence struct {
	set   *presence.Set
	last  time.Time   // last flush
	timer *time.Timer // fires the next flush; live while armed
	armed bool
	stale map[*session]bool
}

func newOwnerPresence(cfg Config) ownerPresence {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return ownerPresence{set: presence.New(cfg.PresenceLimits, cfg.PresenceTTL), timer: t, stale: make(map[*session]bool)}
}

// flushC is the flush timer's channel while a flush is scheduled, else nil.
func (p *ownerPresence) flushC() <-chan time.Time {
	if p.armed {
		return p.timer.C
	}
	return nil
}

// presenceJoin lists the session as a peer (identity from its token); the
// next flush (at once, or within the presence interval) sends it everyone's
// presence. Joins in one interval share one encoded full frame: a burst of
// joins on a crowded document does not encode the whole list per join.
func (o *owner) presenceJoin(r request, now time.Time) {
	err := o.pres.set.Join(r.s.id, r.user, r.ro, now)
	if err != nil && !errors.Is(err, presence.ErrJoined) {
		// The document stays joined; the session is just not listed.
		r.s.sendError(protocol.CodePresenceRefused, o.id, 0, err.Error())
	}
	o.pres.stale[r.s] = true
	o.schedulePresence(now)
}

// presenceLeave removes the session's peer at once.
func (o *owner) presenceLeave(s *session, now time.Time) {
	o.pres.set.Leave(s.id)
	delete(o.pres.stale, s)
	o.schedulePresence(now)
}

// presenceSet applies a session's own PresenceSet.
func (o *owner) presenceSet(r request, now time.Time) {
	if _, ok := o.subs[r.s]; !ok {
		r.s.sendError(protocol.CodeNotJoined, o.id, 0, "presence for a document not joined")
		return
	}
	if p, ok := o.pres.set.Get(r.s.id); ok && p.ReadOnly && o.srv.cfg.HideReadOnlyCursors && !r.state.Cursor.IsZero() {
		r.s.sendError(protocol.CodeReadOnly, o.id, 0, "read-only sessions do not show a cursor on this server")
		return
	}
	if err := o.pres.set.Set(r.s.id, r.state, now); err != nil {
		r.s.sendError(protocol.CodePresenceRefused, o.id, 0, err.Error())
		return
	}
	o.schedulePresence(now)
}

// expirePresence is the fallback for connections that died without closing:
// a peer whose session has shown no sign of life (frames or pongs) for the
// TTL is removed. A live idle session is kept, whatever its last PresenceSet.
func (o *owner) expirePresence(now time.Time) {
	ttl := o.pres.set.TTL()
	for s := range o.subs {
		if now.Sub(s.seen()) <= ttl {
			o.pres.set.Touch(s.id, now)
		}
	}
	if gone := o.pres.set.Expire(now); len(gone) > 0 {
		o.srv.cfg.Logger.Debug("presence expired", "doc", o.id, "sessions", gone)
	}
	o.schedulePresence(now)
}

// schedulePresence flushes now if the last flush is an interval old, or arms
// the timer for the end of the interval.
func (o *owner) schedulePresence(now time.Time) {
	p := &o.pres
	if p.armed || (!p.set.Dirty() && len(p.stale) == 0) {
		return
	}
	wait := o.srv.cfg.PresenceInterval - now.Sub(p.last)
	if wait <= 0 {
		o.flushPresence(now)
		return
	}
	p.timer.Reset(wait)
	p.armed = true
}

// flushPresence encodes what changed once and fans it out; stale sessions
// get the whole presence instead.
func (o *owner) flushPresence(now time.Time) {
	p := &o.pres
	p.armed = false
	p.last = now
	var delta, full []byte
	if changes := p.set.Flush(); len(changes) > 0 {
		m := &protocol.Presence{Doc: o.id}
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
		delta = protocol.Encode(m)
		o.presenceToFollowers(m)
	}
	for s := range o.subs {
		frame := delta
		if p.stale[s] {
			if full == nil {
				full = protocol.Encode(&protocol.Presence{Doc: o.id, Full: true, Peers: p.set.Peers()})
			}
			frame = full
		}
		if frame == nil {
			continue
		}
		if s.enqueueSoft(frame) {
			delete(p.stale, s)
		} else {
			p.stale[s] = true
			o.srv.metrics.presenceDropped()
		}
	}
	if len(p.stale) > 0 {
		o.schedulePresence(now)
	}
}
