package owner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
)

// Config is what every owner of a Registry shares. Zero durations and
// counts are not defaulted here: the server passes its validated Config.
type Config struct {
	Logger  *slog.Logger
	Store   Store
	Metrics Metrics // nil: none
	Events  Events  // nil: none
	// NewEngine loads a replica of kind from a stored snapshot (nil: a
	// new, empty document).
	NewEngine func(kind Kind, snapshot []byte) (Engine, error)

	IdleUnload          time.Duration // a document nobody uses unloads after this
	CompactEntries      int           // log entries after the snapshot that trigger a compaction
	PresenceInterval    time.Duration // at most one presence flush per interval
	PresenceTTL         time.Duration // a peer whose subscriber shows no life this long is removed
	PresenceLimits      presence.Limits
	AwarenessLimits     yproto.Limits // a Yjs document's awareness (zero: y-protocols-sized defaults)
	HideReadOnlyCursors bool
	ChangeLogEntries    int   // recent steps kept for followers that resume
	ChangeLogBytes      int   // the same, in bytes
	MaxReplicaBytes     int64 // past this estimated total, growing updates are refused
	MaxColdJoinBytes    int   // largest whole-history sync kept for the next cold join
	// The app's broadcast messages (Broadcast without From) per document:
	// MessageRate a second, burst MessageBurst; past it they are refused
	// (sessions are limited by their connection).
	MessageRate  float64
	MessageBurst int
	// Version history (versions.go): nil Versions takes none. An automatic
	// version is taken after VersionQuiet without a change and every
	// VersionEvery changes (0: never for either).
	Versions     VersionStore
	VersionQuiet time.Duration
	VersionEvery int
}

// An Owner is the one goroutine that touches a document's replica: it
// loads it, applies updates, fans them out, persists them, acks, compacts,
// keeps presence and unloads when idle. See doc.go for the state machine.
type Owner struct {
	id    string
	cfg   *Config
	reg   *Registry
	inbox chan Msg
	done  chan struct{} // closed when the goroutine has exited

	// guarded by the registry lock
	refs      int
	idleSince time.Time // when refs last fell to zero (eviction order)

	memShared atomic.Int64  // the estimate below, for the registry's eviction choice
	evict     chan struct{} // the registry asks for an unload when idle (capacity 1)
	box       presenceBox   // sessions' latest presence, taken at each flush (presencebox.go)

	sleeper // hibernation (sleep.go)

	// owned by the goroutine running the document (at most one at a time:
	// sleep.go)
	mem        int64     // estimated replica bytes counted in the registry's total
	evicting   bool      // asked to unload: leave as soon as idle
	disowned   bool      // Disown handled: exit now
	current    Msg       // the message being handled (answered if it panics)
	lastExpiry time.Time // the last presence expiry pass
	state
}

// state is everything the owner goroutine holds about the loaded document;
// after a recovered panic it is replaced whole by a fresh load.
type state struct {
	doc       Engine
	blank     bool  // doc is dropped while asleep: the document was never written (thaw makes a new, empty one)
	kind      Kind  // the document's kind (a new document's may change until its first write)
	failed    error // load failure or deletion: every request is refused with it
	exists    bool  // stored, or written since the load
	subs      map[Subscriber]*sub
	order     []Subscriber // the keys of subs in the order they were added: updates fan out in it (putSub, dropSub)
	followers int          // subscribers in subs that follow (HTTP followers); kept by putSub and dropSub
	commits   commitQueue
	compacts  compactor
	pres      presenceState
	aware     awarenessState
	changes   changeLog
	idem      idemCache
	appMsgs   *rate.Limiter // the app's broadcast messages
	vers      versionState  // automatic versions (versions.go)
	// coldJoin is the whole history split into sync chunks (or the
	// snapshot in pieces, when snap), kept for the next join with an empty
	// state vector that wants the same form while the document is unchanged.
	coldJoin struct {
		version uint64
		chunks  [][]byte
		bytes   int
		snap    bool
	}
}

// sub is what the owner knows of a subscriber.
type sub struct {
	peer     bool          // a session (Join): listed in presence
	readOnly bool          // joined read-only
	rejected bool          // a batch was rejected: later ones are too, until a rejoin
	follows  bool          // an HTTP follower (Follow)
	root     string        // follower: the root its feed shows
	slot     *PresenceSlot // a session's registered presence slot (presencebox.go)
}

func newState(cfg *Config) state {
	return state{
		subs:    make(map[Subscriber]*sub),
		pres:    newPresenceState(cfg),
		aware:   newAwarenessState(cfg.AwarenessLimits),
		changes: newChangeLog(cfg.ChangeLogEntries, cfg.ChangeLogBytes),
		idem:    newIdemCache(1024),
	}
}

func newOwner(id string, cfg *Config, reg *Registry) *Owner {
	return &Owner{
		id:    id,
		cfg:   cfg,
		reg:   reg,
		inbox: make(chan Msg, inboxSize),
		done:  make(chan struct{}),
		evict: make(chan struct{}, 1),
		box:   presenceBox{c: make(chan struct{}, 1)},
		state: newState(cfg),
	}
}

// inboxSize is how many messages wait for an owner before senders do
// (back-pressure on the sender only). Every loaded document holds its
// inbox, asleep or not: 16 interfaces are 256 bytes (64 were 1 KiB, a
// tenth of an idle connection's memory; measured: BENCHMARKS.md).
const inboxSize = 16

// ID is the document's id.
func (o *Owner) ID() string { return o.id }

// Done is closed when the owner has exited (unloaded or shut down).
func (o *Owner) Done() <-chan struct{} { return o.done }

// Send delivers m, waiting while the inbox is full (back-pressure on the
// sender only), and wakes the owner if it sleeps. It reports false if the
// owner has exited or ctx ended.
func (o *Owner) Send(ctx context.Context, m Msg) bool {
	select {
	case <-o.done:
		return false
	default:
	}
	o.queued.Add(1) // before the inbox: see sleep.go
	select {
	case o.inbox <- m:
		o.wake()
		return true
	case <-o.done:
	case <-ctx.Done():
	}
	o.queued.Add(-1)
	return false
}

// run is the owner's first goroutine: it loads the document and runs it.
func (o *Owner) run(ctx context.Context) {
	o.lastExpiry = time.Now()
	o.start(ctx)
	o.loop(ctx)
}

// loop runs the loaded document until it unloads (or shuts down, or is
// disowned: then the owner is done) or sleeps (sleep.go: then a later
// message starts loop again on a new goroutine).
func (o *Owner) loop(ctx context.Context) {
	slept := false
	defer func() {
		if !slept {
			o.exit()
		}
	}()
	idle := time.NewTimer(o.cfg.IdleUnload)
	defer idle.Stop()
	period := o.expiryPeriod()
	expiry := time.NewTicker(period)
	defer expiry.Stop()
	for {
		exit, crashed := o.tick(ctx, idle, expiry.C, period)
		if crashed != nil {
			o.crashed(crashed)
			o.start(ctx)
			continue
		}
		if exit {
			return
		}
		if o.quiet() && o.sleep(time.Now()) {
			slept = true
			return
		}
	}
}

// exit ends the owner for good: its timers stop, its memory leaves the
// registry's total and Done is closed.
func (o *Owner) exit() {
	o.pres.stop()
	o.vers.stop()
	o.mu.Lock()
	o.noSleep = true
	if o.alarm != nil {
		o.alarm.Stop()
	}
	o.mu.Unlock()
	o.account(0)
	close(o.done)
}

// start loads the document into the owner's (fresh) state.
func (o *Owner) start(ctx context.Context) {
	if err := o.safeLoad(ctx); err != nil {
		o.failed = err
		o.cfg.Logger.Error("document refused: load failed", "doc", o.id, "err", err)
		return
	}
	o.account(o.estimate())
	o.events().Loaded(o.id, o.exists)
}

// tick handles one event of the owner's loop. It reports whether the owner
// has unloaded (exit), or the value of a panic it recovered: a bug or a
// hostile input that got past validation must not take the process down,
// so the owner gives up its state of this document only (see crashed).
func (o *Owner) tick(ctx context.Context, idle *time.Timer, expiry <-chan time.Time, period time.Duration) (exit bool, crashed any) {
	defer func() {
		if v := recover(); v != nil {
			exit, crashed = false, panicValue{v, debug.Stack()}
		}
	}()
	if now := time.Now(); now.Sub(o.lastExpiry) >= period && o.failed == nil {
		// Woken (by the alarm, or a message) after an expiry pass was due.
		o.expirePresence(now)
		return false, nil
	}
	select {
	case m := <-o.inbox:
		o.queued.Add(-1)
		o.current = m
		o.handle(m)
		o.current = nil
	case <-o.commits.head():
		o.durable()
	case <-o.commits.versionHead():
		o.versionsLanded()
	case <-o.commits.retryC():
		o.commits.armed = false
		if err := o.submit(); err != nil {
			o.storageFailed(err)
		}
	case err := <-o.compacts.done:
		o.compacts.finished(o, err)
	case <-o.vers.quietC():
		o.quietPassed()
	case now := <-o.pres.flushC():
		o.flushPresence(now)
	case <-o.box.c:
		o.queued.Add(-1)
		o.presencePosted(time.Now())
	case now := <-expiry:
		o.expirePresence(now)
	case <-o.evict:
		o.queued.Add(-1)
		o.evicting = true
	case <-idle.C:
		if o.unloadIfIdle() {
			return true, nil
		}
		idle.Reset(o.cfg.IdleUnload)
		return false, nil
	case <-ctx.Done():
		o.shutdown()
		return true, nil
	}
	if o.disowned {
		o.commits.stopRetry()
		return true, nil
	}
	if o.doc != nil {
		o.account(o.estimate())
	}
	return o.evicting && o.unloadIfIdle(), nil
}

// unloadIfIdle unregisters the owner when nothing needs it (no subscriber,
// commit or compaction; no reference and an empty inbox). It reports
// whether the owner must exit.
func (o *Owner) unloadIfIdle() bool {
	if len(o.subs) == 0 && o.versionBeforeUnload() {
		return false // unloads once the version is stored
	}
	if len(o.subs) == 0 && o.commits.empty() && !o.compacts.running && o.reg.tryRemove(o) {
		o.cfg.Logger.Debug("document unloaded", "doc", o.id, "evicted", o.evicting)
		return true
	}
	return false
}

// Evict asks the owner to unload as soon as nothing uses it (no
// reference, subscriber, commit or compaction). It never blocks.
func (o *Owner) Evict() { o.requestEvict() }

// requestEvict asks the owner to unload as soon as it is idle, waking it
// if it sleeps. It never blocks.
func (o *Owner) requestEvict() {
	o.queued.Add(1)
	select {
	case o.evict <- struct{}{}:
		o.wake()
	default:
		o.queued.Add(-1) // one request is already waiting
	}
}

// Memory estimate: what a loaded document costs beyond its ops (the owner,
// its maps and channels, an empty replica and presence set: measured, 20,000
// empty documents loaded ≈ 400 MiB), and what each op of its history costs
// at most (an item or delete run of one op; typed runs cost far less).
const (
	BaseBytes  = 20 << 10
	BytesPerOp = 48
)

// estimate is the document's estimated memory: the replica, and what the
// owner keeps beside it (the followers' change log, the cold-join cache).
func (o *Owner) estimate() int64 {
	n := BaseBytes + int64(o.changes.bytes) + int64(o.coldJoin.bytes)
	if o.doc != nil {
		n += int64(o.doc.Version()+uint64(o.doc.Pending())) * BytesPerOp
	}
	return n
}

// account records the owner's estimate in the registry's total.
func (o *Owner) account(n int64) {
	if n != o.mem {
		o.reg.bytes.Add(n - o.mem)
		o.mem = n
		o.memShared.Store(n)
	}
}

// panicValue is a recovered panic with the stack where it happened.
type panicValue struct {
	v     any
	stack []byte
}

// ErrPanicked marks a document whose load panicked (refused as corrupt).
var ErrPanicked = errors.New("owner: document owner panicked")

// safeLoad is load with a panic turned into an error: a stored document
// that crashes the loader is refused (CodeDocCorrupt), never served.
func (o *Owner) safeLoad(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			o.metrics().Panic()
			o.cfg.Logger.Error("document load panicked", "doc", o.id, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: load: %v", ErrPanicked, v)
		}
	}()
	return o.load(ctx)
}

// crashed gives up the state of an owner whose loop panicked. Its replica
// may be inconsistent, so nothing more of it is applied, compacted or
// served: commits already submitted (of updates applied before the panic)
// are waited for and acked, every subscriber is told to rejoin
// (CodeDocUnloading: sessions resend what was not acked durable, followers
// reconnect) and forgotten, and the state is replaced by a fresh one; run
// then loads the document again from storage. The goroutine, its inbox and
// the references subscribers hold stay as they are, so no request is lost
// and the other documents never notice.
func (o *Owner) crashed(p any) {
	pv := p.(panicValue)
	o.metrics().Panic()
	o.cfg.Logger.Error("document owner panicked: state dropped, reloading from storage", "doc", o.id, "panic", pv.v, "stack", string(pv.stack))
	o.commits.waitAll()
	o.ackCommits()
	o.dropBacklog(&Refused{protocol.CodeDocUnloading, "document failed on the server and was reloaded; retry"})
	o.compacts.wait(o)
	if o.current != nil {
		failMsg(o.current, &Refused{protocol.CodeDocUnloading, "document failed on the server and was reloaded; retry"})
		o.current = nil
	}
	ev := &ErrorEvent{Doc: o.id, Code: protocol.CodeDocUnloading, Message: "document failed on the server and was reloaded; rejoin", End: true}
	for s := range o.subs {
		s.Deliver(ev)
	}
	o.pres.stop()
	o.vers.stop()
	o.discardPresence()
	o.state = newState(o.cfg)
}

// load reads the snapshot and log tail. A document that does not exist yet
// starts empty; any other failure refuses the document (never an empty
// replacement that could be persisted over the stored one).
func (o *Owner) load(ctx context.Context) error {
	stored, err := o.cfg.Store.Load(ctx, o.id)
	switch {
	case errors.Is(err, ErrNotFound):
		o.kind = KindNative
		o.doc, err = o.cfg.NewEngine(KindNative, nil)
		return err
	case err != nil:
		return err
	}
	if o.kind, err = storedKind(&stored); err != nil {
		return err
	}
	if o.doc, err = o.cfg.NewEngine(o.kind, stored.Snapshot); err != nil {
		return fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
	}
	for _, e := range stored.Tail {
		if _, err := o.doc.Apply(e.Data, nil); err != nil {
			return fmt.Errorf("%w: log entry %d: %w", ErrCorrupt, e.Seq, err)
		}
	}
	o.commits.lastSeq = stored.LastSeq
	o.compacts.logTail = int64(len(stored.Tail))
	o.exists = true
	return nil
}

// refusal is the error event for a refused document.
func (o *Owner) refusal() *ErrorEvent {
	code, msg := protocol.CodeStorageFailed, "document could not be loaded" // perhaps transient: retry
	switch {
	case errors.Is(o.failed, ErrDeleted):
		code, msg = protocol.CodeDocDeleted, "document deleted"
	case errors.Is(o.failed, ErrCorrupt), errors.Is(o.failed, ErrPanicked):
		code = protocol.CodeDocCorrupt // refused, never replaced
	}
	return &ErrorEvent{Doc: o.id, Code: code, Message: msg, End: true}
}

// shutdown stores the backlog and waits for the commits in flight, so
// their durable acks go out.
func (o *Owner) shutdown() {
	o.reg.remove(o)
	o.versionBeforeUnload()
	if err := o.drainBacklog(); err != nil {
		o.cfg.Logger.Error("shutdown: backlog not stored", "doc", o.id, "err", err)
		o.dropBacklog(err)
	}
	o.commits.waitAll()
	o.durable()
	o.compacts.wait(o)
	o.commits.stopRetry()
}

// Events receives what happens to documents (the server's webhooks and
// hooks). The owner calls it on its own goroutine: it must not block.
type Events interface {
	// Loaded: the document was loaded (exists: it was stored before).
	Loaded(doc string, exists bool)
	// Created: the first write to a document that did not exist.
	Created(doc string)
	// Changed: the document went from version from to version to;
	// authors are the subjects of the sessions whose updates made it ("" for
	// the server's own edits).
	Changed(doc string, from, to uint64, author string)
	// Deleted: the document's tombstone is durable.
	Deleted(doc string)
	// Joined and Left: a session (by id; subject: its user, "" in
	// development mode) joined the document or left it (or its connection
	// ended).
	Joined(doc, session, subject string)
	Left(doc, session string)
}

// Authored is implemented by subscribers that know who they are (a
// session's token subject), for Events.Changed.
type Authored interface{ Subject() string }

func (o *Owner) events() Events {
	if o.cfg.Events == nil {
		return noEvents{}
	}
	return o.cfg.Events
}

type noEvents struct{}

func (noEvents) Loaded(string, bool)                    {}
func (noEvents) Created(string)                         {}
func (noEvents) Changed(string, uint64, uint64, string) {}
func (noEvents) Deleted(string)                         {}
func (noEvents) Joined(string, string, string)          {}
func (noEvents) Left(string, string)                    {}

func (o *Owner) metrics() Metrics {
	if o.cfg.Metrics == nil {
		return noMetrics{}
	}
	return o.cfg.Metrics
}

// Metrics receives the owner's events (server's Prometheus metrics).
type Metrics interface {
	Applied(ops uint64)             // an update applied, with its op count
	DurableAck(submitted time.Time) // a session's update became durable
	PresenceDropped()               // a presence event dropped under backpressure
	Panic()                         // a recovered panic
	CapacityRefusal()               // a load or write refused at a memory cap
	ErrorSent(code protocol.Code)   // an error event delivered
	Followers(delta int)            // followers added (or removed, negative)
}

type noMetrics struct{}

func (noMetrics) Applied(uint64)          {}
func (noMetrics) DurableAck(time.Time)    {}
func (noMetrics) PresenceDropped()        {}
func (noMetrics) Panic()                  {}
func (noMetrics) CapacityRefusal()        {}
func (noMetrics) ErrorSent(protocol.Code) {}
func (noMetrics) Followers(int)           {}
