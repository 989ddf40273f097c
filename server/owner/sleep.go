package owner

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Hibernation. An owner whose document is quiet — subscribers joined but
// nothing in its inbox, no commit, backlog, compaction, presence flush or
// version timer pending — gives up its goroutine (and that goroutine's
// stack and timers) and drops the caches it can rebuild (the cold-join
// sync). The document stays loaded and registered, its subscribers stay
// subscribed; the next message (Send, an eviction request) or its alarm
// starts a goroutine again, which carries on where the last one stopped.
//
// The single-owner rule holds across a sleep: the decision to sleep and
// every wake happen under sleeper.mu, and exactly one of the two sides
// wins when a message arrives while the owner is deciding:
//
//   - a sender counts its message (queued) before it puts it in the
//     inbox, then reads drowsy;
//   - the owner sets drowsy before it reads queued.
//
// With sequentially consistent atomics either the owner sees the message
// (and stays awake) or the sender sees drowsy (and, under mu, finds the
// owner asleep and starts it). Messages keep their order: they wait in the
// same inbox whether the owner is awake or not.
//
// A sleeping owner's presence still expires (a peer whose connection died
// without closing leaves after PresenceTTL): while it has peers or
// awareness states, an alarm (one runtime timer, no goroutine) wakes it
// when its next expiry pass is due, as the awake owner's ticker would.
type sleeper struct {
	queued atomic.Int32 // messages and eviction requests sent, not yet taken
	drowsy atomic.Bool  // asleep, or deciding: a waker must take mu and look

	mu      sync.Mutex // guards asleep, noSleep and alarm (never held across a send or I/O)
	asleep  bool       // no goroutine runs the document
	noSleep bool       // the registry is shutting down: never sleep again
	alarm   *time.Timer
}

// quiet reports whether the owner may sleep: loaded and serving, someone
// subscribed (a document nobody holds unloads instead), and nothing it
// would have to wake up for by itself except the presence expiry.
func (o *Owner) quiet() bool {
	return o.failed == nil && (o.doc != nil || o.blank) && len(o.subs) > 0 &&
		o.commits.empty() && len(o.commits.held) == 0 && !o.commits.armed &&
		!o.compacts.running && !o.pres.armed &&
		!o.evicting && !o.disowned && o.queued.Load() == 0
}

// sleep puts the owner to sleep unless a message arrived meanwhile or the
// registry is shutting down. On true the calling goroutine must return at
// once without touching the owner's state: a waker may already run it.
func (o *Owner) sleep(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.noSleep {
		return false
	}
	o.drowsy.Store(true)
	if o.queued.Load() > 0 {
		o.drowsy.Store(false)
		return false
	}
	o.asleep = true
	o.coldJoin.version, o.coldJoin.chunks, o.coldJoin.bytes = 0, nil, 0
	if o.doc != nil && !o.exists && o.doc.Version() == 0 && o.doc.Pending() == 0 {
		// Never written: the replica is a new, empty one (as ensureKind
		// and create judge it), made again when something needs it.
		o.doc, o.blank = nil, true
	}
	o.account(o.estimate())
	if d, ok := o.alarmIn(now); ok {
		if o.alarm == nil {
			o.alarm = time.AfterFunc(d, o.ring)
		} else {
			o.alarm.Reset(d)
		}
	}
	o.reg.sleeping.Add(1)
	return true
}

// alarmIn is how soon a sleeping owner must wake by itself: for its next
// presence expiry pass while it has peers or awareness states, for its
// automatic version when the quiet timer runs. ok is false when nothing
// but a message can need it.
func (o *Owner) alarmIn(now time.Time) (d time.Duration, ok bool) {
	if o.pres.set.Len() > 0 || o.aware.aw != nil && o.aware.aw.Len() > 0 {
		d, ok = o.expiryPeriod()-now.Sub(o.lastExpiry), true
	}
	if o.vers.armed && (!ok || o.vers.due.Sub(now) < d) {
		d, ok = o.vers.due.Sub(now), true
	}
	return max(d, time.Millisecond), ok
}

// thaw makes the replica of a document that slept blank (never
// written) again: the owner's state has a replica whenever it handles a
// message. A failure (none for an empty replica of a known kind) is a bug:
// it panics, and the owner reloads from storage.
func (o *Owner) thaw() {
	if !o.blank {
		return
	}
	doc, err := o.cfg.NewEngine(o.kind, nil)
	if err != nil {
		panic(fmt.Sprintf("owner: new %v replica: %v", o.kind, err))
	}
	o.doc, o.blank = doc, false
}

// ring is the alarm: wake for the presence expiry.
func (o *Owner) ring() {
	if !o.drowsy.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.wakeLocked()
}

// wake starts a goroutine for a sleeping owner that has a message or an
// eviction request waiting (its sender counted it in queued before this
// call). It never blocks on the owner. A sender can come here after the
// owner took its message, handled it and went to sleep: queued is then
// back to zero and the owner stays asleep (woken for nothing, it would
// keep a goroutine and its timers until its next expiry pass).
func (o *Owner) wake() {
	if !o.drowsy.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.queued.Load() == 0 {
		return
	}
	o.wakeLocked()
}

func (o *Owner) wakeLocked() {
	if !o.asleep {
		return
	}
	o.asleep = false
	o.drowsy.Store(false)
	if o.alarm != nil {
		o.alarm.Stop()
	}
	o.reg.sleeping.Add(-1)
	o.reg.goroutine(func() { o.loop(o.reg.ctx) })
}

// stayAwake wakes a sleeping owner and keeps it from sleeping again (the
// registry is shutting down: every owner must see it and exit).
func (o *Owner) stayAwake() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.noSleep = true
	o.wakeLocked()
}

// Asleep reports whether no goroutine runs the document now (tests,
// metrics).
func (o *Owner) Asleep() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asleep
}

// expiryPeriod is how often presence expiry runs: a peer leaves within
// one period after its TTL.
func (o *Owner) expiryPeriod() time.Duration {
	return max(o.cfg.PresenceTTL/3, time.Millisecond)
}
