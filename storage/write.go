package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// logFillPercent packs log pages fuller than bbolt's default of 0.5: log keys
// only ever grow, so a split page is never written to again.
const logFillPercent = 0.9

// Submit queues update for the end of document id's log and returns at once
// (it blocks only while the queue is full). The update bytes are copied.
// Updates submitted one after another by the same goroutine get increasing
// sequence numbers in submission order. A document is created by its first
// update. The Pending completes when the update is durable or has failed.
func (s *Store) Submit(ctx context.Context, id string, update []byte) (*Pending, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if len(update) > s.opts.MaxUpdateBytes {
		return nil, fmt.Errorf("%w: update of %d bytes for %q (max %d)", ErrTooLarge, len(update), id, s.opts.MaxUpdateBytes)
	}
	return s.submit(ctx, &appendOp{doc: id, val: newJournalValue(id, update), n: len(update)}, true)
}

// TrySubmit is Submit that never waits: when the committer's queue is full
// it returns ErrQueueFull at once (a document owner must not block).
func (s *Store) TrySubmit(id string, update []byte) (*Pending, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if len(update) > s.opts.MaxUpdateBytes {
		return nil, fmt.Errorf("%w: update of %d bytes for %q (max %d)", ErrTooLarge, len(update), id, s.opts.MaxUpdateBytes)
	}
	return s.submit(context.Background(), &appendOp{doc: id, val: newJournalValue(id, update), n: len(update)}, false)
}

// SubmitDelete queues Delete's tombstone without waiting, like TrySubmit;
// the Pending's result is Delete's.
func (s *Store) SubmitDelete(id string) (*Pending, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return s.submit(context.Background(), &deleteOp{doc: id}, false)
}

// Append adds update to the end of document id's log and returns its
// sequence number once the transaction holding it is committed and fsynced.
// A nil error means the update survives a crash of the process (and of the
// machine, if the disk honours flushes). If ctx ends while the update is
// queued or committing, Append returns ctx.Err() and the outcome is unknown.
func (s *Store) Append(ctx context.Context, id string, update []byte) (uint64, error) {
	p, err := s.Submit(ctx, id, update)
	if err != nil {
		return 0, err
	}
	return p.Wait(ctx)
}

// Compact stores snapshot as document id's snapshot covering every log entry
// with sequence <= through, and deletes those entries, in one transaction: a
// crash leaves either the old snapshot and log or the new ones.
//
// The caller promises that snapshot contains the effect of every entry up to
// through (it may contain more; replaying an entry twice must be harmless for
// the caller's format, as it is for CRDT updates). through must lie between
// the current snapshot's sequence and the document's LastSeq (ErrRange).
func (s *Store) Compact(ctx context.Context, id string, snapshot []byte, through uint64) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(snapshot) > s.opts.MaxSnapshotBytes {
		return fmt.Errorf("%w: snapshot of %d bytes for %q (max %d)", ErrTooLarge, len(snapshot), id, s.opts.MaxSnapshotBytes)
	}
	rec := newRecord(snapshot)
	sealRecord(rec, through)
	p, err := s.submit(ctx, &compactOp{doc: id, rec: rec, through: through}, true)
	if err != nil {
		return err
	}
	_, err = p.Wait(ctx)
	return err
}

// Delete replaces document id by a tombstone: its snapshot and log are removed
// in one transaction, and later Load and Append calls return ErrDeleted. Only
// Import with Replace brings the id back.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	p, err := s.submit(ctx, &deleteOp{doc: id}, true)
	if err != nil {
		return err
	}
	_, err = p.Wait(ctx)
	return err
}

// batch is the committer's view of one write transaction. It caches the
// state of every document the batch touches; metadata is written once, in
// flush, and index changes are published only after the commit.
type batch struct {
	s       *Store
	docs    *bolt.Bucket
	journal *bolt.Bucket
	now     time.Time
	open    map[string]*docState
	next    uint64 // next journal key
	jcount  int64  // journal entries

	formatBumped bool // the format marker was checked (versions.go)
}

// docState is one document inside a batch.
type docState struct {
	id        string
	hasBucket bool         // false while the document lives in the journal only
	bkt       *bolt.Bucket // opened by openBucket when needed
	log       *bolt.Bucket // opened with bkt; nil for a tombstone
	info      DocInfo      // stored metadata; info.LastSeq is the log watermark
	refs      []jref       // the document's journal entries as of this batch
	refsDirty bool         // refs differ from the index
	dirty     bool         // info must be written
}

// live returns the journal entries above the log watermark.
func (d *docState) live() []jref { return d.refs[firstAbove(d.refs, d.info.LastSeq):] }

// last returns the document's highest sequence.
func (d *docState) last() uint64 {
	if n := len(d.refs); n > 0 && d.refs[n-1].seq > d.info.LastSeq {
		return d.refs[n-1].seq
	}
	return d.info.LastSeq
}

func (d *docState) exists() bool { return d.hasBucket || d.last() > d.info.LastSeq }

// metaCache is the committer's copy of a document's stored metadata, kept
// while the document has journal entries, so that an append does not have to
// open the document's bucket: with many documents in one commit that lookup
// was a fifth of the commit's time.
type metaCache struct {
	info      DocInfo
	hasBucket bool
}

func (s *Store) newBatch(tx *bolt.Tx) *batch {
	return &batch{
		s:       s,
		docs:    tx.Bucket(bucketDocs),
		journal: tx.Bucket(bucketJournal),
		now:     s.opts.Now(),
		open:    make(map[string]*docState),
		next:    s.jx.next, // the committer is the index's only writer
		jcount:  s.jcount.Load(),
	}
}

// doc returns the state of document id. A corrupt metadata record rejects the
// request and leaves the document untouched (never overwritten).
func (b *batch) doc(id string) (*docState, error) {
	if d, ok := b.open[id]; ok {
		return d, nil
	}
	d := &docState{id: id, info: DocInfo{ID: id}, refs: b.s.jx.docs[id]}
	if c, ok := b.s.metas[id]; ok {
		d.info, d.hasBucket = c.info, c.hasBucket
	} else if bkt := b.docs.Bucket([]byte(id)); bkt != nil {
		info, err := decodeMeta(id, bkt.Get(keyMeta))
		if err != nil {
			return nil, reject(err)
		}
		d.info, d.hasBucket = info, true
		if err := b.openBucket(d); err != nil {
			return nil, err
		}
	} else if b.docs.Get([]byte(id)) != nil {
		return nil, reject(fmt.Errorf("%w: document %q is a plain value", ErrCorrupt, id))
	}
	b.open[id] = d
	return d, nil
}

// openBucket opens the document's bucket and log in this transaction, if it
// has them and they are not open yet.
func (b *batch) openBucket(d *docState) error {
	if d.bkt != nil || !d.hasBucket {
		return nil
	}
	bkt := b.docs.Bucket([]byte(d.id))
	if bkt == nil {
		return fmt.Errorf("storage: document %q lost its bucket", d.id)
	}
	d.bkt = bkt
	if d.log = bkt.Bucket(keyLog); d.log != nil {
		d.log.FillPercent = logFillPercent
	} else if !d.info.Deleted {
		return reject(fmt.Errorf("%w: document %q has no log bucket", ErrCorrupt, d.id))
	}
	return nil
}

// live returns the state of an existing, not deleted document.
func (b *batch) live(id string) (*docState, error) {
	d, err := b.doc(id)
	switch {
	case err != nil:
		return nil, err
	case !d.exists():
		return nil, reject(fmt.Errorf("%w: %q", ErrNotFound, id))
	case d.info.Deleted:
		return nil, reject(fmt.Errorf("%w: %q", ErrDeleted, id))
	}
	return d, nil
}

// ensureBucket gives a document that so far lives only in the journal its
// bucket and metadata.
func (b *batch) ensureBucket(d *docState) error {
	if d.hasBucket {
		return b.openBucket(d)
	}
	created := b.now
	if l := d.live(); len(l) > 0 {
		created = fromUnixNano(l[0].nanos)
	}
	if err := b.recreate(d, true); err != nil {
		return err
	}
	d.info = DocInfo{ID: d.id, Created: created, Updated: created}
	return nil
}

// recreate replaces the document's bucket by an empty one (with an empty log
// unless withLog is false).
func (b *batch) recreate(d *docState, withLog bool) error {
	if d.hasBucket {
		if err := b.docs.DeleteBucket([]byte(d.id)); err != nil {
			return err
		}
	}
	bkt, err := b.docs.CreateBucket([]byte(d.id))
	if err != nil {
		return err
	}
	d.hasBucket, d.bkt, d.log, d.dirty = true, bkt, nil, true
	if withLog {
		if d.log, err = bkt.CreateBucket(keyLog); err != nil {
			return err
		}
		d.log.FillPercent = logFillPercent
	}
	return nil
}

// dropJournal deletes every journal entry of the document at once (Delete and
// Import; the rare operations that may not leave them to the cleaner).
func (b *batch) dropJournal(d *docState) error {
	for _, r := range d.refs {
		if err := b.journal.Delete(seqKey(r.gseq)); err != nil {
			return err
		}
		b.jcount--
	}
	d.refs, d.refsDirty = nil, true
	return nil
}

// flush writes the metadata of every document the batch changed.
func (b *batch) flush() error {
	for _, d := range b.open {
		if d.dirty {
			if err := b.openBucket(d); err != nil {
				return err
			}
			if err := d.bkt.Put(keyMeta, encodeMeta(&d.info)); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish makes the batch's journal changes visible to readers. It runs
// after the commit succeeded.
func (b *batch) publish() {
	x := &b.s.jx
	x.mu.Lock()
	for _, d := range b.open {
		if !d.refsDirty {
			continue
		}
		if len(d.refs) == 0 {
			delete(x.docs, d.id)
		} else {
			x.docs[d.id] = d.refs
		}
	}
	x.next = b.next
	x.mu.Unlock()
	b.s.jcount.Store(b.jcount)
	for _, d := range b.open {
		if len(d.refs) > 0 {
			b.s.metas[d.id] = metaCache{info: d.info, hasBucket: d.hasBucket}
		} else {
			delete(b.s.metas, d.id)
		}
	}
}

type appendOp struct {
	doc string
	val []byte // from newJournalValue; sealed here once the sequence is known
	n   int    // payload bytes
}

func (o *appendOp) size() int { return o.n }

func (o *appendOp) apply(b *batch) (uint64, error) {
	d, err := b.doc(o.doc)
	if err != nil {
		return 0, err
	}
	if d.info.Deleted {
		return 0, reject(fmt.Errorf("%w: %q", ErrDeleted, o.doc))
	}
	seq, gseq, nanos := d.last()+1, b.next, unixNano(b.now)
	sealJournalValue(o.val, seq, nanos)
	if err := b.journal.Put(seqKey(gseq), o.val); err != nil {
		return 0, err
	}
	b.next++
	b.jcount++
	d.refs = append(d.refs, jref{gseq: gseq, seq: seq, nanos: nanos, size: int64(o.n)})
	d.refsDirty = true
	return seq, nil
}

type compactOp struct {
	doc     string
	rec     []byte // sealed for through
	through uint64
}

func (o *compactOp) size() int { return len(o.rec) - 4 }

func (o *compactOp) apply(b *batch) (uint64, error) {
	d, err := b.live(o.doc)
	if err != nil {
		return 0, err
	}
	if last := d.last(); o.through > last || o.through < d.info.SnapshotSeq {
		return 0, reject(fmt.Errorf("%w: compact %q through %d: snapshot covers %d, last seq %d",
			ErrRange, o.doc, o.through, d.info.SnapshotSeq, last))
	}
	live := d.live()
	if err := b.ensureBucket(d); err != nil {
		return 0, err
	}
	if err := d.bkt.Put(keySnapshot, o.rec); err != nil {
		return 0, err
	}
	if o.through >= d.info.LastSeq {
		// The whole log is covered: dropping the bucket is cheaper than n
		// deletes. Journal entries up to through become dead; the cleaner
		// deletes them when they reach the journal's head.
		if err := d.bkt.DeleteBucket(keyLog); err != nil {
			return 0, err
		}
		if d.log, err = d.bkt.CreateBucket(keyLog); err != nil {
			return 0, err
		}
		d.log.FillPercent = logFillPercent
		for _, r := range live {
			if r.seq <= o.through {
				d.info.Updated = maxTime(d.info.Updated, r.nanos)
			}
		}
		d.info.LastSeq, d.info.LogEntries, d.info.LogBytes = o.through, 0, 0
	} else {
		// Collect first: deleting under a bbolt cursor can skip keys.
		var keys [][]byte
		var bytes int64
		c := d.log.Cursor()
		for k, v := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= o.through; k, v = c.Next() {
			keys = append(keys, k)
			bytes += int64(len(v) - 4)
		}
		for _, k := range keys {
			if err := d.log.Delete(k); err != nil {
				return 0, err
			}
		}
		d.info.LogEntries = max(d.info.LogEntries-int64(len(keys)), 0)
		d.info.LogBytes = max(d.info.LogBytes-bytes, 0)
	}
	if err := b.pruneVersions(d.bkt.Bucket(keyVersions)); err != nil {
		return 0, err
	}
	d.info.HasSnapshot = true
	d.info.SnapshotSeq = o.through
	d.info.SnapshotBytes = int64(o.size())
	d.info.Compactions++
	d.dirty = true
	return 0, nil
}

type deleteOp struct{ doc string }

func (o *deleteOp) size() int { return 0 }

func (o *deleteOp) apply(b *batch) (uint64, error) {
	d, err := b.live(o.doc)
	if err != nil {
		return 0, err
	}
	merged := mergeJournal(d.id, metaOrNil(d), d.live())
	if err := b.dropJournal(d); err != nil {
		return 0, err
	}
	// A tombstone is a bucket holding only the metadata record.
	if err := b.recreate(d, false); err != nil {
		return 0, err
	}
	d.info = DocInfo{
		ID: o.doc, Created: merged.Created, Updated: merged.Updated,
		Deleted: true, DeletedAt: b.now, LastSeq: merged.LastSeq, Compactions: merged.Compactions,
	}
	return 0, nil
}

// metaOrNil returns the document's stored metadata, or nil if it has none.
func metaOrNil(d *docState) *DocInfo {
	if !d.hasBucket {
		return nil
	}
	return &d.info
}
