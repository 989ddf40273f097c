package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"
)

// This file holds the encodings of the values stored in bbolt: the metadata
// record, checksummed log and snapshot records, and log keys. The layout is
// described in doc.go; changing it means a new format version.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DocInfo is the metadata of one document.
type DocInfo struct {
	ID        string
	Created   time.Time // first write
	Updated   time.Time // last Append or Import
	Deleted   bool      // the document is a tombstone
	DeletedAt time.Time // zero unless Deleted

	// LastSeq is the document's version: the highest sequence number ever
	// assigned to it (0 before the first Append). Sequences start at 1 and
	// are never reused, not even after a compaction.
	LastSeq uint64

	// HasSnapshot reports whether a snapshot is stored. The snapshot covers
	// every log entry with Seq <= SnapshotSeq.
	HasSnapshot   bool
	SnapshotSeq   uint64
	SnapshotBytes int64

	// LogEntries and LogBytes count the log tail after the snapshot
	// (payload bytes, without the per-record checksum).
	LogEntries int64
	LogBytes   int64

	Compactions uint64 // successful Compact calls
}

const (
	metaVersion = 1
	metaLen     = 2 + 9*8 + 4 // version, flags, nine 8-byte fields, crc32c

	flagDeleted     = 1 << 0
	flagHasSnapshot = 1 << 1
	knownFlags      = flagDeleted | flagHasSnapshot
)

// Keys inside a document's bucket.
var (
	keyMeta     = []byte("m")
	keySnapshot = []byte("s")
	keyLog      = []byte("l")
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeMeta returns the metadata record of d (d.ID is the bucket name and
// is not part of the record).
func encodeMeta(d *DocInfo) []byte {
	b := make([]byte, metaLen)
	b[0] = metaVersion
	if d.Deleted {
		b[1] |= flagDeleted
	}
	if d.HasSnapshot {
		b[1] |= flagHasSnapshot
	}
	p := b[2:]
	for _, v := range [...]uint64{
		uint64(unixNano(d.Created)), uint64(unixNano(d.Updated)), uint64(unixNano(d.DeletedAt)),
		d.LastSeq, d.SnapshotSeq, uint64(d.SnapshotBytes), uint64(d.LogEntries), uint64(d.LogBytes),
		d.Compactions,
	} {
		binary.BigEndian.PutUint64(p, v)
		p = p[8:]
	}
	binary.BigEndian.PutUint32(p, crc32.Checksum(b[:metaLen-4], castagnoli))
	return b
}

// decodeMeta parses a metadata record. It checks the length, version,
// checksum and internal consistency, and never panics on any input.
func decodeMeta(id string, b []byte) (DocInfo, error) {
	fail := func(off int, field, msg string) (DocInfo, error) {
		return DocInfo{}, &DecodeError{Offset: int64(off), Field: "meta." + field,
			Err: fmt.Errorf("%w: document %q: %s", ErrCorrupt, id, msg)}
	}
	if len(b) != metaLen {
		return fail(0, "length", fmt.Sprintf("length %d, want %d", len(b), metaLen))
	}
	if b[0] != metaVersion {
		return fail(0, "version", fmt.Sprintf("version %d, want %d", b[0], metaVersion))
	}
	if got, want := binary.BigEndian.Uint32(b[metaLen-4:]), crc32.Checksum(b[:metaLen-4], castagnoli); got != want {
		return fail(metaLen-4, "crc", "checksum mismatch")
	}
	if b[1]&^knownFlags != 0 {
		return fail(1, "flags", fmt.Sprintf("unknown flags %#x", b[1]))
	}
	var v [9]uint64
	for i := range v {
		v[i] = binary.BigEndian.Uint64(b[2+8*i:])
	}
	d := DocInfo{
		ID:            id,
		Deleted:       b[1]&flagDeleted != 0,
		HasSnapshot:   b[1]&flagHasSnapshot != 0,
		Created:       fromUnixNano(int64(v[0])),
		Updated:       fromUnixNano(int64(v[1])),
		DeletedAt:     fromUnixNano(int64(v[2])),
		LastSeq:       v[3],
		SnapshotSeq:   v[4],
		SnapshotBytes: int64(v[5]),
		LogEntries:    int64(v[6]),
		LogBytes:      int64(v[7]),
		Compactions:   v[8],
	}
	switch {
	case d.SnapshotSeq > d.LastSeq:
		return fail(2+8*4, "snapshotSeq", "snapshot seq past last seq")
	case d.SnapshotBytes < 0 || d.LogEntries < 0 || d.LogBytes < 0:
		return fail(2+8*5, "sizes", "negative size")
	case !d.Deleted && uint64(d.LogEntries) != d.LastSeq-d.SnapshotSeq:
		return fail(2+8*6, "logEntries", "log entries do not fill the sequences after the snapshot")
	case !d.HasSnapshot && (d.SnapshotBytes != 0 || d.SnapshotSeq != 0):
		return fail(1, "flags", "snapshot fields without a snapshot")
	case d.Deleted && (d.HasSnapshot || d.LogEntries != 0 || d.LogBytes != 0):
		return fail(1, "flags", "tombstone with content")
	}
	return d, nil
}

// seqKey is the log key of seq: 8 bytes, big-endian, so that bbolt's byte
// order is sequence order.
func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// encodeRecord returns crc32c(payload || seq) || payload, the stored form of
// a log entry or snapshot. Binding seq into the checksum catches a record
// stored under the wrong key. Seq goes last so that the committer, which
// assigns it, only extends a checksum the submitter already computed.
func encodeRecord(seq uint64, payload []byte) []byte {
	b := newRecord(payload)
	sealRecord(b, seq)
	return b
}

// newRecord copies payload into a record whose checksum is not yet sealed;
// its first 4 bytes hold crc32c(payload) until sealRecord runs.
func newRecord(payload []byte) []byte {
	b := make([]byte, 4+len(payload))
	copy(b[4:], payload)
	binary.BigEndian.PutUint32(b, crc32.Checksum(payload, castagnoli))
	return b
}

// sealRecord turns the payload checksum of newRecord into the record checksum
// for seq.
func sealRecord(b []byte, seq uint64) {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	binary.BigEndian.PutUint32(b, crc32.Update(binary.BigEndian.Uint32(b), castagnoli, k[:]))
}

func recordCRC(seq uint64, payload []byte) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return crc32.Update(crc32.Checksum(payload, castagnoli), castagnoli, k[:])
}

// decodeRecord checks a stored record and returns a copy of its payload
// (bbolt's memory is only valid inside its transaction).
func decodeRecord(seq uint64, b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, &DecodeError{Field: "record", Err: fmt.Errorf("%w: record of %d bytes", ErrCorrupt, len(b))}
	}
	payload := b[4:]
	if binary.BigEndian.Uint32(b) != recordCRC(seq, payload) {
		return nil, &DecodeError{Field: "record.crc", Err: fmt.Errorf("%w: checksum mismatch", ErrCorrupt)}
	}
	return append([]byte(nil), payload...), nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
		return fmt.Errorf("%w: %q", ErrInvalidID, truncate(id, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CheckID reports whether id can name a stored document: nil, or an error
// wrapping ErrInvalidID (empty, longer than MaxIDBytes bytes, or not UTF-8).
// Every write checks it; callers that accept ids from clients should call it
// first, so that a client gets a terminal "invalid id" refusal instead of a
// storage failure.
func CheckID(id string) error { return checkID(id) }
