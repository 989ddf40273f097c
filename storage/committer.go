package storage

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The committer is the only writer of the bbolt file. It takes the first
// request that arrives, adds whatever else is already queued (up to
// MaxBatchOps and MaxBatchBytes), applies them all in one read-write
// transaction, commits (bbolt writes and fdatasyncs the data pages, then the
// meta page), and only then completes the requests. There is no batching
// window: a lone request commits at once, and requests that arrive while a
// commit is in flight make up the next batch.
//
// Journal cleaning (clean.go) runs mostly in the committer's idle time: when
// no request is queued and the journal is over its target, the committer
// commits a cleaning-only transaction of bounded size and then looks at the
// queue again, so a request waits for at most one such transaction. Commits
// of requests clean only while the journal is past twice its target (the
// backstop when writers leave no idle time).

// op is the work of one write request inside the committer's transaction.
type op interface {
	// apply validates the request against b and then writes it. A refusal
	// returned as reject(err) must come before any write; any other error
	// aborts the whole transaction. The uint64 is the assigned sequence, for
	// appends.
	apply(b *batch) (uint64, error)
	// size is the request's payload in bytes, for MaxBatchBytes.
	size() int
}

// request is one submitted write. seq and err are set by the committer before
// done is closed, and read only after that.
type request struct {
	op   op
	done chan struct{}
	seq  uint64
	err  error
}

// Pending is a submitted write whose commit has not necessarily happened yet.
// Every Pending completes: the committer either commits it, fails it with the
// commit's error, or (never in practice) fails it with ErrClosed.
type Pending struct{ r *request }

// Done is closed once the request's outcome is final. A document owner can
// select on it next to its other inputs instead of blocking in Append.
func (p *Pending) Done() <-chan struct{} { return p.r.done }

// Result blocks until Done is closed and returns the assigned sequence (for an
// Append) and the request's error. A nil error means the request is durable.
func (p *Pending) Result() (uint64, error) {
	<-p.r.done
	return p.r.seq, p.r.err
}

// Wait is Result bounded by ctx. If ctx ends first it returns ctx.Err() and
// the outcome is unknown: the request may still commit.
func (p *Pending) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-p.r.done:
		return p.r.seq, p.r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// submit hands o to the committer. With wait it blocks while the queue is
// full (until ctx ends); without, a full queue is ErrQueueFull.
func (s *Store) submit(ctx context.Context, o op, wait bool) (*Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if f := s.failure.Load(); f != nil {
		return nil, *f
	}
	r := &request{op: o, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.senders.Add(1)
	s.mu.Unlock()
	defer s.senders.Done()
	if !wait {
		select {
		case s.reqs <- r:
			return &Pending{r: r}, nil
		default:
			return nil, ErrQueueFull
		}
	}
	select {
	case s.reqs <- r:
		return &Pending{r: r}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run is the committer goroutine. It exits after Close, once every queued
// request has been committed or failed.
func (s *Store) run() {
	defer close(s.stopped)
	batch := make([]*request, 0, s.opts.MaxBatchOps)
	for {
		if s.idleWork() {
			select {
			case r := <-s.reqs:
				batch = s.collect(append(batch[:0], r), r.op.size())
				s.commit(batch, cleanInline)
			case <-s.closing:
				// Close drains below; an idle clean now would only delay it.
				s.drain(batch)
				return
			default:
				s.commit(nil, cleanIdle)
			}
			clear(batch)
			continue
		}
		select {
		case r := <-s.reqs:
			batch = s.collect(append(batch[:0], r), r.op.size())
			s.commit(batch, cleanInline)
		case <-s.closing:
			s.drain(batch)
			return
		}
		clear(batch) // drop references so committed payloads can be freed
	}
}

// idleWork reports whether the journal is over its target, so that the
// committer should clean it when no request is waiting.
func (s *Store) idleWork() bool {
	return s.jcount.Load() > int64(s.opts.JournalEntries) && s.failure.Load() == nil
}

// drain commits what is queued after Close and empties the journal. Close
// waited for every Submit to finish sending, so the queue holds everything
// that will ever arrive.
func (s *Store) drain(batch []*request) {
	for {
		batch = s.collect(batch[:0], 0)
		if len(batch) == 0 {
			break
		}
		s.commit(batch, cleanInline)
	}
	clear(batch)
	// Leave an empty journal behind, so the next Open is quick.
	for s.jcount.Load() > 0 && s.failure.Load() == nil {
		s.commit(nil, cleanDrain)
	}
}

// collect adds queued requests to batch without waiting, up to the limits.
func (s *Store) collect(batch []*request, n int) []*request {
	for len(batch) < s.opts.MaxBatchOps && n < s.opts.MaxBatchBytes {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			n += r.op.size()
		default:
			return batch
		}
	}
	return batch
}

// commit applies batch in one transaction and completes its requests. On a
// commit error every request of the batch fails and the store fails: no
// request is completed without error unless its transaction committed.
func (s *Store) commit(reqs []*request, mode cleanMode) {
	defer func() {
		for _, r := range reqs {
			close(r.done)
		}
	}()
	if f := s.failure.Load(); f != nil {
		for _, r := range reqs {
			r.err = *f
		}
		return
	}
	start := time.Now()
	var bytes int
	var b *batch
	err := s.db.Update(func(tx *bolt.Tx) error {
		b = s.newBatch(tx)
		for _, r := range reqs {
			seq, err := r.op.apply(b)
			var rej *rejection
			if errors.As(err, &rej) {
				r.seq, r.err = 0, rej.err
				continue
			}
			if err != nil {
				return err
			}
			r.seq, r.err = seq, nil
			bytes += r.op.size()
		}
		if err := b.clean(s.cleanBudget(mode, len(reqs))); err != nil {
			return err
		}
		if err := b.flush(); err != nil {
			return err
		}
		if s.hooks.beforeCommit != nil {
			return s.hooks.beforeCommit(len(reqs))
		}
		return nil
	})
	if err != nil {
		ferr := s.setFailed(err)
		for _, r := range reqs {
			r.seq, r.err = 0, ferr
		}
		return
	}
	b.publish()
	if len(reqs) == 0 {
		s.stats.cleanCommits.Add(1)
	}
	s.stats.record(len(reqs), bytes, time.Since(start))
}

// commitStats are the committer's counters since Open.
type commitStats struct {
	commits  atomic.Uint64
	requests atomic.Uint64
	bytes    atomic.Uint64
	maxBatch atomic.Uint64
	nanos    atomic.Uint64 // total time inside Update

	cleanCommits atomic.Uint64 // cleaning-only transactions (idle time and Close)
}

func (c *commitStats) record(n, bytes int, d time.Duration) {
	if n == 0 {
		return // a cleaning-only commit (idle time or Close)
	}
	c.commits.Add(1)
	c.requests.Add(uint64(n))
	c.bytes.Add(uint64(bytes))
	c.nanos.Add(uint64(d))
	for {
		m := c.maxBatch.Load()
		if uint64(n) <= m || c.maxBatch.CompareAndSwap(m, uint64(n)) {
			return
		}
	}
}
