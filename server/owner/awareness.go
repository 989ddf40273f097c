package owner

import (
	"maps"
	"slices"
	"time"

	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
)

// awarenessState is the Yjs half of presence: the document's y-protocols
// awareness (carets, names, selections of Yjs editors), relayed between
// its Yjs sessions.
//
// It flushes with presence (one schedule, at most one flush per
// PresenceInterval): the clients that changed since the last flush go out
// as one awareness update, encoded once for every session; a session that
// missed a flush (behind: awareness is dropped first) or just joined gets
// every state instead. A client's state belongs to the session that last
// sent it; when that session leaves, the state is removed at once (no
// ghost carets), and states nobody renews expire after y-protocols'
// outdated timeout.
type awarenessState struct {
	aw  *yproto.Awareness // nil until the first update
	lim yproto.Limits
	// made with their first entry (a native document never needs them)
	dirty  map[uint64]bool
	stale  map[Subscriber]bool
	claims map[uint64]Subscriber
}

func newAwarenessState(lim yproto.Limits) awarenessState {
	return awarenessState{lim: lim}
}

// markStale makes s get every state with the next flush.
func (a *awarenessState) markStale(s Subscriber) {
	if a.stale == nil {
		a.stale = map[Subscriber]bool{}
	}
	a.stale[s] = true
}

// pending reports whether a flush has something to send.
func (a *awarenessState) pending() bool { return len(a.dirty) > 0 || len(a.stale) > 0 }

func (a *awarenessState) get() *yproto.Awareness {
	if a.aw == nil {
		a.aw = yproto.NewAwareness(a.lim)
	}
	return a.aw
}

func (a *awarenessState) mark(clients []uint64) {
	if a.dirty == nil && len(clients) > 0 {
		a.dirty = map[uint64]bool{}
	}
	for _, c := range clients {
		a.dirty[c] = true
	}
}

// setAwareness applies a session's awareness update.
func (o *Owner) setAwareness(m Awareness, now time.Time) {
	if st := o.subs[m.Sub]; st == nil || !st.peer {
		o.deliver(m.Sub, notSubscribed(o.id, 0))
		return
	}
	if o.kind != KindYjs {
		o.deliver(m.Sub, &ErrorEvent{Doc: o.id, Code: protocol.CodeWrongKind, Message: "awareness is for Yjs documents"})
		return
	}
	a := &o.aware
	if m.Update == nil { // a query: every state with the next flush
		if a.aw != nil && a.aw.Len() > 0 {
			a.markStale(m.Sub)
			o.schedulePresence(now)
		}
		return
	}
	entries, err := yproto.DecodeAwareness(m.Update, a.lim)
	if err != nil {
		o.deliver(m.Sub, &ErrorEvent{Doc: o.id, Code: protocol.CodePresenceRefused, Message: "awareness: " + err.Error()})
		return
	}
	changed, err := a.get().Apply(m.Update, now)
	if err != nil {
		o.deliver(m.Sub, &ErrorEvent{Doc: o.id, Code: protocol.CodePresenceRefused, Message: "awareness: " + err.Error()})
		return
	}
	for _, e := range entries {
		if e.Removed() {
			delete(a.claims, e.Client)
		} else {
			if a.claims == nil {
				a.claims = map[uint64]Subscriber{}
			}
			a.claims[e.Client] = m.Sub // the latest sender owns the state (a client that reconnected)
		}
	}
	a.mark(changed)
	o.schedulePresence(now)
}

// awarenessJoin gives a joining Yjs session every state with the next flush.
func (o *Owner) awarenessJoin(s Subscriber, now time.Time) {
	if o.kind != KindYjs {
		return
	}
	if o.aware.aw == nil || o.aware.aw.Len() == 0 {
		return // nothing to show yet: later changes reach it as deltas
	}
	o.aware.markStale(s)
	o.schedulePresence(now)
}

// awarenessLeave removes the states a leaving session owns, at once.
func (o *Owner) awarenessLeave(s Subscriber, now time.Time) {
	a := &o.aware
	delete(a.stale, s)
	var mine []uint64
	for c, owner := range a.claims {
		if owner == s {
			mine = append(mine, c)
			delete(a.claims, c)
		}
	}
	if len(mine) == 0 || a.aw == nil {
		return
	}
	slices.Sort(mine)
	a.mark(a.aw.Remove(mine, now))
	o.schedulePresence(now)
}

// expireAwareness removes the states nobody renewed in time.
func (o *Owner) expireAwareness(now time.Time) {
	a := &o.aware
	if a.aw == nil {
		return
	}
	gone := a.aw.Expire(now, yproto.OutdatedTimeout)
	for _, c := range gone {
		delete(a.claims, c)
	}
	a.mark(gone)
}

// flushAwareness sends the changed states to every session (the whole
// awareness to stale ones). It reports whether some session is still
// stale (to be retried with the next flush).
func (o *Owner) flushAwareness() bool {
	a := &o.aware
	if a.aw == nil || !a.pending() {
		return false
	}
	var delta, full *AwarenessEvent
	if len(a.dirty) > 0 {
		changed := slices.Sorted(maps.Keys(a.dirty))
		clear(a.dirty)
		delta = &AwarenessEvent{Doc: o.id, Update: a.aw.Encode(changed)}
	}
	for s, st := range o.subs {
		if !st.peer {
			continue
		}
		ev := delta
		if a.stale[s] {
			if a.aw.Len() == 0 {
				delete(a.stale, s)
				continue
			}
			if full == nil {
				full = &AwarenessEvent{Doc: o.id, Update: a.aw.Encode(a.aw.Clients()), Full: true}
			}
			ev = full
		}
		if ev == nil {
			continue
		}
		if s.DeliverSoft(ev) {
			delete(a.stale, s)
		} else {
			a.markStale(s)
			o.metrics().PresenceDropped()
		}
	}
	if len(a.stale) == 0 {
		a.stale = nil
	}
	return len(a.stale) > 0
}

// awarenessStates is the awareness as JSON states by client (Read).
func (o *Owner) awarenessStates() map[uint64]string {
	a := &o.aware
	if a.aw == nil {
		return nil
	}
	return a.aw.States()
}
