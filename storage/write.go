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
	return s.submit(ctx, &appendOp{doc: id, rec: newRecord(update)})
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
	p, err := s.submit(ctx, &compactOp{doc: id, rec: rec, through: through})
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
	p, err := s.submit(ctx, &deleteOp{doc: id})
	if err != nil {
		return err
	}
	_, err = p.Wait(ctx)
	return err
}

// batch is the committer's view of one write transaction. It caches the
// metadata of every document the batch touches and writes it once in flush.
type batch struct {
	docs *bolt.Bucket
	now  time.Time
	open map[string]*docState
}

// docState is one document inside a batch. bkt is nil while the document does
// not exist.
type docState struct {
	bkt   *bolt.Bucket
	log   *bolt.Bucket
	info  DocInfo
	dirty bool
}

func newBatch(tx *bolt.Tx, now time.Time) *batch {
	return &batch{docs: tx.Bucket(bucketDocs), now: now, open: make(map[string]*docState)}
}

// doc returns the state of document id. A corrupt metadata record rejects the
// request and leaves the document untouched (never overwritten).
func (b *batch) doc(id string) (*docState, error) {
	if d, ok := b.open[id]; ok {
		return d, nil
	}
	d := &docState{info: DocInfo{ID: id}}
	if bkt := b.docs.Bucket([]byte(id)); bkt != nil {
		info, err := decodeMeta(id, bkt.Get(keyMeta))
		if err != nil {
			return nil, reject(err)
		}
		d.bkt, d.info = bkt, info
		if d.log = bkt.Bucket(keyLog); d.log != nil {
			d.log.FillPercent = logFillPercent
		}
	} else if b.docs.Get([]byte(id)) != nil {
		return nil, reject(fmt.Errorf("%w: document %q is a plain value", ErrCorrupt, id))
	}
	b.open[id] = d
	return d, nil
}

// create (re)creates the document's bucket with an empty log.
func (b *batch) create(d *docState) error {
	if d.bkt != nil {
		if err := b.docs.DeleteBucket([]byte(d.info.ID)); err != nil {
			return err
		}
	}
	bkt, err := b.docs.CreateBucket([]byte(d.info.ID))
	if err != nil {
		return err
	}
	log, err := bkt.CreateBucket(keyLog)
	if err != nil {
		return err
	}
	log.FillPercent = logFillPercent
	d.bkt, d.log, d.dirty = bkt, log, true
	return nil
}

// flush writes the metadata of every document the batch changed.
func (b *batch) flush() error {
	for _, d := range b.open {
		if d.dirty {
			if err := d.bkt.Put(keyMeta, encodeMeta(&d.info)); err != nil {
				return err
			}
		}
	}
	return nil
}

// live returns the state of an existing, not deleted document.
func (b *batch) live(id string) (*docState, error) {
	d, err := b.doc(id)
	switch {
	case err != nil:
		return nil, err
	case d.bkt == nil:
		return nil, reject(fmt.Errorf("%w: %q", ErrNotFound, id))
	case d.info.Deleted:
		return nil, reject(fmt.Errorf("%w: %q", ErrDeleted, id))
	case d.log == nil:
		return nil, reject(fmt.Errorf("%w: document %q has no log bucket", ErrCorrupt, id))
	}
	return d, nil
}

type appendOp struct {
	doc string
	rec []byte // from newRecord; sealed here once the sequence is known
}

func (o *appendOp) size() int { return len(o.rec) - 4 }

func (o *appendOp) apply(b *batch) (uint64, error) {
	d, err := b.doc(o.doc)
	if err != nil {
		return 0, err
	}
	if d.info.Deleted {
		return 0, reject(fmt.Errorf("%w: %q", ErrDeleted, o.doc))
	}
	if d.bkt != nil && d.log == nil {
		return 0, reject(fmt.Errorf("%w: document %q has no log bucket", ErrCorrupt, o.doc))
	}
	if d.bkt == nil {
		if err := b.create(d); err != nil {
			return 0, err
		}
		d.info.Created = b.now
	}
	seq := d.info.LastSeq + 1
	sealRecord(o.rec, seq)
	if err := d.log.Put(seqKey(seq), o.rec); err != nil {
		return 0, err
	}
	d.info.LastSeq = seq
	d.info.LogEntries++
	d.info.LogBytes += int64(o.size())
	d.info.Updated = b.now
	d.dirty = true
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
	if o.through > d.info.LastSeq || o.through < d.info.SnapshotSeq {
		return 0, reject(fmt.Errorf("%w: compact %q through %d: snapshot covers %d, last seq %d",
			ErrRange, o.doc, o.through, d.info.SnapshotSeq, d.info.LastSeq))
	}
	if err := d.bkt.Put(keySnapshot, o.rec); err != nil {
		return 0, err
	}
	var n, bytes int64
	if o.through == d.info.LastSeq {
		// Everything is covered: dropping the bucket is cheaper than n deletes.
		n, bytes = d.info.LogEntries, d.info.LogBytes
		if err := d.bkt.DeleteBucket(keyLog); err != nil {
			return 0, err
		}
		if d.log, err = d.bkt.CreateBucket(keyLog); err != nil {
			return 0, err
		}
		d.log.FillPercent = logFillPercent
	} else {
		// Collect first: deleting under a bbolt cursor can skip keys.
		var keys [][]byte
		c := d.log.Cursor()
		for k, v := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= o.through; k, v = c.Next() {
			keys = append(keys, k)
			bytes += int64(len(v) - 4)
		}
		n = int64(len(keys))
		for _, k := range keys {
			if err := d.log.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	d.info.HasSnapshot = true
	d.info.SnapshotSeq = o.through
	d.info.SnapshotBytes = int64(o.size())
	d.info.LogEntries = max(d.info.LogEntries-n, 0)
	d.info.LogBytes = max(d.info.LogBytes-bytes, 0)
	d.info.Compactions++
	d.dirty = true
	return 0, nil
}

type deleteOp struct{ doc string }

func (o *deleteOp) size() int { return 0 }

func (o *deleteOp) apply(b *batch) (uint64, error) {
	d, err := b.doc(o.doc)
	if err != nil {
		return 0, err
	}
	switch {
	case d.bkt == nil:
		return 0, reject(fmt.Errorf("%w: %q", ErrNotFound, o.doc))
	case d.info.Deleted:
		return 0, reject(fmt.Errorf("%w: %q", ErrDeleted, o.doc))
	}
	if err := b.create(d); err != nil {
		return 0, err
	}
	// A tombstone is a bucket holding only the metadata record.
	if err := d.bkt.DeleteBucket(keyLog); err != nil {
		return 0, err
	}
	d.log = nil
	d.info = DocInfo{
		ID: o.doc, Created: d.info.Created, Updated: d.info.Updated,
		Deleted: true, DeletedAt: b.now, LastSeq: d.info.LastSeq, Compactions: d.info.Compactions,
	}
	return 0, nil
}
