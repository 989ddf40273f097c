package storage

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxProblems bounds Report.Problems.
const maxProblems = 100

// Report is the result of Verify.
type Report struct {
	Documents  int64    // live documents that loaded cleanly
	Deleted    int64    // tombstones
	LogEntries int64    // log entries read and checked
	Problems   []string // every problem found, up to 100; empty when the file is sound
}

func (r *Report) add(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify opens the store file at path read-only and checks it: bbolt's page
// consistency check (Tx.Check), the format marker, and then every document
// as Load reads it (metadata, snapshot and log checksums, sequence order,
// counts), plus the shape of every tombstone. It never writes.
//
// Point it at a copy made by Backup or BackupFile, or at a store no process
// has open: a store open for writing holds an exclusive lock, and Verify
// returns ErrLocked after Options.LockTimeout (5s by default).
//
// The error is nil only if the report has no problems; otherwise it wraps
// ErrCorrupt and names the first problem.
func Verify(ctx context.Context, path string, opts Options) (Report, error) {
	opts.ReadOnly = true
	s, err := Open(path, opts)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	err = s.view(ctx, func(tx *bolt.Tx) error {
		// Check's goroutine sends until it is done; drain it completely.
		for err := range tx.Check() {
			rep.add("bbolt: %v", err)
		}
		return verifyDocs(ctx, tx, &rep)
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil && len(rep.Problems) > 0 {
		err = fmt.Errorf("%w: %s: %d problem(s), first: %s", ErrCorrupt, path, len(rep.Problems), rep.Problems[0])
	}
	return rep, err
}

func verifyDocs(ctx context.Context, tx *bolt.Tx, rep *Report) error {
	c := tx.Bucket(bucketDocs).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := string(k)
		if v != nil {
			rep.add("document %q: plain value instead of a bucket", id)
			continue
		}
		if err := checkID(id); err != nil {
			rep.add("document bucket %x: %v", k, err)
			continue
		}
		info, bkt, err := readInfo(tx, id)
		if err != nil {
			rep.add("%v", err)
			continue
		}
		// Only the three known keys may exist.
		bc := bkt.Cursor()
		for key, _ := bc.First(); key != nil; key, _ = bc.Next() {
			if !bytes.Equal(key, keyMeta) && !bytes.Equal(key, keySnapshot) && !bytes.Equal(key, keyLog) {
				rep.add("document %q: unknown key %x", id, key)
			}
		}
		if info.Deleted {
			rep.Deleted++
			if bkt.Get(keySnapshot) != nil || bkt.Bucket(keyLog) != nil {
				rep.add("document %q: tombstone still holds a snapshot or log", id)
			}
			continue
		}
		if !info.HasSnapshot && bkt.Get(keySnapshot) != nil {
			rep.add("document %q: snapshot stored but metadata has none", id)
		}
		doc, err := loadTx(ctx, tx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.add("%v", err)
			continue
		}
		rep.Documents++
		rep.LogEntries += int64(len(doc.Tail))
	}
	return nil
}
