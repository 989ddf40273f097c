package owner

import (
	"sync"
	"time"

	"github.com/collabd/collabd/presence"
)

// The presence box. Between two flushes only a session's latest presence
// matters, so a session does not send the owner one message (and wake it)
// per presence set: it leaves its latest state in a PresenceSlot, and the
// owner takes every slot's latest state when it flushes. A storm of 100
// peers at 30 Hz wakes the owner about twice per flush instead of 3,000
// times a second (BENCHMARKS.md, "Presence storm").
//
// The owner still owns the presence.Set: a slot only holds a State until
// the owner takes it, under the box's lock. Order with the session's other
// messages is kept by registration: a session's first presence after each
// Join goes through the inbox as a SetPresence carrying a new slot, so it
// is handled after that Join; the slot's later states can only be newer.
// A state posted before the owner has handled the registering SetPresence
// waits in the box until it has. A Leave (or a newer slot) retires the
// slot: what it still holds is dropped, as the peer is.

// A PresenceSlot holds one session's latest presence on one document for
// the owner to take at its next flush (Owner.PostPresence). A session
// makes a new one with its first presence after each Join (NewPresenceSlot,
// sent in SetPresence.Slot) and posts to it until it leaves or joins again.
type PresenceSlot struct {
	sub Subscriber

	// guarded by the owner's presenceBox.mu
	state   presence.State
	pending bool // in the box's list, state not taken yet

	// owner goroutine only
	seen    bool // the SetPresence that registers it was handled
	retired bool // its session left, or registered a newer slot: drop what it holds
}

// NewPresenceSlot makes a slot for sub's presence on one document.
func NewPresenceSlot(sub Subscriber) *PresenceSlot { return &PresenceSlot{sub: sub} }

// presenceBox is where sessions leave presence for the owner.
type presenceBox struct {
	mu       sync.Mutex      // guards list, signaled and the slots' state and pending (never held across a send)
	list     []*PresenceSlot // slots with a state not taken yet
	signaled bool            // the owner was told (c) since it last took the list: posts need not tell it again
	c        chan struct{}   // capacity 1: something was posted
	taken    []postedState   // the owner's scratch for a drain (owner goroutine only)
}

type postedState struct {
	slot  *PresenceSlot
	state presence.State
}

// PostPresence leaves st as slot's latest presence (registered by a
// SetPresence with the same slot, sent before) for the owner's next flush.
// It never blocks, and wakes the owner at most once per flush. It reports
// false if the owner has exited.
func (o *Owner) PostPresence(slot *PresenceSlot, st presence.State) bool {
	select {
	case <-o.done:
		return false
	default:
	}
	b := &o.box
	b.mu.Lock()
	slot.state = st
	if !slot.pending {
		slot.pending = true
		b.list = append(b.list, slot)
	}
	tell := !b.signaled
	b.signaled = true
	b.mu.Unlock()
	if tell {
		o.queued.Add(1) // before the channel, as Send does (sleep.go)
		select {
		case b.c <- struct{}{}:
			o.wake()
		default: // a signal is still waiting: it will do
			o.queued.Add(-1)
		}
	}
	return true
}

// presencePosted handles the box's signal: the posted states go out with
// the next flush (at once after a quiet interval, else at its end).
func (o *Owner) presencePosted(now time.Time) {
	if o.failed != nil {
		o.drainPresence(now) // refused: every poster is told
		return
	}
	o.pres.posted = true
	o.schedulePresence(now)
}

// registerSlot attaches a SetPresence's slot to its subscriber st (the
// session joined): states posted to it are applied from now on, and the
// slot it replaces is retired.
func registerSlot(st *sub, slot *PresenceSlot) {
	if st.slot != nil && st.slot != slot {
		st.slot.retired = true
	}
	st.slot = slot
}

// drainPresence takes every posted state and applies it, as a SetPresence
// in the inbox would have been. The caller flushes.
func (o *Owner) drainPresence(now time.Time) {
	o.pres.posted = false
	b := &o.box
	taken := b.taken[:0] // reused (a drain that re-enters finds none: it makes its own)
	b.taken = nil
	b.mu.Lock()
	for i, slot := range b.list {
		taken = append(taken, postedState{slot, slot.state})
		slot.state, slot.pending = presence.State{}, false
		b.list[i] = nil
	}
	b.list = b.list[:0]
	b.signaled = false
	b.mu.Unlock()
	for i, p := range taken {
		taken[i] = postedState{}
		slot := p.slot
		st := o.subs[slot.sub]
		switch {
		case !slot.seen:
			// Its registering SetPresence is still in the inbox: the state
			// waits for it (unless a newer one was posted meanwhile).
			b.mu.Lock()
			if !slot.pending {
				slot.state, slot.pending = p.state, true
				b.list = append(b.list, slot)
			}
			b.mu.Unlock()
		case st != nil && st.peer && st.slot == slot:
			o.applyPresence(slot.sub, p.state, now)
		case slot.retired: // left: the peer is gone, or a newer slot has it
		case o.failed != nil:
			o.deliver(slot.sub, o.refusal())
		default: // the owner dropped the subscription (reload): rejoin
			o.deliver(slot.sub, notSubscribed(o.id, 0))
		}
	}
	b.taken = taken[:0]
}

// discardPresence forgets what the box holds (the owner's state is being
// replaced: every subscription is dropped and told to rejoin).
func (o *Owner) discardPresence() {
	b := &o.box
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, slot := range b.list {
		slot.state, slot.pending = presence.State{}, false
		b.list[i] = nil
	}
	b.list = b.list[:0]
	b.signaled = false
}
