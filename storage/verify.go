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
	Documents      int64    // live documents that loaded cleanly
	Deleted        int64    // tombstones
	LogEntries     int64    // log entries read and checked (own logs and journal)
	Versions       int64    // version records read and checked
	JournalEntries int64    // entries in the journal, live or dead
	Problems       []string // every problem found, up to 100; empty when the file is sound
}

func (r *Report) add(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify opens the store file at path read-only and checks it: the format
// marker and every journal entry (as Open always does), bbolt's page
// consistency check (Tx.Check), the shape of every document bucket, and then
// every document as Load reads it (metadata, snapshot, log and journal
// checksums, sequences without gaps, counts) and every version record
// (checksum, fields, sequence). It never writes.
//
// Point it at a copy made by Backup or BackupFile, or at a store no process
// has open: a store open for writing holds an exclusive lock, and Verify
// returns ErrLocked after Options.LockTimeout (5s by default).
//
// The error is nil only if the report has no problems; otherwise it wraps
// ErrCorrupt and names the first problem.
//
// Before anything maps the file, CheckFile compares it with its own meta
// pages: a truncated file, a damaged meta page, an empty file or a file that
// is not a bbolt database is ErrCorrupt ("truncated or corrupt: …"), never a
// SIGBUS. Then every page reachable from the meta page is read with ordinary
// reads and its page ids, overflow counts and element bounds checked
// (walkBoltFile), because bbolt's page check (Tx.Check) reads them through
// the memory map in a goroutine of its own, where a fault cannot be
// recovered. A file damaged in a way that still makes bbolt panic or fault
// in Verify's own goroutine gets ErrCorrupt (debug.SetPanicOnFault).
func Verify(ctx context.Context, path string, opts Options) (rep Report, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: truncated or corrupt: %s: reading the file failed: %v", ErrCorrupt, path, p)
		}
	}()
	defer faultsAsPanics()()
	if err := CheckFile(path); err != nil {
		return Report{}, err
	}
	// Every page bbolt will read, checked with ordinary reads first: a bad
	// page id would otherwise fault inside Tx.Check's goroutine.
	if err := walkBoltFile(path); err != nil {
		return Report{}, err
	}
	opts.ReadOnly = true
	s, err := Open(path, opts)
	if err != nil {
		return Report{}, err
	}
	rep.JournalEntries = s.jcount.Load()
	err = s.readView(ctx, "", func(tx *bolt.Tx, v *jview) error {
		// Check's goroutine sends until it is done; drain it completely.
		for err := range tx.Check() {
			rep.add("bbolt: %v", err)
		}
		return verifyDocs(ctx, tx, v, &rep)
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil && len(rep.Problems) > 0 {
		err = fmt.Errorf("%w: %s: %d problem(s), first: %s", ErrCorrupt, path, len(rep.Problems), rep.Problems[0])
	}
	return rep, err
}

func verifyDocs(ctx context.Context, tx *bolt.Tx, v *jview, rep *Report) error {
	// Shape of every bucket under docs.
	c := tx.Bucket(bucketDocs).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := string(k)
		if val != nil {
			rep.add("document %q: plain value instead of a bucket", id)
			continue
		}
		if err := checkID(id); err != nil {
			rep.add("document bucket %x: %v", k, err)
			continue
		}
		bkt := tx.Bucket(bucketDocs).Bucket(k)
		bc := bkt.Cursor()
		for key, kv := bc.First(); key != nil; key, kv = bc.Next() {
			switch {
			case bytes.Equal(key, keyVersions) && kv == nil:
				verifyVersions(id, bkt.Bucket(keyVersions), rep)
			case !bytes.Equal(key, keyMeta) && !bytes.Equal(key, keySnapshot) && !bytes.Equal(key, keyLog):
				rep.add("document %q: unknown key %x", id, key)
			}
		}
		info, err := decodeMeta(id, bkt.Get(keyMeta))
		if err != nil {
			continue // reported when the document is loaded below
		}
		switch {
		case info.Deleted && (bkt.Get(keySnapshot) != nil || bkt.Bucket(keyLog) != nil || bkt.Bucket(keyVersions) != nil):
			rep.add("document %q: tombstone still holds a snapshot, log or versions", id)
		case !info.HasSnapshot && bkt.Get(keySnapshot) != nil:
			rep.add("document %q: snapshot stored but metadata has none", id)
		}
	}
	// Every document, including those that live in the journal only, loads.
	return eachDocID(ctx, tx, v, func(id string) {
		d, err := readDoc(tx, v, id)
		if err == nil && d.info.Deleted {
			rep.Deleted++
			return
		}
		var doc *Document
		if err == nil {
			doc, err = loadTx(ctx, tx, v, id)
		}
		if err != nil {
			rep.add("%v", err)
			return
		}
		rep.Documents++
		rep.LogEntries += int64(len(doc.Tail))
	})
}

// eachDocID calls fn with the id of every document bucket with a valid id
// and of every document that lives in the journal only.
func eachDocID(ctx context.Context, tx *bolt.Tx, v *jview, fn func(id string)) error {
	docs := tx.Bucket(bucketDocs)
	c := docs.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if val == nil && checkID(string(k)) == nil && docs.Bucket(k).Get(keyMeta) != nil {
			fn(string(k))
		}
	}
	for id := range v.refs {
		if docs.Get([]byte(id)) == nil && docs.Bucket([]byte(id)) == nil {
			fn(id)
		}
	}
	return nil
}
