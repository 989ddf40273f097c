package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Export format, version 1 (see doc.go). All integers are Go varints
// (encoding/binary); "uvarint" is unsigned, "varint" is zig-zag signed.
//
//	magic    8 bytes  "collabd\x00"
//	version  1 byte   1
//	id       uvarint length, then that many bytes (UTF-8, 1..MaxIDBytes)
//	created  varint   Unix nanoseconds, 0 = unknown
//	updated  varint   Unix nanoseconds, 0 = unknown
//	lastSeq  uvarint
//	flags    1 byte   bit 1: has snapshot; other bits must be 0
//	snapSeq  uvarint  0 unless has snapshot; <= lastSeq
//	snapshot uvarint length, bytes (only if has snapshot)
//	count    uvarint  number of log entries, = lastSeq - snapSeq
//	entries  count × (seq uvarint, length uvarint, bytes); seqs are
//	         snapSeq+1, snapSeq+2, …, lastSeq
//	versions (only with flags bit 2) uvarint count (<= MaxImportVersions),
//	         then count × (seq uvarint, length uvarint, version record as
//	         stored, versions.go); seqs strictly ascending
//	crc      4 bytes  big-endian CRC-32C of every byte before it
//
// Nothing may follow the checksum.

const (
	exportMagic        = "collabd\x00"
	exportVersion      = 1
	exportFlagSnap     = 1 << 1
	exportFlagVersions = 1 << 2
)

// MaxImportVersions is the most versions one export may hold.
const MaxImportVersions = 1 << 16

// MaxImportEntries is the most log entries one export may hold. It bounds the
// memory Import spends on entry headers; compact a document with a longer
// tail before exporting it.
const MaxImportEntries = 1 << 22

// exportLimits bound what decodeExport allocates.
type exportLimits struct {
	maxEntries  uint64 // log entries
	maxSnapshot int    // bytes of the snapshot
	maxUpdate   int    // bytes of one log entry
	maxTotal    int64  // bytes of the whole stream
}

// encodeExport writes doc in the export format.
func encodeExport(w io.Writer, doc *Document) error {
	bw := bufio.NewWriter(w)
	h := crc32.New(castagnoli)
	out := io.MultiWriter(bw, h)
	var scratch [binary.MaxVarintLen64]byte
	var err error
	put := func(b []byte) {
		if err == nil {
			_, err = out.Write(b)
		}
	}
	uvarint := func(v uint64) { put(scratch[:binary.PutUvarint(scratch[:], v)]) }
	varint := func(v int64) { put(scratch[:binary.PutVarint(scratch[:], v)]) }
	blob := func(b []byte) { uvarint(uint64(len(b))); put(b) }

	info := &doc.Info
	put([]byte(exportMagic))
	put([]byte{exportVersion})
	blob([]byte(info.ID))
	varint(unixNano(info.Created))
	varint(unixNano(info.Updated))
	uvarint(info.LastSeq)
	var flags byte
	if len(doc.Versions) > 0 {
		flags |= exportFlagVersions
	}
	if info.HasSnapshot {
		put([]byte{flags | exportFlagSnap})
		uvarint(info.SnapshotSeq)
		blob(doc.Snapshot)
	} else {
		put([]byte{flags})
		uvarint(0)
	}
	uvarint(uint64(len(doc.Tail)))
	for _, e := range doc.Tail {
		uvarint(e.Seq)
		blob(e.Data)
	}
	if len(doc.Versions) > 0 {
		uvarint(uint64(len(doc.Versions)))
		for i := range doc.Versions {
			v := &doc.Versions[i]
			uvarint(v.Seq)
			blob(encodeVersionRecord(v.Seq, unixNano(v.Time), &NewVersion{
				Version: v.Version, Kind: v.Kind, Label: v.Label, Authors: v.Authors, Snapshot: v.Snapshot}))
		}
	}
	if err != nil {
		return err
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return err
	}
	return bw.Flush()
}

// decoder reads the export format from a stream, keeping the offset and the
// running checksum, and refusing any length past its limits before
// allocating for it.
type decoder struct {
	r   *bufio.Reader
	off int64
	crc uint32
	lim exportLimits
}

func (d *decoder) fail(field string, err error) error {
	return &DecodeError{Offset: d.off, Field: "export." + field, Err: err}
}

func (d *decoder) corrupt(field, format string, args ...any) error {
	return d.fail(field, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...))
}

func (d *decoder) readErr(field string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.corrupt(field, "truncated input")
	}
	return d.fail(field, err)
}

func (d *decoder) ReadByte() (byte, error) {
	c, err := d.r.ReadByte()
	if err != nil {
		return 0, err
	}
	if d.off++; d.off > d.lim.maxTotal {
		return 0, fmt.Errorf("%w: export longer than %d bytes", ErrTooLarge, d.lim.maxTotal)
	}
	d.crc = crc32.Update(d.crc, castagnoli, []byte{c})
	return c, nil
}

func (d *decoder) byte1(field string) (byte, error) {
	c, err := d.ReadByte()
	if err != nil {
		return 0, d.readErr(field, err)
	}
	return c, nil
}

func (d *decoder) uvarint(field string) (uint64, error) {
	start := d.off
	v, err := binary.ReadUvarint(d)
	if err != nil {
		d.off = start
		if errors.Is(err, ErrTooLarge) {
			return 0, d.fail(field, err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, d.readErr(field, err)
		}
		return 0, d.corrupt(field, "bad varint")
	}
	return v, nil
}

func (d *decoder) varint(field string) (int64, error) {
	u, err := d.uvarint(field)
	// Undo the zig-zag encoding of binary.PutVarint.
	return int64(u>>1) ^ -int64(u&1), err
}

// blob reads a length-prefixed byte string of at most limit bytes. It grows
// its buffer as data arrives, so a false length costs no more memory than
// the input holds.
func (d *decoder) blob(field string, limit int) ([]byte, error) {
	n, err := d.uvarint(field)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) || int64(n) > d.lim.maxTotal-d.off {
		return nil, d.fail(field, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, limit))
	}
	const chunk = 64 << 10
	buf := make([]byte, 0, min(int(n), chunk))
	for len(buf) < int(n) {
		k := min(int(n)-len(buf), chunk)
		buf = slices.Grow(buf, k)
		part := buf[len(buf) : len(buf)+k]
		if _, err := io.ReadFull(d.r, part); err != nil {
			return nil, d.readErr(field, err)
		}
		d.crc = crc32.Update(d.crc, castagnoli, part)
		d.off += int64(k)
		buf = buf[:len(buf)+k]
	}
	return buf, nil
}

// versions reads the versions section of an export into doc.Versions.
func (d *decoder) versions(doc *Document) error {
	count, err := d.uvarint("versions")
	if err != nil {
		return err
	}
	if count > MaxImportVersions {
		return d.fail("versions", fmt.Errorf("%w: %d versions (max %d)", ErrTooLarge, count, MaxImportVersions))
	}
	if count == 0 {
		return d.corrupt("versions", "versions flag without versions")
	}
	var prev uint64
	for range count {
		seq, err := d.uvarint("version.seq")
		if err != nil {
			return err
		}
		if seq <= prev {
			return d.corrupt("version.seq", "seq %d after %d", seq, prev)
		}
		rec, err := d.blob("version.record", d.lim.maxSnapshot+versionOverhead)
		if err != nil {
			return err
		}
		v, err := decodeVersion(seq, rec, true)
		if err != nil {
			return d.fail("version.record", err)
		}
		doc.Versions = append(doc.Versions, v)
		prev = seq
	}
	return nil
}

// versionOverhead bounds a version record's bytes besides its snapshot.
const versionOverhead = versionHeaderLen + 2 + 3*binary.MaxVarintLen64 + MaxVersionLabel +
	MaxVersionAuthors*(binary.MaxVarintLen64+MaxAuthorBytes)

// decodeExport reads one document in the export format. It checks the
// structure, every limit and the checksum, and never panics.
func decodeExport(r io.Reader, lim exportLimits) (*Document, error) {
	d := &decoder{r: bufio.NewReader(r), lim: lim}
	var magic [len(exportMagic) + 1]byte
	for i := range magic {
		c, err := d.byte1("magic")
		if err != nil {
			return nil, err
		}
		magic[i] = c
	}
	if string(magic[:len(exportMagic)]) != exportMagic {
		d.off = 0
		return nil, d.corrupt("magic", "not a collabd export")
	}
	if v := magic[len(exportMagic)]; v != exportVersion {
		d.off--
		return nil, d.corrupt("version", "version %d, want %d", v, exportVersion)
	}
	doc := &Document{}
	info := &doc.Info
	id, err := d.blob("id", MaxIDBytes)
	if err != nil {
		return nil, err
	}
	if info.ID = string(id); checkID(info.ID) != nil {
		return nil, d.corrupt("id", "invalid document id")
	}
	created, err := d.varint("created")
	if err != nil {
		return nil, err
	}
	updated, err := d.varint("updated")
	if err != nil {
		return nil, err
	}
	info.Created, info.Updated = fromUnixNano(created), fromUnixNano(updated)
	if info.LastSeq, err = d.uvarint("lastSeq"); err != nil {
		return nil, err
	}
	flags, err := d.byte1("flags")
	if err != nil {
		return nil, err
	}
	if flags&^(exportFlagSnap|exportFlagVersions) != 0 {
		return nil, d.corrupt("flags", "unknown flags %#x", flags)
	}
	info.HasSnapshot = flags&exportFlagSnap != 0
	if info.SnapshotSeq, err = d.uvarint("snapshotSeq"); err != nil {
		return nil, err
	}
	if info.SnapshotSeq > info.LastSeq || (!info.HasSnapshot && info.SnapshotSeq != 0) {
		return nil, d.corrupt("snapshotSeq", "snapshot seq %d with last seq %d", info.SnapshotSeq, info.LastSeq)
	}
	if info.HasSnapshot {
		if doc.Snapshot, err = d.blob("snapshot", lim.maxSnapshot); err != nil {
			return nil, err
		}
		info.SnapshotBytes = int64(len(doc.Snapshot))
	}
	count, err := d.uvarint("count")
	if err != nil {
		return nil, err
	}
	if count > lim.maxEntries {
		return nil, d.fail("count", fmt.Errorf("%w: %d entries (max %d)", ErrTooLarge, count, lim.maxEntries))
	}
	if count != info.LastSeq-info.SnapshotSeq {
		return nil, d.corrupt("count", "%d entries for sequences (%d, %d]", count, info.SnapshotSeq, info.LastSeq)
	}
	prev := info.SnapshotSeq
	for range count {
		seq, err := d.uvarint("entry.seq")
		if err != nil {
			return nil, err
		}
		if seq != prev+1 {
			return nil, d.corrupt("entry.seq", "seq %d, want %d", seq, prev+1)
		}
		data, err := d.blob("entry.data", lim.maxUpdate)
		if err != nil {
			return nil, err
		}
		doc.Tail = append(doc.Tail, Entry{Seq: seq, Data: data})
		info.LogEntries++
		info.LogBytes += int64(len(data))
		prev = seq
	}
	if flags&exportFlagVersions != 0 {
		if err := d.versions(doc); err != nil {
			return nil, err
		}
	}
	want := d.crc
	if 4 > d.lim.maxTotal-d.off {
		return nil, d.fail("crc", fmt.Errorf("%w: export longer than %d bytes", ErrTooLarge, d.lim.maxTotal))
	}
	var sum [4]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		return nil, d.readErr("crc", err)
	}
	if binary.BigEndian.Uint32(sum[:]) != want {
		return nil, d.corrupt("crc", "checksum mismatch")
	}
	d.off += 4
	if _, err := d.r.ReadByte(); err != io.EOF {
		if err != nil {
			return nil, d.fail("trailer", err)
		}
		return nil, d.corrupt("trailer", "data after the checksum")
	}
	return doc, nil
}
