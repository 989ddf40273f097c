package yjs

import (
	"maps"
	"slices"
	"time"
)

// Awareness is the awareness a y-websocket server keeps for one document:
// y-protocols' Awareness without a local state. It merges the updates
// clients send (Apply), says which clients changed so the server can
// re-broadcast exactly those (Encode), answers a joiner or a query with
// every state, and removes the states of clients that left or went quiet
// (Remove, Expire). It holds no lock and reads no clock: its owner (the
// document's goroutine) passes the time in.
type Awareness struct {
	lim    Limits
	states map[uint64]string // client → state JSON (present clients only)
	meta   map[uint64]awMeta // client → clock, kept after removal as y-protocols does
	order  []uint64          // clients with a state, in the order Yjs's Map holds them
	bytes  int               // the states' total length (bounded by MaxAwarenessBytes)
}

type awMeta struct {
	clock   uint64
	updated time.Time
}

// OutdatedTimeout is y-protocols' outdatedTimeout: a client that has not
// renewed its state for this long is removed.
const OutdatedTimeout = 30 * time.Second

// NewAwareness returns an empty awareness. lim.MaxAwareness also bounds
// the clients it holds.
func NewAwareness(lim Limits) *Awareness {
	return &Awareness{lim: lim.withDefaults(), states: map[uint64]string{}, meta: map[uint64]awMeta{}}
}

// Apply merges an awareness update as y-protocols' applyAwarenessUpdate
// does: an entry wins with a newer clock, or with the same clock when it
// removes a present state. It returns the clients added, updated and
// removed, in that order (what a y-websocket server re-broadcasts). A
// malformed update, or one that would hold more than MaxAwareness clients,
// changes nothing.
func (a *Awareness) Apply(update []byte, now time.Time) ([]uint64, error) {
	entries, err := DecodeAwareness(update, a.lim)
	if err != nil {
		return nil, err
	}
	grow, growBytes := 0, 0
	for _, e := range entries {
		old, ok := a.states[e.Client]
		if !ok && !e.Removed() {
			grow++
		}
		if !e.Removed() {
			growBytes += len(e.State) - len(old) // an over-estimate when a later entry of the same client replaces it
		}
	}
	if len(a.states)+grow > a.lim.MaxAwareness {
		return nil, &DecodeError{Field: "awareness clients", Err: ErrTooLarge}
	}
	if growBytes > 0 && a.bytes+growBytes > a.lim.MaxAwarenessBytes {
		return nil, &DecodeError{Field: "awareness bytes", Err: ErrTooLarge}
	}
	var added, updated, removed []uint64
	for _, e := range entries {
		m, known := a.meta[e.Client]
		_, present := a.states[e.Client]
		if !(m.clock < e.Clock || (m.clock == e.Clock && e.Removed() && present)) {
			continue
		}
		if e.Removed() {
			a.drop(e.Client)
		} else {
			a.set(e.Client, e.State)
		}
		a.meta[e.Client] = awMeta{clock: e.Clock, updated: now}
		switch {
		case !known && !e.Removed():
			added = append(added, e.Client)
		case known && e.Removed():
			removed = append(removed, e.Client)
		case !e.Removed():
			updated = append(updated, e.Client)
		}
	}
	return append(append(added, updated...), removed...), nil
}

func (a *Awareness) set(c uint64, state string) {
	old, ok := a.states[c]
	if !ok {
		a.order = append(a.order, c)
	}
	a.bytes += len(state) - len(old)
	a.states[c] = state
}

func (a *Awareness) drop(c uint64) {
	old, ok := a.states[c]
	if !ok {
		return
	}
	a.bytes -= len(old)
	delete(a.states, c)
	if i := slices.Index(a.order, c); i >= 0 {
		a.order = slices.Delete(a.order, i, i+1)
	}
}

// Clients lists the clients that have a state, in Yjs's order.
func (a *Awareness) Clients() []uint64 { return slices.Clone(a.order) }

// Encode returns the awareness update of clients (encodeAwarenessUpdate):
// each with its clock and state, null for a client without one.
func (a *Awareness) Encode(clients []uint64) []byte {
	entries := make([]AwarenessEntry, 0, len(clients))
	for _, c := range clients {
		state, ok := a.states[c]
		if !ok {
			state = "null"
		}
		entries = append(entries, AwarenessEntry{Client: c, Clock: a.meta[c].clock, State: state})
	}
	return AppendAwarenessUpdate(nil, entries)
}

// Remove removes the states of clients (removeAwarenessStates: a
// connection closed) and returns those it removed; Encode of them tells
// everyone they left (state null at the clock they had, as y-protocols
// sends it for a remote client).
func (a *Awareness) Remove(clients []uint64, now time.Time) []uint64 {
	var out []uint64
	for _, c := range clients {
		if _, ok := a.states[c]; !ok {
			continue
		}
		a.drop(c)
		a.meta[c] = awMeta{clock: a.meta[c].clock, updated: now}
		out = append(out, c)
	}
	return out
}

// Expire removes the states not renewed within timeout (y-protocols'
// outdated check) and returns them, as Remove does. It also forgets the
// clocks of clients removed more than timeout ago, so the clock table stays
// bounded: a stale update of such a client is accepted again and expires
// in its turn.
func (a *Awareness) Expire(now time.Time, timeout time.Duration) []uint64 {
	var stale []uint64
	for _, c := range a.order {
		if now.Sub(a.meta[c].updated) >= timeout {
			stale = append(stale, c)
		}
	}
	for c, m := range a.meta {
		if _, ok := a.states[c]; !ok && now.Sub(m.updated) >= timeout {
			delete(a.meta, c)
		}
	}
	return a.Remove(stale, now)
}

// States returns every present client's state JSON.
func (a *Awareness) States() map[uint64]string { return maps.Clone(a.states) }

// Len is how many clients have a state.
func (a *Awareness) Len() int { return len(a.order) }
