package owner

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/time/rate"

	"github.com/collabd/collabd/protocol"
)

// handle is the owner's one switch over its inbox.
func (o *Owner) handle(m Msg) {
	defer o.trackFollowers(o.followerCount())
	if m, ok := m.(SetPresence); ok && m.Slot != nil {
		m.Slot.seen = true // what is posted to it is applied or refused from now on
	}
	o.thaw()
	if o.failed != nil && o.retryable() && asksAgain(m) {
		o.reload()
	}
	if o.failed != nil && o.refuse(m) {
		return
	}
	switch m := m.(type) {
	case Join:
		o.join(m)
	case Leave:
		o.leave(m.Sub)
	case ReadOnly:
		if st := o.subs[m.Sub]; st != nil {
			st.readOnly = true
		}
	case Update:
		o.update(m)
	case SetPresence:
		o.setPresence(m, time.Now())
	case Awareness:
		o.setAwareness(m, time.Now())
	case Sync:
		o.sync(m)
	case Create:
		o.create(m)
	case Follow:
		o.follow(m)
	case Unfollow:
		o.dropSub(m.Sub)
	case Read:
		answer(m.Reply, o.read(m))
	case Edit:
		o.edit(m)
	case Import:
		o.importFrom(m)
	case Delete:
		o.delete(m)
	case Broadcast:
		o.broadcast(m)
	case Checkpoint:
		o.checkpoint(m)
	case Restore:
		o.restore(m)
	case Disown:
		o.disown(m)
	}
}

// corrupted refuses the document from now on, as a load that failed with
// ErrCorrupt does: its stored state failed a check that is made only when
// the state is used (a lazily loaded snapshot whose structure does not
// check out on the first op; docs/FORMATS.md, "Loading"). Commits in
// flight are acked; every subscriber is told (CodeDocCorrupt, the end of
// the document) and forgotten; later requests are refused.
func (o *Owner) corrupted(err error) {
	o.cfg.Logger.Error("stored document corrupt", "doc", o.id, "err", err)
	o.commits.waitAll()
	o.ackCommits()
	o.failed = err
	ev := o.refusal()
	for s := range o.subs {
		s.Deliver(ev)
	}
	o.clearSubs()
}

// disown gives the document up at once (see Disown): what is in flight is
// waited for and acked, subscribers are told to rejoin, and the owner
// leaves the registry; run exits after this message.
func (o *Owner) disown(m Disown) {
	o.cfg.Logger.Info("document disowned", "doc", o.id, "reason", m.Message)
	o.reg.remove(o)
	o.commits.waitAll()
	o.ackCommits()
	o.dropBacklog(&Refused{m.Code, m.Message})
	o.compacts.wait(o)
	ev := &ErrorEvent{Doc: o.id, Code: m.Code, Message: m.Message, End: true}
	for s := range o.subs {
		s.Deliver(ev)
	}
	o.clearSubs()
	o.disowned = true
}

// broadcast delivers an ephemeral message to every subscriber but its
// sender (a session must have joined to send one).
func (o *Owner) broadcast(m Broadcast) {
	from := ""
	if m.From != nil {
		if st := o.subs[m.From]; st == nil || !st.peer {
			o.deliver(m.From, notSubscribed(o.id, 0))
			return
		}
		from = m.From.ID()
	} else if !o.appLimiter().Allow() {
		answer(m.Reply, BroadcastResult{Err: &Refused{protocol.CodeRateLimited, "message rate exceeded for this document; retry later"}})
		return
	}
	ev := &MessageEvent{Doc: o.id, From: from, Data: m.Data}
	n := 0
	for s := range o.subs {
		if s != m.From {
			if s.DeliverSoft(ev) {
				n++
			}
		}
	}
	if m.Reply != nil {
		answer(m.Reply, BroadcastResult{Delivered: n})
	}
}

// appLimiter is the document's limiter of the app's broadcast messages
// (made with the first one: most documents never get any).
func (o *Owner) appLimiter() *rate.Limiter {
	if o.appMsgs == nil {
		o.appMsgs = rate.NewLimiter(rate.Limit(o.cfg.MessageRate), o.cfg.MessageBurst)
	}
	return o.appMsgs
}

// retryable reports whether the document's failure may pass (storage
// unreachable, fenced, not owned here yet): not a deletion, a corrupt or
// a panicking document.
func (o *Owner) retryable() bool {
	return !errors.Is(o.failed, ErrDeleted) && !errors.Is(o.failed, ErrCorrupt) && !errors.Is(o.failed, ErrPanicked)
}

// asksAgain reports whether m is a subscriber or request asking for the
// document anew (a join, a follow, a read, an edit): for a document whose
// load failed for a reason that may pass, the owner tries to load it again
// first, so that a storage outage (a JetStream election) does not refuse
// the document until it happens to unload.
func asksAgain(m Msg) bool {
	switch m.(type) {
	case Join, Follow, Read, Edit:
		return true
	}
	return false
}

// reload replaces the failed state by a fresh load.
func (o *Owner) reload() {
	o.cfg.Logger.Info("document load retried", "doc", o.id, "after", o.failed)
	o.pres.stop()
	o.vers.stop()
	o.discardPresence()
	o.state = newState(o.cfg)
	o.start(o.reg.ctx)
}

// refuse answers m for a refused document (failed load or deleted). It
// reports whether m was handled.
func (o *Owner) refuse(m Msg) bool {
	ev := o.refusal()
	err := &Refused{Code: ev.Code, Message: ev.Message}
	switch m := m.(type) {
	case Leave, Unfollow, ReadOnly, Disown:
		return false
	case Join:
		o.deliver(m.Sub, ev)
	case Update:
		e := *ev
		e.Batch = m.Batch
		o.deliver(m.Sub, &e)
	case SetPresence:
		o.deliver(m.Sub, ev)
	case Awareness:
		o.deliver(m.Sub, ev)
	case Sync:
		o.deliver(m.Sub, ev)
	case Follow:
		o.deliver(m.Sub, ev)
	case Broadcast:
		if m.From != nil {
			o.deliver(m.From, ev)
		}
		failMsg(m, err)
	default:
		failMsg(m, err)
	}
	return true
}

// failMsg answers a request message with err (messages without a reply
// are left alone).
func failMsg(m Msg, err error) {
	switch m := m.(type) {
	case Read:
		answer(m.Reply, ReadResult{Err: err})
	case Edit:
		answer(m.Reply, EditResult{Err: err})
	case Import:
		answer(m.Reply, ImportResult{Err: err})
	case Delete:
		answer(m.Reply, error(err))
	case Create:
		answer(m.Reply, error(err))
	case Broadcast:
		if m.Reply != nil {
			answer(m.Reply, BroadcastResult{Err: err})
		}
	case Checkpoint:
		answer(m.Reply, CheckpointResult{Err: err})
	case Restore:
		answer(m.Reply, RestoreResult{Err: err})
	}
}

// Refused is the error of a request the owner refused, with its code from
// the protocol's table.
type Refused struct {
	Code    protocol.Code
	Message string
}

func (e *Refused) Error() string { return e.Message }

// deliver sends ev to one subscriber, forgetting it if it is gone.
func (o *Owner) deliver(s Subscriber, ev Event) {
	if e, ok := ev.(*ErrorEvent); ok {
		o.metrics().ErrorSent(e.Code)
	}
	if !s.Deliver(ev) {
		o.drop(s)
	}
}

// drop forgets a subscriber that is gone.
func (o *Owner) drop(s Subscriber) {
	st, ok := o.subs[s]
	if !ok {
		return
	}
	o.dropSub(s)
	if st.peer {
		now := time.Now()
		o.presenceLeave(s, now)
		o.awarenessLeave(s, now)
		o.events().Left(o.id, s.ID())
	}
}

// reject refuses update batch of s: a rejected ack, then the error (with a
// retry hint when after > 0). A rejected batch must be sent again; the
// session's later batches are rejected until it rejoins.
func (o *Owner) reject(s Subscriber, batch uint64, code protocol.Code, msg string, after time.Duration) {
	if st := o.subs[s]; st != nil {
		st.rejected = true
	}
	o.deliver(s, &AckEvent{Doc: o.id, Batch: batch, Status: protocol.AckRejected})
	o.deliver(s, &ErrorEvent{Doc: o.id, Batch: batch, Code: code, Message: msg, RetryAfter: after})
}

// join sends the session what it lacks, in chunks, then the server's state
// vector so the client can send what the server lacks, then presence. A
// rejoin restarts the sync; the subscription stays.
func (o *Owner) join(m Join) {
	if err := o.ensureKind(m.Kind); err != nil {
		o.deliver(m.Sub, &ErrorEvent{Doc: o.id, Code: err.Code, Message: err.Message, End: true})
		return
	}
	st := o.subs[m.Sub]
	if st == nil {
		st = &sub{peer: true}
		o.putSub(m.Sub, st)
		o.events().Joined(o.id, m.Sub.ID(), m.User.ID)
	}
	st.readOnly, st.rejected = m.ReadOnly, false
	if m.NoSync && !m.Sub.Deliver(&JoinedEvent{Doc: o.id}) {
		o.drop(m.Sub)
		return
	}
	if !m.NoSync && !o.sendSync(m.Sub, m.SV, m.Snapshot) {
		return
	}
	now := time.Now()
	o.presenceJoin(m, now)
	o.awarenessJoin(m.Sub, now)
}

// sync answers a session's sync request (it must have joined).
func (o *Owner) sync(m Sync) {
	if st := o.subs[m.Sub]; st == nil || !st.peer {
		o.deliver(m.Sub, notSubscribed(o.id, 0))
		return
	}
	o.sendSync(m.Sub, m.SV, false)
}

// sendSync sends s what a replica with state vector sv lacks, in chunks,
// the last one with the document's state vector; with snap, a cold join of
// a native document gets the snapshot instead. It reports false if s is
// gone (then forgotten).
func (o *Owner) sendSync(s Subscriber, sv []byte, snap bool) bool {
	snap = snap && isEmptySV(sv) && o.kind == KindNative
	chunks, err := o.syncChunks(sv, snap)
	if errors.Is(err, ErrCorrupt) {
		o.corrupted(err)
		return false
	}
	if err != nil {
		o.deliver(s, &ErrorEvent{Doc: o.id, Code: protocol.CodeInvalidOp, Message: "sync failed: " + err.Error()})
		return true
	}
	own := o.doc.StateVector()
	for i, c := range chunks {
		ev := &SyncEvent{Doc: o.id, Chunk: i, Final: i == len(chunks)-1, Update: c, Snapshot: snap}
		if ev.Final {
			ev.SV = own
		}
		if !s.Deliver(ev) {
			o.drop(s)
			return false
		}
	}
	return true
}

// syncChunks is what a replica with state vector sv lacks, in chunks, or
// with snap (a cold join of a native document) the document's snapshot in
// pieces of at most protocol.MaxChunk bytes. The whole history or the
// snapshot (an empty state vector) is kept for the next cold join of the
// same form while the document does not change.
func (o *Owner) syncChunks(sv []byte, snap bool) ([][]byte, error) {
	cold := isEmptySV(sv)
	if cold && o.coldJoin.chunks != nil && o.coldJoin.version == o.doc.Version() && o.coldJoin.snap == snap {
		return o.coldJoin.chunks, nil
	}
	var whole []byte
	var chunks [][]byte
	if snap {
		whole = o.doc.Snapshot()
		for len(whole) > protocol.MaxChunk {
			chunks = append(chunks, whole[:protocol.MaxChunk:protocol.MaxChunk])
			whole = whole[protocol.MaxChunk:]
		}
		chunks = append(chunks, whole)
	} else {
		diff, err := o.doc.Diff(sv)
		if err != nil {
			return nil, err
		}
		whole, chunks = diff, o.doc.Split(diff)
	}
	if cold {
		n := 0
		for _, c := range chunks {
			n += len(c)
		}
		if n <= o.cfg.MaxColdJoinBytes {
			o.coldJoin.version, o.coldJoin.chunks, o.coldJoin.bytes, o.coldJoin.snap = o.doc.Version(), chunks, n, snap
		}
	}
	return chunks, nil
}

// isEmptySV reports whether an encoded state vector is empty: nil, a Yjs
// one of no entries (one byte), or a native one (docs/FORMATS.md,
// [1, []]: 92 01 90).
func isEmptySV(sv []byte) bool { return len(sv) <= 1 || string(sv) == "\x92\x01\x90" }

func (o *Owner) leave(s Subscriber) {
	if st := o.subs[s]; st != nil && st.slot != nil {
		st.slot.retired = true // what it still holds goes with the peer
	}
	o.drop(s)
}

// update applies a session's update batch, fans it out, acks it applied at
// once and durable when its commit lands.
func (o *Owner) update(m Update) {
	st := o.subs[m.Sub]
	if st == nil || !st.peer {
		// The session joined (it checks), but the owner does not know it:
		// the owner dropped its state (a recovered panic, a refused write)
		// and told it to rejoin. Until it has, its batches are refused as
		// retryable, never as a terminal "not joined".
		o.deliver(m.Sub, &AckEvent{Doc: o.id, Batch: m.Batch, Status: protocol.AckRejected})
		o.deliver(m.Sub, notSubscribed(o.id, m.Batch))
		return
	}
	if st.readOnly {
		o.reject(m.Sub, m.Batch, protocol.CodeReadOnly, "document joined read-only", 0)
		return
	}
	if st.rejected {
		// A client pipelines batches; each may build on the one before. One
		// rejected, the ones after it are too (else they would be stored as
		// ops waiting forever for the rejected ones), until the client
		// rejoins and resends them all in order.
		o.reject(m.Sub, m.Batch, protocol.CodeResync, "an earlier batch was rejected: rejoin and resend in order", 0)
		return
	}
	if o.reg.bytes.Load() > o.cfg.MaxReplicaBytes {
		o.metrics().CapacityRefusal()
		o.reject(m.Sub, m.Batch, protocol.CodeOverloaded, "server busy: replica memory cap reached; resend later", time.Second)
		return
	}
	if o.commits.backlog > MaxBacklogBytes {
		o.metrics().CapacityRefusal()
		o.reject(m.Sub, m.Batch, protocol.CodeOverloaded, "server busy: storage is behind; resend later", time.Second)
		return
	}
	if max := maxUpdate(o.cfg.Store); max > 0 && len(m.Update) > max {
		o.reject(m.Sub, m.Batch, protocol.CodeFrameTooLarge, fmt.Sprintf("an update of %d bytes: this server stores updates up to %d bytes (in a cluster, one NATS message); send smaller ones", len(m.Update), max), 0)
		return
	}
	before, pendBefore := o.doc.Version(), o.doc.Pending()
	author, _ := m.Sub.(Author)
	res, err := o.doc.Apply(m.Update, author)
	if errors.Is(err, ErrCorrupt) {
		o.corrupted(err)
		return
	}
	if err != nil {
		code, after := protocol.CodeInvalidOp, time.Duration(0)
		var ref *Refused
		switch {
		case errors.As(err, &ref):
			code = ref.Code
			if code.Retry() {
				after = time.Second
			}
		case errors.Is(err, ErrPendingFull):
			code = protocol.CodePendingFull
		case errors.Is(err, ErrTooLarge):
			code = protocol.CodeDocTooLarge
		}
		o.reject(m.Sub, m.Batch, code, err.Error(), after)
		return
	}
	version := o.doc.Version()
	if res.New {
		o.markExists()
	}
	if res.Visible {
		o.metrics().Applied(version - before)
		// Others get the update as it came (no re-encode). If it released
		// ops that waited, everyone gets the diff that carries them, the
		// author too (the released ops are other sessions').
		ev := &UpdateEvent{Doc: o.id, Updates: [][]byte{m.Update}, From: before, Version: version, Changes: res.Changes}
		var author Subscriber = m.Sub
		if res.Released {
			ev.Updates, author = [][]byte{res.Fanout}, nil
		}
		o.step(ev, author)
		who := ""
		if a, ok := m.Sub.(Authored); ok {
			who = a.Subject()
		}
		o.events().Changed(o.id, before, version, who)
		defer o.noteChange(before, who) // after the update's commit is queued
	}
	o.deliver(m.Sub, &AckEvent{Doc: o.id, Batch: m.Batch, Status: protocol.AckApplied, Applied: version})
	if !res.New {
		// Nothing new (a resend of ops already stored): durable once the
		// commits before it are — held if it may be a resend of ops that
		// still wait in the pending buffer.
		o.commits.push(commit{sub: m.Sub, batch: m.Batch, version: version, held: !res.Visible && o.doc.Pending() > 0})
		return
	}
	// New ops (including ops that went pending: they are stored as they
	// came, and a reload puts them back in the pending buffer; their
	// durable ack is held until they integrate).
	o.store([][]byte{m.Update}, commit{sub: m.Sub, batch: m.Batch, version: version, sent: time.Now(), held: o.doc.Pending() > pendBefore})
	if len(res.Extra) > 0 {
		// What the engine made itself goes out and into the log after the
		// update that caused it, to everyone (the author too).
		after := o.doc.Version()
		o.step(&UpdateEvent{Doc: o.id, Updates: res.Extra, From: version, Version: after}, nil)
		o.store(res.Extra, commit{version: after})
	}
}

// step records a version step and delivers it to every subscriber but
// author: sessions forward the update, followers show the changes. It
// delivers in join order (o.order), as Hocuspocus and y-websocket do, so
// that the order the frames leave in is the same for every update; a
// map's order would be a new random one each time (BENCHMARKS.md,
// "Fan-out path"). A delivery that fails drops its subscriber; dropSub
// gives o.order a new array, so the one looped over here stays as it was,
// and a subscriber dropped meanwhile is skipped.
//
// Every fanYield deliveries the owner yields its processor: a session's
// Deliver starts the session's writer goroutine, and without the yield
// the writers would wait until the owner is done with the update (the
// first subscribers' frames left ~1.2 ms after the first delivery at 500
// subscribers), and past 256 of them the scheduler's per-processor run
// queue overflows into the global one, which runs them out of order. With
// it, the writers run while the owner goes on, in the order they were
// started (execution trace of 500 subscribers: the first 50 frames out at
// 0.35 ms instead of 1.2 ms, and in order). A yield is not a block: the
// owner is runnable throughout, and resumes once the writers it started
// have run.
func (o *Owner) step(ev *UpdateEvent, author Subscriber) {
	o.changes.add(Step{From: ev.From, To: ev.Version, Changes: ev.Changes})
	if v, ok := o.doc.(Viewer); ok {
		ev.rootJSON = v.RootJSON
	}
	order, n := o.order, len(o.subs)
	for i, s := range order {
		if s == author {
			continue
		}
		if len(o.subs) != n {
			if _, ok := o.subs[s]; !ok {
				continue
			}
		}
		o.deliver(s, ev)
		if i%fanYield == fanYield-1 {
			runtime.Gosched()
		}
	}
}

// fanYield is how many deliveries of one update step makes between two
// yields: far below the 256 goroutines a processor's run queue holds, and
// a yield (~0.2 µs) every 16 deliveries costs nothing next to their
// writes (~5-10 µs each).
const fanYield = 16

// store queues updates (in order) for the store; last is the commit that
// answers for them once the last one is durable. What the store's queue
// has no room for waits in the owner's backlog (submit). A store failure
// other than a full queue leaves the replica ahead of storage: the owner
// then drops its state and reloads (storageFailed), so memory never holds
// an op that storage does not.
func (o *Owner) store(updates [][]byte, last commit) {
	o.markExists()
	for i, u := range updates {
		c := commit{version: last.version}
		if i == len(updates)-1 {
			c = last
		}
		c.data = record(o.kind, u)
		o.commits.backlog += len(c.data)
		o.commits.push(c)
	}
	if err := o.submit(); err != nil {
		o.storageFailed(err)
	}
}

// notSubscribed is the refusal of a request from a session the owner does
// not have: retryable, rejoin.
func notSubscribed(doc string, batch uint64) *ErrorEvent {
	return &ErrorEvent{Doc: doc, Batch: batch, Code: protocol.CodeDocUnloading, Message: "the document was reloaded: rejoin", RetryAfter: 0}
}

// dropBacklog answers the commits that were never submitted (the state is
// being dropped): their sessions are told to rejoin anyway; server-made
// updates get err.
func (o *Owner) dropBacklog(err error) {
	for _, c := range o.commits.q {
		if c.data != nil && c.reply != nil {
			c.reply(err)
		}
	}
	o.commits.stopRetry()
}

// markExists records the first write to a document that did not exist.
func (o *Owner) markExists() {
	if !o.exists {
		o.exists = true
		o.events().Created(o.id)
	}
}

// storageFailed resets the owner after a submit the store refused: what is
// in flight is waited for and acked, subscribers are told to rejoin
// (CodeStorageFailed: retry, resending what was not acked durable), and the
// document reloads from what storage has.
func (o *Owner) storageFailed(err error) {
	o.cfg.Logger.Error("store refused a write: state dropped, reloading from storage", "doc", o.id, "err", err)
	o.commits.waitAll()
	o.ackCommits()
	o.dropBacklog(err)
	o.compacts.wait(o)
	ev := &ErrorEvent{Doc: o.id, Code: protocol.CodeStorageFailed, Message: "not stored; rejoin and resend", RetryAfter: time.Second, End: true}
	for s := range o.subs {
		s.Deliver(ev)
	}
	o.pres.stop()
	o.vers.stop()
	o.discardPresence()
	o.state = newState(o.cfg)
	o.start(o.reg.ctx)
}
