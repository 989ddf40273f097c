package owner

import (
	"errors"
	"fmt"
	"time"

	"github.com/collabd/collabd/protocol"
)

// commit is an update on its way to disk and whom to tell when it lands.
// A commit without a Pending stores nothing (a resend of ops already
// stored): it is durable as soon as the commits before it are. A commit
// with data is not submitted yet: the store's queue was full (backlog).
type commit struct {
	p       Pending
	data    []byte     // the update, until it is submitted
	sub     Subscriber // the session whose batch it is (nil: server-made)
	batch   uint64
	version uint64      // document version after it
	reply   func(error) // server-made updates: told when durable or failed
	sent    time.Time   // a session's update: when it was submitted
	// held: the batch left ops of its own in the engine's pending buffer
	// (they wait for an op the document does not have). Stored is not
	// enough then: after a crash that loses the dependency they could never
	// show. Its durable ack waits until the buffer has emptied and every
	// commit pushed up to then has landed (docs/design/durable-pending.md).
	held bool
	idx  uint64 // position in push order (1-based)
}

// commitQueue holds the commits in submission order; they complete in that
// order (the store commits in order), and acks go out in that order. When
// the store's queue is full, commits wait here unsubmitted (the backlog)
// and are submitted in order when the retry timer fires: a burst is
// absorbed without blocking the owner and without refusing anything, up to
// MaxBacklogBytes, past which new updates are refused before they apply.
type commitQueue struct {
	q       []commit
	lastSeq uint64 // highest durable log sequence
	backlog int    // bytes of unsubmitted commits
	retry   *time.Timer
	armed   bool // retry is running
	// held batches: landed, their durable acks kept back until releaseAt
	// (the push count when the pending buffer was last seen empty) has
	// landed too
	pushed, popped uint64
	held           []commit
	releaseAt      uint64
	// versions in flight, in submission order: they land on their own
	// stream and hold no log commit back (a version stream without a
	// quorum must not stop the document's acks; docs/CLUSTER.md, "What it
	// found")
	vers []commit
}

// retryC is the backlog's retry timer channel while it is armed.
func (q *commitQueue) retryC() <-chan time.Time {
	if q.armed {
		return q.retry.C
	}
	return nil
}

// backlogRetry is how soon a backlog is submitted again.
const backlogRetry = 2 * time.Millisecond

// MaxBacklogBytes bounds the updates one owner holds unsubmitted while the
// store's queue is full; past it, updates are refused (retryable) before
// they apply.
const MaxBacklogBytes = 16 << 20

// closedChan is the head of a queue whose first commit stores nothing.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// head is the first commit's Done (nil when the queue is empty or its
// first commit is not submitted yet).
func (q *commitQueue) head() <-chan struct{} {
	if len(q.q) == 0 || q.q[0].data != nil {
		return nil
	}
	if q.q[0].p == nil {
		return closedChan
	}
	return q.q[0].p.Done()
}

func (q *commitQueue) push(c commit) {
	q.pushed++
	c.idx = q.pushed
	q.q = append(q.q, c)
}

// pushVersion queues a submitted version (its Pending set).
func (q *commitQueue) pushVersion(c commit) { q.vers = append(q.vers, c) }

// versionHead is the oldest version in flight's Done (nil: none).
func (q *commitQueue) versionHead() <-chan struct{} {
	if len(q.vers) == 0 {
		return nil
	}
	return q.vers[0].p.Done()
}

// empty reports whether no commit or version is in flight.
func (q *commitQueue) empty() bool { return len(q.q) == 0 && len(q.vers) == 0 }

// waitAll waits until every submitted commit and version has completed (a
// reset: the owner must not drop acks of what was submitted). A version's
// wait is bounded by the store's write timeout.
func (q *commitQueue) waitAll() {
	for _, c := range q.q {
		if c.p != nil {
			<-c.p.Done()
		}
	}
	for _, c := range q.vers {
		<-c.p.Done()
	}
}

// submit submits the backlog in order until the store's queue is full
// again (then the retry timer is armed) or it is empty. It reports a store
// failure other than a full queue.
func (o *Owner) submit() error {
	q := &o.commits
	for i := range q.q {
		c := &q.q[i]
		if c.data == nil {
			continue
		}
		p, err := o.cfg.Store.Submit(o.id, c.data)
		if errors.Is(err, ErrBusy) {
			if !q.armed {
				if q.retry == nil {
					q.retry = time.NewTimer(backlogRetry)
				} else {
					q.retry.Reset(backlogRetry)
				}
				q.armed = true
			}
			return nil
		}
		if err != nil {
			return err
		}
		q.backlog -= len(c.data)
		c.p, c.data = p, nil
	}
	return nil
}

// stopRetry stops the backlog's timer (the owner's state is dropped).
func (q *commitQueue) stopRetry() {
	if q.retry != nil {
		q.retry.Stop()
	}
	q.armed = false
}

// drainBacklog submits what is left of the backlog, waiting for room in
// the store's queue for at most drainTimeout (shutdown: what was applied is
// stored, unless the store stays full).
func (o *Owner) drainBacklog() error {
	deadline := time.Now().Add(drainTimeout)
	for o.commits.backlog > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: still full after %v", ErrBusy, drainTimeout)
		}
		o.commits.armed = false
		if err := o.submit(); err != nil {
			return err
		}
		if o.commits.armed {
			<-o.commits.retry.C
			o.commits.armed = false
		}
	}
	return nil
}

// drainTimeout bounds how long a shutdown waits for room in the store.
const drainTimeout = 10 * time.Second

// durable acks what has completed, then compacts if the log is long enough.
func (o *Owner) durable() {
	o.ackCommits()
	o.maybeCompact()
}

// ackCommits acks every completed commit, oldest first, then the held
// batches that are whole now.
func (o *Owner) ackCommits() {
	q := &o.commits
	if o.doc != nil && o.doc.Pending() == 0 {
		// every op in memory has its commit pushed already (store runs
		// right after apply): once those have landed, held ops are whole
		q.releaseAt = q.pushed
	}
	o.ackCompleted()
	o.flushHeld()
	o.versionsLanded()
}

// versionsLanded answers the versions that completed, oldest first.
func (o *Owner) versionsLanded() {
	q := &o.commits
	for len(q.vers) > 0 {
		c := q.vers[0]
		select {
		case <-c.p.Done():
		default:
			return
		}
		q.vers[0] = commit{}
		q.vers = q.vers[1:]
		if _, err := c.p.Result(); err != nil {
			o.cfg.Logger.Warn("version not stored", "doc", o.id, "err", err)
			c.reply(err)
			continue
		}
		c.reply(nil)
	}
}

// flushHeld acks the held batches that are whole and stored: pushed
// before the pending buffer was last seen empty, and everything up to then
// landed.
func (o *Owner) flushHeld() {
	q := &o.commits
	if len(q.held) == 0 || q.popped < q.releaseAt {
		return
	}
	kept := q.held[:0]
	for _, c := range q.held {
		if c.idx > q.releaseAt {
			kept = append(kept, c)
			continue
		}
		o.ackDurable(c)
	}
	clear(q.held[len(kept):])
	q.held = kept
}

// ackDurable tells a landed commit's session (or caller) it is durable.
func (o *Owner) ackDurable(c commit) {
	if !c.sent.IsZero() {
		o.metrics().DurableAck(c.sent)
	}
	if c.sub != nil {
		o.deliver(c.sub, &AckEvent{Doc: o.id, Batch: c.batch, Status: protocol.AckDurable, Applied: c.version, Durable: c.version})
	}
	if c.reply != nil {
		c.reply(nil)
	}
}

// ackCompleted acks the completed commits at the head of the queue.
func (o *Owner) ackCompleted() {
	for len(o.commits.q) > 0 {
		c := o.commits.q[0]
		if c.data != nil {
			return // not submitted yet
		}
		var err error
		if c.p != nil {
			select {
			case <-c.p.Done():
			default:
				return
			}
			var seq uint64
			if seq, err = c.p.Result(); err == nil {
				o.commits.lastSeq = seq
				o.compacts.logTail++
			}
		}
		o.commits.q[0] = commit{}
		o.commits.q = o.commits.q[1:]
		o.commits.popped = c.idx
		if err != nil {
			o.cfg.Logger.Error("commit failed", "doc", o.id, "err", err)
			if c.sub != nil {
				o.deliver(c.sub, &ErrorEvent{Doc: o.id, Batch: c.batch, Code: protocol.CodeStorageFailed, Message: "commit failed; resend after reconnect"})
			}
			if c.reply != nil {
				c.reply(err)
			}
			continue
		}
		if c.held {
			o.commits.held = append(o.commits.held, c)
			continue
		}
		o.flushHeld() // held batches before this one first: acks stay in order where they can
		o.ackDurable(c)
	}
}

// compactor runs at most one compaction at a time on a goroutine the owner
// waits for before it unloads.
type compactor struct {
	running bool
	done    chan error // capacity 1 (made with the first compaction; nil blocks the owner's select)
	logTail int64      // log entries after the stored snapshot
}

// maybeCompact replaces the log by a snapshot once it is long enough. The
// snapshot covers every durable entry (all of them were applied first).
func (o *Owner) maybeCompact() {
	if o.failed != nil || o.doc == nil || o.compacts.running || o.compacts.logTail < int64(o.cfg.CompactEntries) || len(o.commits.q) > 0 {
		return
	}
	snap, through := record(o.kind, o.doc.Snapshot()), o.commits.lastSeq
	o.compacts.running = true
	o.compacts.logTail = 0
	if o.compacts.done == nil {
		o.compacts.done = make(chan error, 1)
	}
	store, id, ctx, done := o.cfg.Store, o.id, o.reg.ctx, o.compacts.done
	o.reg.goroutine(func() { done <- store.Compact(ctx, id, snap, through) })
}

// finished records a compaction's end.
func (c *compactor) finished(o *Owner, err error) {
	c.running = false
	if err != nil {
		o.cfg.Logger.Warn("compaction failed", "doc", o.id, "err", err)
	}
}

// wait waits for a running compaction.
func (c *compactor) wait(o *Owner) {
	if c.running {
		c.finished(o, <-c.done)
	}
}
