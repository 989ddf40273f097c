package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/storage"
)

// An owner is the one goroutine that touches a document's crdt.Doc. It loads
// the document, applies updates, fans them out, persists them through the
// store's group commit, acks, compacts and unloads when idle. It never blocks
// on a session (their queues are non-blocking) or on storage (it waits for
// durability by selecting on the oldest pending commit).
type owner struct {
	id    string
	srv   *Server
	inbox chan *request // pointers: an idle document's buffer is 512 bytes, not 64 request values
	done  chan struct{} // closed when run returns

	// guarded by the registry lock
	refs      int
	gone      bool
	idleSince time.Time // when refs last fell to zero (eviction order)

	memShared atomic.Int64  // the owner's estimated replica bytes, for the registry's eviction choice
	evict     chan struct{} // the registry asks the owner to unload when idle (capacity 1)

	// owned by the run goroutine
	mem      int64 // estimated replica bytes counted in the registry's total
	evicting bool  // the registry asked for an unload: leave as soon as idle
	ownerState
}

// ownerState is everything the run goroutine holds about the loaded
// document; after a recovered panic it is replaced whole by a fresh load.
type ownerState struct {
	doc      *crdt.Doc
	failed   error // load failure: every request is refused with it
	subs     map[*session]bool
	commits  []commit // submitted to storage, oldest first (they complete in order)
	lastSeq  uint64   // highest durable log sequence applied to doc
	logTail  int64    // log entries after the stored snapshot
	compact  chan error
	compacts int // compactions in flight (0 or 1)
	pres     ownerPresence
	exists   bool // stored, or written since the load

	// HTTP followers (SSE, long poll) and the recent changes they resume from
	followers map[*follower]bool
	changes   changeLog
	splices   []crdt.Change // observed during the current update
	idem      idemCache     // REST edit idempotency keys

	// coldJoin is the whole history split into sync chunks, kept for the
	// next join with an empty state vector while the document is unchanged.
	coldJoin struct {
		version uint64
		chunks  [][]byte
	}
}

type reqKind int

const (
	reqJoin reqKind = iota + 1
	reqUpdate
	reqLeave
	reqPresence
	reqFollow   // an HTTP follower starts (SSE or long poll)
	reqUnfollow // it ends
	reqCall     // run call on the owner goroutine (HTTP API)
)

type request struct {
	kind   reqKind
	s      *session
	sv     crdt.StateVector // join
	ro     bool             // join: read-only
	user   presence.User    // join: who the session is (from its token)
	batch  uint64           // update
	update []byte           // update
	state  presence.State   // presence
	f      *follower        // follow, unfollow
	since  *uint64          // follow: resume after this version (nil: from a snapshot)
	call   func(*owner)     // call
}

// commit is an update on its way to disk and whom to tell when it lands.
type commit struct {
	p       *storage.Pending
	s       *session // nil for server-made updates
	batch   uint64
	version uint64      // document version after applying it
	reply   func(error) // server-made updates (HTTP API): told when durable or failed
	sent    time.Time   // a session's update: when it was submitted (durable-ack latency metric)
}

func newOwnerState(cfg Config) ownerState {
	return ownerState{
		subs:      make(map[*session]bool),
		compact:   make(chan error, 1),
		pres:      newOwnerPresence(cfg),
		followers: make(map[*follower]bool),
		changes:   newChangeLog(cfg.ChangeLogEntries, cfg.ChangeLogBytes),
		idem:      newIdemCache(1024),
	}
}

func (srv *Server) startOwner(id string) *owner {
	o := &owner{
		id:         id,
		srv:        srv,
		inbox:      make(chan *request, 64),
		done:       make(chan struct{}),
		evict:      make(chan struct{}, 1),
		ownerState: newOwnerState(srv.cfg),
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer close(o.done)
		o.run(srv.ctx)
	}()
	return o
}

// send delivers a request, waiting while the inbox is full (back-pressure on
// the sending connection only). It fails if the owner or ctx is gone.
func (o *owner) send(ctx context.Context, r request) bool {
	select {
	case o.inbox <- &r:
		return true
	case <-o.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (o *owner) run(ctx context.Context) {
	defer o.account(0)
	o.start(ctx)
	idle := time.NewTimer(o.srv.cfg.IdleUnload)
	defer idle.Stop()
	expiry := time.NewTicker(max(o.srv.cfg.PresenceTTL/3, time.Millisecond))
	defer expiry.Stop()
	defer func() { o.pres.timer.Stop() }()
	for {
		exit, crashed := o.step(ctx, idle, expiry.C)
		if crashed != nil {
			o.crashed(crashed)
			o.start(ctx)
			continue
		}
		if exit {
			return
		}
	}
}

// start loads the document into the owner's (fresh) state.
func (o *owner) start(ctx context.Context) {
	if err := o.safeLoad(ctx); err != nil {
		o.failed = err
		o.srv.cfg.Logger.Error("document refused: load failed", "doc", o.id, "err", err)
		return
	}
	o.doc.Observe(func(c crdt.Change) { o.splices = append(o.splices, c) })
	o.account(o.estimate())
}

// step handles one event of the owner's loop. It reports whether the owner
// has unloaded (exit), or the value of a panic it recovered: a bug or a
// hostile input that got past validation must not take the process down,
// so the owner gives up its state of this document only (see crashed).
func (o *owner) step(ctx context.Context, idle *time.Timer, expiry <-chan time.Time) (exit bool, crashed any) {
	defer func() {
		if v := recover(); v != nil {
			exit, crashed = false, panicValue{v, debug.Stack()}
		}
	}()
	var head <-chan struct{}
	if len(o.commits) > 0 {
		head = o.commits[0].p.Done()
	}
	select {
	case r := <-o.inbox:
		o.handle(ctx, *r)
	case <-head:
		o.durable()
	case now := <-o.pres.flushC():
		o.flushPresence(now)
	case now := <-expiry:
		o.expirePresence(now)
	case err := <-o.compact:
		o.compacts--
		if err != nil {
			o.srv.cfg.Logger.Warn("compaction failed", "doc", o.id, "err", err)
		}
	case <-o.evict:
		o.evicting = true
	case <-idle.C:
		if o.unloadIfIdle() {
			return true, nil
		}
		idle.Reset(o.srv.cfg.IdleUnload)
		return false, nil
	case <-ctx.Done():
		o.shutdown()
		return true, nil
	}
	if o.doc != nil {
		o.account(o.estimate())
	}
	return o.evicting && o.unloadIfIdle(), nil
}

// unloadIfIdle unregisters the owner when nothing needs it (no session,
// follower, commit or compaction; no reference and an empty inbox). It
// reports whether the owner must exit.
func (o *owner) unloadIfIdle() bool {
	if len(o.subs) == 0 && len(o.followers) == 0 && len(o.commits) == 0 && o.compacts == 0 && o.srv.reg.tryRemove(o) {
		o.srv.cfg.Logger.Debug("document unloaded", "doc", o.id, "evicted", o.evicting)
		return true
	}
	return false
}

// requestEvict asks the owner to unload as soon as it is idle (the registry
// needs room). It never blocks.
func (o *owner) requestEvict() {
	select {
	case o.evict <- struct{}{}:
	default:
	}
}

// Replica memory estimate: what a loaded document costs beyond its ops (the
// owner, its maps and channels, an empty crdt.Doc and presence set), and
// what each op of its history costs at most (an item or delete run of one
// op in the run tree and the agent history, measured on random-position
// histories; typed runs cost far less).
const (
	ownerBaseBytes = 20 << 10 // measured: 20,000 empty documents loaded ≈ 400 MiB (e2e TestHostileMemory)
	bytesPerOp     = 48
)

// estimate is the document's estimated memory: the replica, and what the
// owner keeps beside it (the followers' change log, the cold-join cache).
func (o *owner) estimate() int64 {
	n := ownerBaseBytes + int64(o.doc.Version()+uint64(o.doc.Pending()))*bytesPerOp + int64(o.changes.bytes)
	for _, c := range o.coldJoin.chunks {
		n += int64(len(c))
	}
	return n
}

// account records the owner's replica estimate in the registry's total.
func (o *owner) account(n int64) {
	if n != o.mem {
		o.srv.reg.bytes.Add(n - o.mem)
		o.mem = n
		o.memShared.Store(n)
	}
}

// panicValue is a recovered panic with the stack where it happened.
type panicValue struct {
	v     any
	stack []byte
}

// errOwnerPanic marks a document whose load panicked (refused as corrupt).
var errOwnerPanic = errors.New("server: document owner panicked")

// safeLoad is load with a panic turned into an error: a stored document that
// crashes the loader is refused (CodeDocCorrupt), never served.
func (o *owner) safeLoad(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			o.srv.metrics.ownerPanic()
			o.srv.cfg.Logger.Error("document load panicked", "doc", o.id, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: load: %v", errOwnerPanic, v)
		}
	}()
	return o.load(ctx)
}

// crashed gives up the state of an owner whose loop panicked. Its
// in-memory replica may be inconsistent, so nothing more of it is applied,
// compacted or served: commits already submitted (of updates applied before
// the panic) are waited for and acked, every session is told to rejoin
// (CodeDocUnloading, which makes it resend what was not acked durable) and
// forgotten, followers are ended, and the state is replaced by a fresh one;
// run then loads the document again from storage. The goroutine, its inbox
// and the references sessions hold stay as they are, so no request is lost
// and the other documents never notice.
func (o *owner) crashed(p any) {
	pv := p.(panicValue)
	o.srv.metrics.ownerPanic()
	o.srv.cfg.Logger.Error("document owner panicked: state dropped, reloading from storage", "doc", o.id, "panic", pv.v, "stack", string(pv.stack))
	for _, c := range o.commits {
		<-c.p.Done()
	}
	o.ackCommits()
	if o.compacts > 0 {
		<-o.compact
	}
	for s := range o.subs {
		s.sendError(protocol.CodeDocUnloading, o.id, 0, "document failed on the server and was reloaded; rejoin")
	}
	o.endFollowers(feedItem{kind: feedError, code: protocol.CodeDocUnloading, msg: "document failed on the server; reconnect"})
	o.pres.timer.Stop()
	o.ownerState = newOwnerState(o.srv.cfg)
}

// load reads the snapshot and log tail. A document that does not exist yet
// starts empty; any other failure refuses the document (never an empty
// replacement that could be persisted over the stored one).
func (o *owner) load(ctx context.Context) error {
	opts := crdt.Options{Agent: o.srv.agent, Limits: o.srv.docLimits()}
	stored, err := o.srv.cfg.Store.Load(ctx, o.id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		o.doc = crdt.NewDoc(opts)
		return nil
	case err != nil:
		return err
	}
	if stored.Snapshot != nil {
		if o.doc, err = crdt.LoadSnapshot(stored.Snapshot, opts); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	} else {
		o.doc = crdt.NewDoc(opts)
	}
	for _, e := range stored.Tail {
		if err := o.doc.ApplyUpdate(e.Data); err != nil {
			return fmt.Errorf("log entry %d: %w", e.Seq, err)
		}
	}
	o.lastSeq = stored.Info.LastSeq
	o.logTail = int64(len(stored.Tail))
	o.exists = true
	return nil
}

// docLimits are the crdt limits of every document the server holds, loads
// or imports. Whatever a write path accepts must stay within them, or the
// document would not load again: a server-made update (a REST delete over a
// fragmented range, a snapshot import) may hold far more ops than a client
// batch (MaxOpsPerBatch is checked on client updates before they reach the
// owner), so stored entries are bounded by the document size instead.
func (s *Server) docLimits() crdt.Limits {
	return crdt.Limits{
		MaxOps:      2*s.cfg.MaxDocItems + s.cfg.MaxPending,
		MaxItems:    s.cfg.MaxDocItems,
		MaxPending:  s.cfg.MaxPending,
		MaxRoots:    maxRoots,
		MaxRootName: maxRootName,
	}
}

// failedCode is the code a refused document answers with.
func (o *owner) failedCode() protocol.Code {
	var de *crdt.DecodeError
	switch {
	case errors.Is(o.failed, storage.ErrDeleted):
		return protocol.CodeDocDeleted
	case errors.As(o.failed, &de) || errors.Is(o.failed, storage.ErrCorrupt) || errors.Is(o.failed, crdt.ErrInvalidOp):
		return protocol.CodeDocCorrupt // refused, never replaced
	}
	return protocol.CodeStorageFailed // perhaps transient: retry
}

func (o *owner) handle(ctx context.Context, r request) {
	defer o.trackFollowers(len(o.followers))
	if o.failed != nil {
		switch r.kind {
		case reqLeave, reqUnfollow, reqCall: // calls check o.failed themselves
		case reqFollow:
			r.f.push(feedItem{kind: feedError, code: o.failedCode(), msg: "document could not be loaded"})
			return
		default:
			msg := "document could not be loaded"
			if errors.Is(o.failed, storage.ErrDeleted) {
				msg = "document deleted"
			}
			r.s.sendError(o.failedCode(), o.id, r.batch, msg)
			return
		}
	}
	switch r.kind {
	case reqJoin:
		o.join(r)
	case reqLeave:
		delete(o.subs, r.s)
		o.presenceLeave(r.s, time.Now())
	case reqUpdate:
		o.update(ctx, r)
	case reqPresence:
		o.presenceSet(r, time.Now())
	case reqFollow:
		o.follow(r.f, r.since)
	case reqUnfollow:
		delete(o.followers, r.f)
	case reqCall:
		r.call(o)
	}
}

// join sends the session what it lacks, in chunks, then the server's state
// vector so the client can send what the server lacks, then the document's
// presence.
func (o *owner) join(r request) {
	o.subs[r.s] = true
	var chunks [][]byte
	var err error
	if r.sv.Version() == 0 && o.coldJoin.version == o.doc.Version() && o.coldJoin.chunks != nil {
		chunks = o.coldJoin.chunks // the same history for every cold join until it changes
	} else {
		diff := o.doc.EncodeDiff(r.sv)
		chunks, err = protocol.SplitUpdate(diff, protocol.MaxChunk)
		if err == nil && r.sv.Version() == 0 && len(diff) <= 8<<20 {
			o.coldJoin.version, o.coldJoin.chunks = o.doc.Version(), chunks
		}
	}
	if err != nil {
		r.s.sendError(protocol.CodeInternal, o.id, 0, "sync failed")
		return
	}
	sv := o.doc.StateVector()
	for i, c := range chunks {
		last := i == len(chunks)-1
		m := &protocol.Sync{Doc: o.id, Chunk: i, Final: last, Update: c}
		if last {
			m.SV = sv
		}
		if !r.s.enqueue(protocol.Encode(m)) {
			return
		}
	}
	o.presenceJoin(r, time.Now())
}

func (o *owner) update(ctx context.Context, r request) {
	if _, ok := o.subs[r.s]; !ok {
		r.s.sendError(protocol.CodeNotJoined, o.id, r.batch, "update for a document not joined")
		return
	}
	if o.srv.reg.bytes.Load() > o.srv.cfg.MaxReplicaBytes {
		o.srv.metrics.capacityRefusal()
		r.s.reject(o.id, r.batch, protocol.CodeOverloaded, "server busy: replica memory cap reached; resend later", time.Second)
		return
	}
	before, pendBefore := o.doc.Version(), o.doc.Pending()
	var svBefore crdt.StateVector
	if pendBefore > 0 {
		// Ops may be released from the pending buffer: the fan-out is then
		// the diff against this state vector, which carries them.
		svBefore = o.doc.StateVector()
	}
	if err := o.doc.ApplyUpdate(r.update); err != nil {
		code := protocol.CodeInvalidOp
		switch {
		case errors.Is(err, crdt.ErrPendingFull):
			code = protocol.CodePendingFull
		case errors.Is(err, crdt.ErrTooLarge):
			code = protocol.CodeDocTooLarge
		}
		r.s.reject(o.id, r.batch, code, err.Error(), 0)
		return
	}
	version, pendAfter := o.doc.Version(), o.doc.Pending()
	o.recordChange(before)
	o.srv.metrics.applied(version - before)
	if version != before {
		// Other sessions get the update as it came (no re-encode). If ops
		// were waiting before it, it may have released them: then they get
		// the diff since the state before it, which carries every op that
		// applied. (Ops of this update that still wait go out as they came;
		// a receiver holds them in its own pending buffer, and the release
		// later reaches it as a duplicate, which is a no-op.)
		frame, author := r.update, r.s
		if pendBefore > 0 {
			// The released ops are other sessions' too: the author must get
			// them as well (its own ops in the diff are duplicates to it).
			frame, author = o.doc.EncodeDiff(svBefore), nil
		}
		o.fanOut(protocol.Encode(&protocol.Update{Doc: o.id, Update: frame}), author)
	}
	r.s.enqueue(protocol.Encode(&protocol.Ack{Doc: o.id, Batch: r.batch, Status: protocol.AckApplied, Applied: version}))
	if version == before && pendAfter <= pendBefore && len(o.commits) == 0 {
		// Nothing new (a resend of ops already stored): durable already.
		// Ops that went pending are new: they are stored below as they came,
		// and a reload puts them back in the pending buffer.
		r.s.enqueue(protocol.Encode(&protocol.Ack{Doc: o.id, Batch: r.batch, Status: protocol.AckDurable, Applied: version, Durable: version}))
		return
	}
	p, err := o.srv.cfg.Store.Submit(ctx, o.id, r.update)
	if err != nil {
		r.s.sendError(protocol.CodeStorageFailed, o.id, r.batch, "not stored")
		return
	}
	o.exists = true
	o.commits = append(o.commits, commit{p: p, s: r.s, batch: r.batch, version: version})
	o.commits[len(o.commits)-1].sent = time.Now()
}

// fanOut enqueues the same encoded frame to every session on the document
// but the author: one encoding, N non-blocking enqueues.
func (o *owner) fanOut(frame []byte, author *session) {
	for s := range o.subs {
		if s != author {
			s.enqueue(frame)
		}
	}
}

// durable acks every commit that has completed, oldest first, then
// compacts if the log is long enough.
func (o *owner) durable() {
	o.ackCommits()
	o.maybeCompact()
}

// ackCommits acks every commit that has completed, oldest first.
func (o *owner) ackCommits() {
	for len(o.commits) > 0 {
		c := o.commits[0]
		select {
		case <-c.p.Done():
		default:
			return
		}
		o.commits = o.commits[1:]
		seq, err := c.p.Result()
		if err != nil {
			o.srv.cfg.Logger.Error("commit failed", "doc", o.id, "err", err)
			if c.s != nil {
				c.s.sendError(protocol.CodeStorageFailed, o.id, c.batch, "commit failed; resend after reconnect")
			}
			if c.reply != nil {
				c.reply(err)
			}
			continue
		}
		o.lastSeq = seq
		o.logTail++
		o.srv.metrics.durableAck(c.sent)
		if c.s != nil {
			c.s.enqueue(protocol.Encode(&protocol.Ack{Doc: o.id, Batch: c.batch, Status: protocol.AckDurable, Applied: c.version, Durable: c.version}))
		}
		if c.reply != nil {
			c.reply(nil)
		}
	}
}

// maybeCompact replaces the log by a snapshot once it is long enough. The
// snapshot covers every durable entry (all of them were applied first).
func (o *owner) maybeCompact() {
	if o.compacts > 0 || o.logTail < int64(o.srv.cfg.CompactEntries) || len(o.commits) > 0 {
		return
	}
	snap, through := o.doc.EncodeSnapshot(), o.lastSeq
	o.compacts++
	o.logTail = 0
	store, id, ctx := o.srv.cfg.Store, o.id, o.srv.ctx
	o.srv.wg.Add(1)
	go func() { // owned by the owner: it waits for the result before unloading
		defer o.srv.wg.Done()
		o.compact <- store.Compact(ctx, id, snap, through)
	}()
}

// shutdown waits for in-flight commits so their durable acks go out.
func (o *owner) shutdown() {
	o.srv.reg.remove(o)
	for _, c := range o.commits {
		<-c.p.Done()
	}
	o.durable()
	if o.compacts > 0 {
		<-o.compact
	}
}
