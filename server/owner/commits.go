package owner

import (
	"time"

	"github.com/collabd/collabd/protocol"
)

// commit is an update on its way to disk and whom to tell when it lands.
// A commit without a Pending stores nothing (a resend of ops already
// stored): it is durable as soon as the commits before it are.
type commit struct {
	p       Pending
	sub     Subscriber // the session whose batch it is (nil: server-made)
	batch   uint64
	version uint64      // document version after it
	reply   func(error) // server-made updates: told when durable or failed
	sent    time.Time   // a session's update: when it was submitted
}

// commitQueue holds the commits in submission order; they complete in that
// order (the store commits in order), and acks go out in that order.
type commitQueue struct {
	q       []commit
	lastSeq uint64 // highest durable log sequence
}

// closedChan is the head of a queue whose first commit stores nothing.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// head is the first commit's Done (nil when the queue is empty).
func (q *commitQueue) head() <-chan struct{} {
	if len(q.q) == 0 {
		return nil
	}
	if q.q[0].p == nil {
		return closedChan
	}
	return q.q[0].p.Done()
}

func (q *commitQueue) push(c commit) { q.q = append(q.q, c) }
func (q *commitQueue) empty() bool   { return len(q.q) == 0 }

// waitAll waits until every queued commit has completed (shutdown, delete,
// a reset: the owner must not drop acks of what was submitted).
func (q *commitQueue) waitAll() {
	for _, c := range q.q {
		if c.p != nil {
			<-c.p.Done()
		}
	}
}

// durable acks what has completed, then compacts if the log is long enough.
func (o *Owner) durable() {
	o.ackCommits()
	o.maybeCompact()
}

// ackCommits acks every completed commit, oldest first.
func (o *Owner) ackCommits() {
	for len(o.commits.q) > 0 {
		c := o.commits.q[0]
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
}

// compactor runs at most one compaction at a time on a goroutine the owner
// waits for before it unloads.
type compactor struct {
	running bool
	done    chan error // capacity 1
	logTail int64      // log entries after the stored snapshot
}

// maybeCompact replaces the log by a snapshot once it is long enough. The
// snapshot covers every durable entry (all of them were applied first).
func (o *Owner) maybeCompact() {
	if o.failed != nil || o.compacts.running || o.compacts.logTail < int64(o.cfg.CompactEntries) || !o.commits.empty() {
		return
	}
	snap, through := o.doc.Snapshot(), o.commits.lastSeq
	o.compacts.running = true
	o.compacts.logTail = 0
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
