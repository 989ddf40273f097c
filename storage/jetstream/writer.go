package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// writer is the Store's state for a document it writes. Its fields are
// guarded by Store.mu, except n, which only the publishing goroutine uses.
type writer struct {
	doc, subj string
	epoch     uint64 // fencing epoch stamped on every record
	id        uint64 // random id of this writer instance, on every record
	n         uint64 // records published (publishing goroutine only)

	last     uint64 // the subject's last sequence, which the next append expects
	synced   bool   // last is known (false after an unconfirmed publish)
	fenced   error  // non-nil: appends refused (ErrFenced or ErrDeleted)
	snapName string // the current snapshot object, deleted when replaced
	indexed  bool   // the document's index key exists (publishing goroutine, after Open)
	queue    []item // waiting to be published, in order
	flushing bool   // a publishing goroutine runs for this writer
}

// item is one queued write.
type item struct {
	kind recKind // recUpdates, recSnapshot or recTombstone
	data []byte  // recUpdates
	snap snapRef // recSnapshot
	p    *Pending
}

// Pending is a write on its way to JetStream.
type Pending struct {
	done chan struct{}
	seq  uint64
	err  error
}

func newPending() *Pending { return &Pending{done: make(chan struct{})} }

// Done is closed when the write has been acked by JetStream (stored on a
// quorum of the stream's replicas) or has failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result is the record's sequence and the outcome; it waits for Done.
func (p *Pending) Result() (uint64, error) {
	<-p.done
	return p.seq, p.err
}

func (p *Pending) complete(seq uint64, err error) {
	p.seq, p.err = seq, err
	close(p.done)
}

// Open loads a document and makes this Store its writer at epoch (the
// fencing epoch of the caller's lease; epochs of successive owners
// increase). It first appends a fence record, so that from then on any
// writer that loaded the document before cannot append (its appends
// expect an older last sequence); only then does it read the log and the
// snapshot. It returns ErrFenced if the log has a record of a higher epoch
// (a newer owner wrote it), before or after the fence.
//
// A document never written returns ErrNotFound with the writer in place
// (updates may be submitted); a deleted one returns ErrDeleted and no
// writer. An earlier writer of this Store for the document is replaced
// (its queued writes fail with ErrFenced).
func (s *Store) Open(ctx context.Context, doc string, epoch uint64) (Stored, error) {
	if err := checkID(doc); err != nil {
		return Stored{}, err
	}
	if epoch == 0 {
		return Stored{}, fmt.Errorf("jetstream: %s: epoch 0 (epochs start at 1)", doc)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return Stored{}, ErrClosed
	}
	w := &writer{doc: doc, subj: s.Subject(doc), epoch: epoch, id: randomID(), synced: true}
	// The fence is appended unconditionally, so that a writer still
	// appending cannot starve it: appends expect the last sequence, so
	// every record of an earlier writer is before it or refused. A stale
	// Open's fence (lower epoch, landing after a newer one) is harmless:
	// the log keeps it, fold skips it, its writer reads the newer epoch
	// below and gives up, and the current writer steps over it.
	seq, last, err := s.lastRecord(ctx, w.subj)
	if err != nil {
		return Stored{}, fmt.Errorf("%s: %w", doc, err)
	}
	if last != nil && last.epoch > epoch {
		return Stored{}, fmt.Errorf("%w: %s: epoch %d is older than the log's %d (record %d)", ErrFenced, doc, epoch, last.epoch, seq)
	}
	if last != nil && last.kind == recTombstone {
		return Stored{}, fmt.Errorf("%s: %w", doc, ErrDeleted)
	}
	fence := appendRecord(nil, &record{kind: recFence, epoch: epoch, writer: w.id, n: w.n})
	w.n++
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: w.subj, Data: fence}, s.pubOpts()...)
	if err != nil {
		return Stored{}, fmt.Errorf("%w: %s: fence: %w", ErrUnavailable, doc, err)
	}
	f, err := s.read(ctx, doc, ack.Sequence)
	if err != nil {
		return Stored{}, err
	}
	switch {
	case f.epoch > epoch:
		return Stored{}, fmt.Errorf("%w: %s: epoch %d is older than the log's %d", ErrFenced, doc, epoch, f.epoch)
	case f.lastActive != ack.Sequence:
		// Only stale fences may follow ours.
		return Stored{}, fmt.Errorf("%w: %s: record %d follows our fence %d", ErrFenced, doc, f.lastActive, ack.Sequence)
	}
	w.last = f.last
	if f.exists && !f.deleted {
		if err := s.index(ctx, doc); err != nil {
			return Stored{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, doc, err)
		}
		w.indexed = true
	}
	if f.snap != nil {
		w.snapName = f.snap.name
	}
	st, err := s.stored(ctx, doc, f)
	if errors.Is(err, errSnapGone) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err) // nobody can compact past our fence
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Stored{}, err
	}
	st.LastSeq = w.last
	if !s.install(w) {
		return Stored{}, ErrClosed
	}
	return st, err
}

// install makes w the document's writer, fencing off the one it replaces.
func (s *Store) install(w *writer) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.docs[w.doc]
	s.docs[w.doc] = w
	var failed []item
	if old != nil {
		old.fenced = ErrFenced
		failed, old.queue = old.queue, nil
		s.dequeued(failed)
	}
	s.mu.Unlock()
	for _, it := range failed {
		it.p.complete(0, fmt.Errorf("%w: %s: reopened", ErrFenced, w.doc))
	}
	return true
}

// Release forgets the document's writer (when its lease is given up):
// queued writes still complete, later ones get ErrNotOpen.
func (s *Store) Release(doc string) {
	s.mu.Lock()
	delete(s.docs, doc)
	s.mu.Unlock()
}

// Submit queues an update for the document's log and returns at once.
// The Pending completes when JetStream has acked the record holding it
// (updates queued while a publish is in flight go together in the next
// record). Errors: ErrNotOpen, ErrFenced, ErrDeleted, ErrTooLarge, ErrBusy
// (queue full: retry later), ErrClosed.
func (s *Store) Submit(doc string, update []byte) (*Pending, error) {
	if len(update) == 0 {
		return nil, fmt.Errorf("jetstream: %s: empty update", doc)
	}
	if updatesSize(1, len(update)) > s.opts.MaxRecordBytes {
		return nil, fmt.Errorf("%w: %s: update of %d bytes (records up to %d)", ErrTooLarge, doc, len(update), s.opts.MaxRecordBytes)
	}
	return s.enqueue(doc, item{kind: recUpdates, data: update})
}

// Delete queues a tombstone: once it is acked the document loads as
// ErrDeleted, its log is purged and its snapshot deleted, and its writer
// refuses appends (ErrDeleted).
func (s *Store) Delete(doc string) (*Pending, error) {
	return s.enqueue(doc, item{kind: recTombstone})
}

// Compact stores snapshot as the document's state through log sequence
// through: it writes the snapshot object (named <token>.<epoch>.<through>,
// so a deposed writer never overwrites the current one), appends a
// snapshot record pointing to it (fenced like any append), then purges the
// subject's records up to through and deletes the snapshot it replaces.
// It blocks; a fenced writer gets ErrFenced and its object is deleted
// (an unconfirmed one, ErrUnavailable, keeps it: its record may land).
func (s *Store) Compact(ctx context.Context, doc string, snapshot []byte, through uint64) error {
	if int64(len(snapshot)) > s.opts.MaxSnapshotBytes {
		return fmt.Errorf("%w: %s: snapshot of %d bytes (limit %d)", ErrTooLarge, doc, len(snapshot), s.opts.MaxSnapshotBytes)
	}
	s.mu.Lock()
	w := s.docs[doc]
	var epoch uint64
	var err error
	switch {
	case s.closed:
		err = ErrClosed
	case w == nil:
		err = ErrNotOpen
	case w.fenced != nil:
		err = w.fenced
	case through > w.last:
		err = fmt.Errorf("jetstream: through %d is past the log's last sequence %d", through, w.last)
	default:
		epoch = w.epoch
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: compact: %w", doc, err)
	}
	name := fmt.Sprintf("%s.%d.%d", w.subj[len(s.subj):], epoch, through)
	if _, err := s.snaps.PutBytes(ctx, name, snapshot); err != nil {
		return fmt.Errorf("%w: %s: snapshot: %w", ErrUnavailable, doc, err)
	}
	p, err := s.enqueue(doc, item{kind: recSnapshot, snap: snapRef{through: through, size: uint64(len(snapshot)), name: name}})
	if err == nil {
		select {
		case <-p.Done():
			_, err = p.Result()
		case <-ctx.Done():
			err = ctx.Err() // the record may still land: then the object stays, and is used
			return fmt.Errorf("%s: compact: %w", doc, err)
		}
	}
	if err != nil {
		// An unconfirmed snapshot record may still land and point to the
		// object: keep it (an orphan at worst). A refused or never
		// published one cannot.
		if !errors.Is(err, ErrUnavailable) {
			s.deleteSnapshot(name)
		}
		return fmt.Errorf("%s: compact: %w", doc, err)
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(w.subj), jetstream.WithPurgeSequence(through+1)); err != nil {
		// Harmless: Load skips the records the snapshot covers; the next
		// compaction purges them.
		s.opts.Logger.Warn("jetstream: purge after compaction failed", "doc", doc, "err", err)
	}
	s.mu.Lock()
	old := w.snapName
	w.snapName = name
	s.mu.Unlock()
	if old != "" && old != name {
		s.deleteSnapshot(old)
	}
	return nil
}

// deleteSnapshot deletes a snapshot object, logging a failure (an orphan
// object costs space only).
func (s *Store) deleteSnapshot(name string) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	if err := s.snaps.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.opts.Logger.Warn("jetstream: deleting a snapshot failed", "object", name, "err", err)
	}
}

// enqueue queues it on the document's writer and starts the writer's
// publishing goroutine if none runs.
func (s *Store) enqueue(doc string, it item) (*Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.docs[doc]
	switch {
	case s.closed:
		return nil, ErrClosed
	case w == nil:
		return nil, fmt.Errorf("%s: %w", doc, ErrNotOpen)
	case w.fenced != nil:
		return nil, fmt.Errorf("%s: %w", doc, w.fenced)
	case s.queued+int64(len(it.data)) > s.opts.MaxQueueBytes:
		return nil, fmt.Errorf("%s: %w (%d bytes queued)", doc, ErrBusy, s.queued)
	case !w.flushing && s.active >= s.opts.MaxActiveDocs:
		return nil, fmt.Errorf("%s: %w (%d documents publishing)", doc, ErrBusy, s.active)
	}
	it.p = newPending()
	w.queue = append(w.queue, it)
	s.queued += int64(len(it.data))
	if !w.flushing {
		w.flushing = true
		s.active++
		s.wg.Add(1)
		go s.flush(w)
	}
	return it.p, nil
}

// dequeued accounts for items leaving the queue. Called with s.mu held.
func (s *Store) dequeued(items []item) {
	for _, it := range items {
		s.queued -= int64(len(it.data))
	}
}

// flush publishes w's queue, one record at a time, until it is empty: the
// writer's publishing goroutine. Each record expects the subject's last
// sequence, so records of one writer are in submission order and a
// fenced writer appends nothing.
func (s *Store) flush(w *writer) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(w.queue) == 0 || w.fenced != nil {
			failed, err := w.queue, w.fenced
			w.queue = nil
			s.dequeued(failed)
			w.flushing = false
			s.active--
			s.mu.Unlock()
			for _, it := range failed {
				it.p.complete(0, fmt.Errorf("%s: %w", w.doc, err))
			}
			return
		}
		batch := s.take(w)
		last, synced := w.last, w.synced
		s.mu.Unlock()

		seq, err := s.publish(w, batch, last, synced)

		s.mu.Lock()
		s.dequeued(batch)
		if err == nil {
			w.last = seq
			if batch[0].kind == recTombstone {
				w.fenced = ErrDeleted
			}
		}
		s.mu.Unlock()
		for _, it := range batch {
			it.p.complete(seq, err)
		}
		if err == nil && batch[0].kind == recTombstone {
			s.purgeDeleted(w, seq)
		}
	}
}

// take takes the next record's items off w's queue: a run of updates
// within MaxRecordBytes and MaxUpdates, or one snapshot or tombstone.
// Called with s.mu held.
func (s *Store) take(w *writer) []item {
	n, size := 1, len(w.queue[0].data)
	if w.queue[0].kind == recUpdates {
		for n < len(w.queue) && n < s.opts.MaxUpdates && w.queue[n].kind == recUpdates &&
			updatesSize(n+1, size+len(w.queue[n].data)) <= s.opts.MaxRecordBytes {
			size += len(w.queue[n].data)
			n++
		}
	}
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	return batch
}

// publish appends one record expecting the subject's last sequence last,
// and returns its sequence. An unconfirmed or refused publish is resolved
// by reading the subject's last record: this record (it landed), an older
// one of this writer (last was stale: publish again), or another writer's
// (fenced).
func (s *Store) publish(w *writer, batch []item, last uint64, synced bool) (uint64, error) {
	rec := &record{kind: batch[0].kind, epoch: w.epoch, writer: w.id, n: w.n}
	w.n++
	switch rec.kind {
	case recUpdates:
		rec.updates = make([][]byte, len(batch))
		for i, it := range batch {
			rec.updates[i] = it.data
		}
	case recSnapshot:
		rec.snap = batch[0].snap
	}
	data := appendRecord(nil, rec)
	if !w.indexed && rec.kind != recTombstone {
		// The document's first data: index it before (index.go).
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
		err := s.index(ctx, w.doc)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, w.doc, err)
		}
		w.indexed = true
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if synced {
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
			var ack *jetstream.PubAck
			ack, err = s.js.PublishMsg(ctx, &nats.Msg{Subject: w.subj, Data: data},
				append(s.pubOpts(), jetstream.WithExpectLastSequencePerSubject(last))...)
			cancel()
			if err == nil {
				return ack.Sequence, nil
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
		seq, lastRec, rerr := s.lastRecord(ctx, w.subj)
		cancel()
		switch {
		case rerr != nil:
			s.unsync(w)
			if err == nil {
				err = rerr
			}
			return 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, w.doc, err)
		case lastRec != nil && lastRec.writer == w.id && lastRec.n == rec.n:
			return seq, nil // it landed, unconfirmed
		case lastRec != nil && lastRec.writer == w.id && lastRec.epoch == w.epoch:
			last, synced = seq, true // an earlier record of ours landed late
		case lastRec != nil && lastRec.kind == recFence && lastRec.epoch < w.epoch:
			// A stale Open's fence: step over it, but only if every record
			// since ours is one (a newer writer's fence may lie between).
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
			ok, verr := s.onlyStaleFences(ctx, w, last, seq)
			cancel()
			if verr != nil {
				s.unsync(w)
				return 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, w.doc, verr)
			}
			if !ok {
				s.fence(w)
				return 0, fmt.Errorf("%w: %s: epoch %d found a newer record before record %d", ErrFenced, w.doc, w.epoch, seq)
			}
			last, synced = seq, true
		default:
			who := "an empty log"
			if lastRec != nil {
				who = fmt.Sprintf("record %d of epoch %d", seq, lastRec.epoch)
			}
			s.fence(w)
			return 0, fmt.Errorf("%w: %s: epoch %d found %s", ErrFenced, w.doc, w.epoch, who)
		}
	}
	s.unsync(w)
	return 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, w.doc, err)
}

// pubOpts are every append's options: the stream, and while the stream
// has no leader (an election: nobody received the message, so nothing
// was stored) retries every 50 ms for WriteTimeout (the publish's ctx
// ends it), rather than failing at once.
func (s *Store) pubOpts() []jetstream.PublishOpt {
	return []jetstream.PublishOpt{
		jetstream.WithExpectStream(s.opts.Prefix + "_ops"),
		jetstream.WithRetryWait(50 * time.Millisecond),
		jetstream.WithRetryAttempts(int(s.opts.WriteTimeout/(50*time.Millisecond)) + 1),
	}
}

// onlyStaleFences reports whether every record of w's subject after
// sequence from, up to and including to, is a fence of an epoch lower than
// w's.
func (s *Store) onlyStaleFences(ctx context.Context, w *writer, from, to uint64) (bool, error) {
	for seq := from + 1; seq <= to; {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(w.subj))
		if err != nil {
			return false, err
		}
		if m.Sequence > to {
			return true, nil
		}
		rec, err := decodeRecord(m.Data, s.opts.MaxRecordBytes+4096, s.opts.MaxUpdates)
		if err != nil {
			return false, fmt.Errorf("record %d: %w", m.Sequence, err)
		}
		if rec.kind != recFence || rec.epoch >= w.epoch {
			return false, nil
		}
		seq = m.Sequence + 1
	}
	return true, nil
}

func (s *Store) unsync(w *writer) {
	s.mu.Lock()
	w.synced = false
	s.mu.Unlock()
}

func (s *Store) fence(w *writer) {
	s.mu.Lock()
	w.fenced = ErrFenced
	s.mu.Unlock()
}

// purgeDeleted purges a deleted document's records before its tombstone
// and deletes its snapshot (failures only cost space).
func (s *Store) purgeDeleted(w *writer, tombstone uint64) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(w.subj), jetstream.WithPurgeSequence(tombstone)); err != nil {
		s.opts.Logger.Warn("jetstream: purging a deleted document failed", "doc", w.doc, "err", err)
	}
	s.mu.Lock()
	name := w.snapName
	w.snapName = ""
	s.mu.Unlock()
	if name != "" {
		s.deleteSnapshot(name)
	}
	s.unindex(w.doc)
	s.purgeVersions(w.doc)
}

// isWrongLastSeq reports a refused expected-last-sequence.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// MaxUpdateBytes is the largest update Submit takes: one that fills a
// record (MaxRecordBytes) alone.
func (s *Store) MaxUpdateBytes() int { return s.opts.MaxRecordBytes - updatesSize(1, 0) }
