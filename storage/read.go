package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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
}

// ctxCheckEvery is how many log entries a read visits between ctx checks.
const ctxCheckEvery = 256

// Load returns document id's snapshot and log tail, read in one consistent
// transaction. It returns ErrNotFound for a document never written and
// ErrDeleted for a tombstone; it never creates a document. Every record's
// checksum and the metadata's counts are checked, and a mismatch returns an
// error wrapping ErrCorrupt (the stored bytes are left as they are). The
// returned slices belong to the caller.
func (s *Store) Load(ctx context.Context, id string) (*Document, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var doc *Document
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		doc, err = loadTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// readInfo returns the metadata and bucket of document id; a missing document
// is ErrNotFound. Tombstones are returned without error.
func readInfo(tx *bolt.Tx, id string) (DocInfo, *bolt.Bucket, error) {
	bkt := tx.Bucket(bucketDocs).Bucket([]byte(id))
	if bkt == nil {
		return DocInfo{}, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	info, err := decodeMeta(id, bkt.Get(keyMeta))
	return info, bkt, err
}

func loadTx(ctx context.Context, tx *bolt.Tx, id string) (*Document, error) {
	info, bkt, err := readInfo(tx, id)
	if err != nil {
		return nil, err
	}
	if info.Deleted {
		return nil, fmt.Errorf("%w: %q", ErrDeleted, id)
	}
	doc := &Document{Info: info}
	if info.HasSnapshot {
		rec := bkt.Get(keySnapshot)
		if rec == nil {
			return nil, fmt.Errorf("%w: document %q: snapshot missing", ErrCorrupt, id)
		}
		if doc.Snapshot, err = decodeRecord(info.SnapshotSeq, rec); err != nil {
			return nil, fmt.Errorf("document %q snapshot: %w", id, err)
		}
		if int64(len(doc.Snapshot)) != info.SnapshotBytes {
			return nil, fmt.Errorf("%w: document %q: snapshot of %d bytes, metadata says %d",
				ErrCorrupt, id, len(doc.Snapshot), info.SnapshotBytes)
		}
	}
	if doc.Tail, err = readLog(ctx, bkt, info, info.SnapshotSeq, 0); err != nil {
		return nil, err
	}
	var n int64
	for _, e := range doc.Tail {
		n += int64(len(e.Data))
	}
	if int64(len(doc.Tail)) != info.LogEntries || n != info.LogBytes {
		return nil, fmt.Errorf("%w: document %q: log has %d entries of %d bytes, metadata says %d of %d",
			ErrCorrupt, id, len(doc.Tail), n, info.LogEntries, info.LogBytes)
	}
	return doc, nil
}

// readLog returns up to limit (0: all) entries with sequence > after,
// checking keys, order and checksums.
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
		if seq <= prev || seq <= info.SnapshotSeq || seq > info.LastSeq {
			return nil, fmt.Errorf("%w: document %q: log seq %d outside (%d, %d]",
				ErrCorrupt, info.ID, seq, max(prev, info.SnapshotSeq), info.LastSeq)
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
	var out []Entry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		info, bkt, err := readInfo(tx, id)
		switch {
		case err != nil:
			return err
		case info.Deleted:
			return fmt.Errorf("%w: %q", ErrDeleted, id)
		case after < info.SnapshotSeq:
			return fmt.Errorf("%w: %q after %d (snapshot covers %d)", ErrCompacted, id, after, info.SnapshotSeq)
		}
		out, err = readLog(ctx, bkt, info, after, limit)
		return err
	})
	return out, err
}

// Stat returns document id's metadata. A tombstone is returned with
// Deleted set and a nil error; a document never written is ErrNotFound.
func (s *Store) Stat(ctx context.Context, id string) (DocInfo, error) {
	if err := checkID(id); err != nil {
		return DocInfo{}, err
	}
	var info DocInfo
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		info, _, err = readInfo(tx, id)
		return err
	})
	return info, err
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
	var out []DocInfo
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDocs).Cursor()
		k, _ := c.First()
		if opts.After != "" {
			k, _ = c.Seek([]byte(opts.After))
			if k != nil && bytes.Equal(k, []byte(opts.After)) {
				k, _ = c.Next()
			}
		}
		for i := 0; k != nil; k, _ = c.Next() {
			if opts.Limit > 0 && len(out) == opts.Limit {
				break
			}
			if i++; i%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			info, _, err := readInfo(tx, string(k))
			if err != nil {
				return err
			}
			if info.Deleted && !opts.IncludeDeleted {
				continue
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

// Stats describes the whole store.
type Stats struct {
	Documents     int64 // live documents
	Deleted       int64 // tombstones
	SnapshotBytes int64
	LogEntries    int64
	LogBytes      int64
	FileBytes     int64 // size of the database file as of the read

	// Committer counters since Open.
	Commits       uint64        // successful transactions
	Requests      uint64        // requests in those transactions
	MaxBatch      uint64        // most requests in one transaction
	CommitTime    time.Duration // total time spent in Update (apply, write, fsync)
	CommittedData uint64        // payload bytes committed
}

// Stats sums the metadata of every document (one pass over the metadata
// records) and adds the committer's counters.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.view(ctx, func(tx *bolt.Tx) error {
		st.FileBytes = tx.Size()
		c := tx.Bucket(bucketDocs).Cursor()
		i := 0
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i++; i%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			info, _, err := readInfo(tx, string(k))
			if err != nil {
				return err
			}
			if info.Deleted {
				st.Deleted++
				continue
			}
			st.Documents++
			st.SnapshotBytes += info.SnapshotBytes
			st.LogEntries += info.LogEntries
			st.LogBytes += info.LogBytes
		}
		return nil
	})
	st.Commits = s.stats.commits.Load()
	st.Requests = s.stats.requests.Load()
	st.MaxBatch = s.stats.maxBatch.Load()
	st.CommitTime = time.Duration(s.stats.nanos.Load())
	st.CommittedData = s.stats.bytes.Load()
	return st, err
}
