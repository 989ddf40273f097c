package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Entry is one log entry: an update as it was appended, and its sequence.
type Entry struct {
	Seq  uint64
	Data []byte
}

// Document is everything stored for one document: apply Snapshot (if any),
// then every entry of Tail in order, to rebuild its state.
type Document struct {
	Info     DocInfo
	Snapshot []byte  // nil unless Info.HasSnapshot; covers entries <= Info.SnapshotSeq
	Tail     []Entry // entries with Seq > Info.SnapshotSeq, ascending
	// Versions, ascending by Seq, with their snapshots: set only by
	// ExportWith with Versions (in the stream) and by Import's decoder.
	Versions []Version
}

// ctxCheckEvery is how many log entries a read visits between ctx checks.
const ctxCheckEvery = 256

// readAttempts bounds how often a read starts over when its copy of the
// journal index and its transaction disagree. That happens only when an
// Import or Delete of the same document commits between the two; a real
// inconsistency on disk persists and is reported as ErrCorrupt.
const readAttempts = 4

func retryRead[T any](fn func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		t, err := fn()
		if err == nil || i == readAttempts || !errors.Is(err, ErrCorrupt) {
			return t, err
		}
	}
}

// readView runs fn in a read transaction with a journal view of document
// only ("" for all) completed for that transaction.
func (s *Store) readView(ctx context.Context, only string, fn func(*bolt.Tx, *jview) error) error {
	v := s.jx.view(only)
	return s.view(ctx, func(tx *bolt.Tx) error {
		if err := v.complete(tx); err != nil {
			return err
		}
		return fn(tx, v)
	})
}

// docTx is one document as a read transaction sees it.
type docTx struct {
	bkt  *bolt.Bucket // nil if the document has no bucket (it lives in the journal only)
	meta *DocInfo     // stored metadata; nil without a bucket
	live []jref       // the document's journal tail
	info DocInfo      // meta and journal tail merged
}

// readDoc returns document id as tx sees it. A document with neither a
// bucket nor a journal tail is ErrNotFound; a tombstone is returned without
// error.
func readDoc(tx *bolt.Tx, v *jview, id string) (docTx, error) {
	var d docTx
	var w uint64
	if bkt := tx.Bucket(bucketDocs).Bucket([]byte(id)); bkt != nil {
		info, err := decodeMeta(id, bkt.Get(keyMeta))
		if err != nil {
			return d, err
		}
		d.bkt, d.meta, w = bkt, &info, info.LastSeq
	}
	live, err := liveRefs(id, v.refs[id], w)
	switch {
	case err != nil:
		return d, err
	case d.meta == nil && len(live) == 0:
		return d, fmt.Errorf("%w: %q", ErrNotFound, id)
	case d.meta != nil && d.meta.Deleted && len(live) > 0:
		return d, fmt.Errorf("%w: deleted document %q has journal entries", ErrCorrupt, id)
	}
	d.live, d.info = live, mergeJournal(id, d.meta, live)
	return d, nil
}

// Load returns document id's snapshot and log tail, read in one consistent
// transaction. It returns ErrNotFound for a document never written and
// ErrDeleted for a tombstone; it never creates a document. Every record's
// checksum, the sequence order and the metadata's counts are checked, and a
// mismatch returns an error wrapping ErrCorrupt (the stored bytes are left as
// they are). The returned slices belong to the caller.
func (s *Store) Load(ctx context.Context, id string) (*Document, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return retryRead(func() (*Document, error) {
		var doc *Document
		err := s.readView(ctx, id, func(tx *bolt.Tx, v *jview) error {
			var err error
			doc, err = loadTx(ctx, tx, v, id)
			return err
		})
		return doc, err
	})
}

func loadTx(ctx context.Context, tx *bolt.Tx, v *jview, id string) (*Document, error) {
	d, err := readDoc(tx, v, id)
	if err != nil {
		return nil, err
	}
	if d.info.Deleted {
		return nil, fmt.Errorf("%w: %q", ErrDeleted, id)
	}
	doc := &Document{Info: d.info}
	if m := d.meta; m != nil {
		if m.HasSnapshot {
			rec := d.bkt.Get(keySnapshot)
			if rec == nil {
				return nil, fmt.Errorf("%w: document %q: snapshot missing", ErrCorrupt, id)
			}
			if doc.Snapshot, err = decodeRecord(m.SnapshotSeq, rec); err != nil {
				return nil, fmt.Errorf("document %q snapshot: %w", id, err)
			}
			if int64(len(doc.Snapshot)) != m.SnapshotBytes {
				return nil, fmt.Errorf("%w: document %q: snapshot of %d bytes, metadata says %d",
					ErrCorrupt, id, len(doc.Snapshot), m.SnapshotBytes)
			}
		}
		if doc.Tail, err = readLog(ctx, d.bkt, *m, m.SnapshotSeq, 0); err != nil {
			return nil, err
		}
		var n int64
		for _, e := range doc.Tail {
			n += int64(len(e.Data))
		}
		if int64(len(doc.Tail)) != m.LogEntries || n != m.LogBytes {
			return nil, fmt.Errorf("%w: document %q: log has %d entries of %d bytes, metadata says %d of %d",
				ErrCorrupt, id, len(doc.Tail), n, m.LogEntries, m.LogBytes)
		}
	}
	tail, err := readJournal(ctx, tx, id, d.live, 0, 0)
	if err != nil {
		return nil, err
	}
	doc.Tail = append(doc.Tail, tail...)
	return doc, nil
}

// readJournal fetches up to limit (0: all) of the given journal entries with
// sequence > after.
func readJournal(ctx context.Context, tx *bolt.Tx, id string, refs []jref, after uint64, limit int) ([]Entry, error) {
	j := tx.Bucket(bucketJournal)
	var out []Entry
	for i, r := range refs {
		if r.seq <= after {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		if i%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v := j.Get(seqKey(r.gseq))
		if v == nil {
			return nil, fmt.Errorf("%w: document %q: journal entry %d missing", ErrCorrupt, id, r.gseq)
		}
		e, err := decodeJournalValue(v)
		if err != nil {
			return nil, fmt.Errorf("document %q journal entry %d: %w", id, r.gseq, err)
		}
		if e.doc != id || e.seq != r.seq {
			return nil, fmt.Errorf("%w: journal entry %d is %q/%d, want %q/%d", ErrCorrupt, r.gseq, e.doc, e.seq, id, r.seq)
		}
		out = append(out, Entry{Seq: e.seq, Data: bytes.Clone(e.payload)})
	}
	return out, nil
}

// readLog returns up to limit (0: all) entries of a document's own log with
// sequence > after, checking keys, that sequences follow each other without
// a gap, and checksums.
func readLog(ctx context.Context, bkt *bolt.Bucket, info DocInfo, after uint64, limit int) ([]Entry, error) {
	log := bkt.Bucket(keyLog)
	if log == nil {
		return nil, fmt.Errorf("%w: document %q: log bucket missing", ErrCorrupt, info.ID)
	}
	var out []Entry
	prev := after
	c := log.Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		if limit > 0 && len(out) == limit {
			break
		}
		if len(out)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if len(k) != 8 || v == nil {
			return nil, fmt.Errorf("%w: document %q: bad log key %x", ErrCorrupt, info.ID, k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != prev+1 || seq > info.LastSeq {
			return nil, fmt.Errorf("%w: document %q: log seq %d, want %d (log ends at %d)",
				ErrCorrupt, info.ID, seq, prev+1, info.LastSeq)
		}
		data, err := decodeRecord(seq, v)
		if err != nil {
			return nil, fmt.Errorf("document %q log seq %d: %w", info.ID, seq, err)
		}
		out = append(out, Entry{Seq: seq, Data: data})
		prev = seq
	}
	return out, nil
}

// Since returns up to limit (0: no limit) log entries of document id with
// sequence > after, in order. If some of them were folded into the snapshot
// it returns ErrCompacted: load the whole document instead.
func (s *Store) Since(ctx context.Context, id string, after uint64, limit int) ([]Entry, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return retryRead(func() ([]Entry, error) {
		var out []Entry
		err := s.readView(ctx, id, func(tx *bolt.Tx, v *jview) error {
			d, err := readDoc(tx, v, id)
			switch {
			case err != nil:
				return err
			case d.info.Deleted:
				return fmt.Errorf("%w: %q", ErrDeleted, id)
			case after < d.info.SnapshotSeq:
				return fmt.Errorf("%w: %q after %d (snapshot covers %d)", ErrCompacted, id, after, d.info.SnapshotSeq)
			}
			if d.meta != nil && after < d.meta.LastSeq {
				if out, err = readLog(ctx, d.bkt, *d.meta, after, limit); err != nil {
					return err
				}
			}
			if limit == 0 || len(out) < limit {
				more, err := readJournal(ctx, tx, id, d.live, after, limit-len(out))
				if err != nil {
					return err
				}
				out = append(out, more...)
			}
			return nil
		})
		return out, err
	})
}

// Stat returns document id's metadata. A tombstone is returned with
// Deleted set and a nil error; a document never written is ErrNotFound.
func (s *Store) Stat(ctx context.Context, id string) (DocInfo, error) {
	if err := checkID(id); err != nil {
		return DocInfo{}, err
	}
	return retryRead(func() (DocInfo, error) {
		var info DocInfo
		err := s.readView(ctx, id, func(tx *bolt.Tx, v *jview) error {
			d, err := readDoc(tx, v, id)
			info = d.info
			return err
		})
		return info, err
	})
}

// ListOptions selects documents for List.
type ListOptions struct {
	After          string // start after this id (ids are in byte order); "" starts at the beginning
	Limit          int    // at most this many results; 0 means no limit
	IncludeDeleted bool   // include tombstones
}

// List returns the metadata of documents in id order. Page through a large
// store by passing the last id returned as the next After.
func (s *Store) List(ctx context.Context, opts ListOptions) ([]DocInfo, error) {
	return retryRead(func() ([]DocInfo, error) {
		var out []DocInfo
		err := s.readView(ctx, "", func(tx *bolt.Tx, v *jview) error {
			return eachDoc(ctx, tx, v, opts.After, func(d docTx) bool {
				if !d.info.Deleted || opts.IncludeDeleted {
					out = append(out, d.info)
				}
				return opts.Limit == 0 || len(out) < opts.Limit
			})
		})
		return out, err
	})
}

// eachDoc calls fn for every document with an id after `after`, in id order,
// until fn returns false: those with a bucket and those that so far live in
// the journal only.
func eachDoc(ctx context.Context, tx *bolt.Tx, v *jview, after string, fn func(docTx) bool) error {
	docs := tx.Bucket(bucketDocs)
	var jonly []string
	for id := range v.refs {
		if id > after && docs.Bucket([]byte(id)) == nil {
			jonly = append(jonly, id)
		}
	}
	slices.Sort(jonly)
	c := docs.Cursor()
	k, _ := c.Seek([]byte(after))
	if k != nil && after != "" && string(k) == after {
		k, _ = c.Next()
	}
	for i := 0; k != nil || len(jonly) > 0; i++ {
		if i%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var id string
		if k != nil && (len(jonly) == 0 || string(k) < jonly[0]) {
			id = string(k)
			k, _ = c.Next()
		} else {
			id, jonly = jonly[0], jonly[1:]
		}
		d, err := readDoc(tx, v, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !fn(d) {
			return nil
		}
	}
	return nil
}

// Stats describes the whole store.
type Stats struct {
	Documents      int64 // live documents
	Deleted        int64 // tombstones
	SnapshotBytes  int64
	LogEntries     int64
	LogBytes       int64
	FileBytes      int64 // bytes of the database as of the read (what Backup writes)
	JournalEntries int64 // entries in the journal, live or dead (see doc.go)

	// Committer counters since Open.
	Commits       uint64        // successful transactions
	Requests      uint64        // requests in those transactions
	MaxBatch      uint64        // most requests in one transaction
	CommitTime    time.Duration // total time spent in Update (apply, write, fsync)
	CommittedData uint64        // payload bytes committed
	CleanCommits  uint64        // journal-cleaning transactions without requests (idle time, Close); not in Commits
}

// Stats sums the metadata of every document (one pass over the metadata
// records and the journal index) and adds the committer's counters.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st, err := retryRead(func() (Stats, error) {
		var st Stats
		err := s.readView(ctx, "", func(tx *bolt.Tx, v *jview) error {
			st.FileBytes = tx.Size()
			return eachDoc(ctx, tx, v, "", func(d docTx) bool {
				if d.info.Deleted {
					st.Deleted++
					return true
				}
				st.Documents++
				st.SnapshotBytes += d.info.SnapshotBytes
				st.LogEntries += d.info.LogEntries
				st.LogBytes += d.info.LogBytes
				return true
			})
		})
		return st, err
	})
	st.JournalEntries = s.jcount.Load()
	st.Commits = s.stats.commits.Load()
	st.Requests = s.stats.requests.Load()
	st.MaxBatch = s.stats.maxBatch.Load()
	st.CommitTime = time.Duration(s.stats.nanos.Load())
	st.CommittedData = s.stats.bytes.Load()
	st.CleanCommits = s.stats.cleanCommits.Load()
	return st, err
}
