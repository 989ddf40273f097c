package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database file to w while
// writes continue (bbolt's Tx.WriteTo inside one read transaction). The copy
// is a valid store: Open or Verify it. It returns the number of bytes
// written. A slow w keeps the read transaction open, and the file may grow
// while it is open because pages it can see are not reused.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	return n, err
}

// BackupFile writes a Backup to path: into a temporary file in the same
// directory, fsynced, then renamed over path, so path is always either the
// old copy or a complete new one.
func (s *Store) BackupFile(ctx context.Context, path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()           // already failing; the first error is the one to report
			_ = os.Remove(f.Name()) // best effort: do not leave a partial copy behind
		}
	}()
	if _, err = s.Backup(ctx, f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	return syncPath(filepath.Dir(path))
}

// ctxWriter stops a long copy once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Export writes document id (metadata, snapshot and log tail, read in one
// transaction) to w in the export format described in doc.go. A tombstone is
// ErrDeleted.
func (s *Store) Export(ctx context.Context, id string, w io.Writer) error {
	return s.ExportWith(ctx, id, w, ExportOptions{})
}

// WriteExport writes doc, as another store holds it, in the export format
// Import reads: it is how a document from elsewhere (cluster mode's
// replicated store) enters a bbolt store. doc.Info's ID, Created, Updated,
// LastSeq, HasSnapshot and SnapshotSeq are written (the counts follow from
// the data); the tail's sequences must be SnapshotSeq+1 … LastSeq, or
// Import refuses the stream.
func WriteExport(w io.Writer, doc *Document) error {
	if err := checkID(doc.Info.ID); err != nil {
		return err
	}
	if len(doc.Tail) > MaxImportEntries {
		return fmt.Errorf("%w: %q has %d log entries (max %d for export)", ErrTooLarge, doc.Info.ID, len(doc.Tail), MaxImportEntries)
	}
	return encodeExport(w, doc)
}

// ExportOptions controls ExportWith.
type ExportOptions struct {
	// Versions includes the document's versions (at most MaxImportVersions;
	// off by default, so exports of documents with long histories stay
	// small). Import stores them with the document.
	Versions bool
}

// ExportWith is Export with options.
func (s *Store) ExportWith(ctx context.Context, id string, w io.Writer, opts ExportOptions) error {
	doc, err := s.Load(ctx, id)
	if err != nil {
		return err
	}
	if opts.Versions {
		if doc.Versions, err = s.allVersions(ctx, id); err != nil {
			return err
		}
	}
	if len(doc.Tail) > MaxImportEntries {
		return fmt.Errorf("%w: %q has %d log entries (max %d for export); compact it first",
			ErrTooLarge, id, len(doc.Tail), MaxImportEntries)
	}
	return encodeExport(ctxWriter{ctx: ctx, w: w}, doc)
}

// ImportOptions controls Import.
type ImportOptions struct {
	// ID stores the document under this id instead of the one in the export.
	ID string
	// Replace overwrites an existing document or tombstone. Without it,
	// importing onto an existing id returns ErrExists (ErrDeleted for a
	// tombstone). Sequence numbers come from the export, so a replaced
	// document's LastSeq can go down.
	Replace bool
	// Check, if set, is called with the decoded document (after the
	// structure, limits and checksum passed, before anything is stored);
	// an error refuses the import and nothing is written. storage stores
	// opaque bytes: this is where a caller applies the limits its own
	// loader enforces (for collabd, crdt.LoadSnapshot of the snapshot and
	// the tail applied under the server's crdt.Limits), so that whatever
	// Import stores can be loaded again.
	Check func(*Document) error
}

// Import reads one document in the export format from r, checks it
// completely (structure, limits, checksum) and then stores it in one
// transaction. A bad stream returns a *DecodeError wrapping ErrCorrupt or
// ErrTooLarge, and nothing is written. It returns the stored metadata.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (DocInfo, error) {
	if opts.ID != "" {
		if err := checkID(opts.ID); err != nil {
			return DocInfo{}, err
		}
	}
	if s.opts.ReadOnly {
		return DocInfo{}, ErrReadOnly
	}
	doc, err := decodeExport(ctxReader{ctx: ctx, r: r}, s.exportLimits())
	if err != nil {
		return DocInfo{}, err
	}
	if opts.ID != "" {
		doc.Info.ID = opts.ID
	}
	if opts.Check != nil {
		if err := opts.Check(doc); err != nil {
			return DocInfo{}, fmt.Errorf("storage: import of %q refused: %w", doc.Info.ID, err)
		}
	}
	op := &importOp{doc: doc, replace: opts.Replace}
	if doc.Info.HasSnapshot {
		op.snap = encodeRecord(doc.Info.SnapshotSeq, doc.Snapshot)
		op.bytes += len(doc.Snapshot)
	}
	op.recs = make([][]byte, len(doc.Tail))
	op.seqs = make([]uint64, len(doc.Tail))
	for i, e := range doc.Tail {
		op.recs[i], op.seqs[i] = encodeRecord(e.Seq, e.Data), e.Seq
		op.bytes += len(e.Data)
	}
	for _, v := range doc.Versions {
		op.vrecs = append(op.vrecs, encodeVersionRecord(v.Seq, unixNano(v.Time), &NewVersion{
			Version: v.Version, Kind: v.Kind, Label: v.Label, Authors: v.Authors, Snapshot: v.Snapshot}))
		op.vseqs = append(op.vseqs, v.Seq)
		op.bytes += len(v.Snapshot)
	}
	doc.Snapshot, doc.Tail, doc.Versions = nil, nil, nil // the records hold the bytes now
	p, err := s.submit(ctx, op, true)
	if err != nil {
		return DocInfo{}, err
	}
	if _, err := p.Wait(ctx); err != nil {
		return DocInfo{}, err
	}
	return op.info, nil
}

func (s *Store) exportLimits() exportLimits {
	return exportLimits{
		maxEntries:  MaxImportEntries,
		maxSnapshot: s.opts.MaxSnapshotBytes,
		maxUpdate:   s.opts.MaxUpdateBytes,
		maxTotal:    s.opts.MaxImportBytes,
	}
}

// ctxReader stops a long import once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// importOp stores a decoded export. Its records are sealed before submission
// because the export carries the sequence numbers.
type importOp struct {
	doc     *Document // Info only; the bytes are in snap and recs
	snap    []byte
	recs    [][]byte
	seqs    []uint64 // sequence of each record in recs
	vrecs   [][]byte // version records (sealed)
	vseqs   []uint64 // and their sequences, ascending
	bytes   int
	replace bool
	info    DocInfo // result, valid once the request completed without error
}

func (o *importOp) size() int { return o.bytes }

func (o *importOp) apply(b *batch) (uint64, error) {
	in := &o.doc.Info
	d, err := b.doc(in.ID)
	if err != nil {
		return 0, err
	}
	if d.exists() && !o.replace {
		if d.info.Deleted {
			return 0, reject(fmt.Errorf("%w: %q (import with Replace to restore it)", ErrDeleted, in.ID))
		}
		return 0, reject(fmt.Errorf("%w: %q", ErrExists, in.ID))
	}
	// Old journal entries go now: their sequences could collide with the
	// imported ones.
	if err := b.dropJournal(d); err != nil {
		return 0, err
	}
	if err := b.recreate(d, true); err != nil {
		return 0, err
	}
	info := DocInfo{
		ID: in.ID, Created: in.Created, Updated: in.Updated, LastSeq: in.LastSeq,
		HasSnapshot: in.HasSnapshot, SnapshotSeq: in.SnapshotSeq, SnapshotBytes: in.SnapshotBytes,
		LogEntries: in.LogEntries, LogBytes: in.LogBytes,
	}
	if info.Created.IsZero() {
		info.Created = b.now
	}
	if info.Updated.IsZero() {
		info.Updated = b.now
	}
	if o.snap != nil {
		if err := d.bkt.Put(keySnapshot, o.snap); err != nil {
			return 0, err
		}
	}
	// Entries arrive in key order, so bbolt appends to the rightmost page.
	for i, rec := range o.recs {
		if err := d.log.Put(seqKey(o.seqs[i]), rec); err != nil {
			return 0, err
		}
	}
	if len(o.vrecs) > 0 {
		if err := b.bumpFormat(); err != nil {
			return 0, err
		}
		vb, err := d.bkt.CreateBucket(keyVersions)
		if err != nil {
			return 0, err
		}
		for i, rec := range o.vrecs {
			if err := vb.Put(seqKey(o.vseqs[i]), rec); err != nil {
				return 0, err
			}
		}
		if err := vb.SetSequence(o.vseqs[len(o.vseqs)-1]); err != nil {
			return 0, err
		}
	}
	d.info, d.dirty = info, true
	o.info = info
	return 0, nil
}
