package jetstream

import (
	"encoding/binary"
	"fmt"
)

// A record is one message on a document's subject. Its format (version 1):
//
//	byte     version (1)
//	byte     kind (recUpdates, recFence, recSnapshot, recTombstone)
//	uvarint  epoch: the fencing epoch of the writer (its lease revision)
//	8 bytes  writer: a random id of the writer instance (little endian)
//	uvarint  n: the writer's record counter
//	recUpdates:  uvarint count (1..MaxUpdates), then count × (uvarint len, bytes)
//	recSnapshot: uvarint through, uvarint size, uvarint name length (≤ maxName), name
//	recFence, recTombstone: nothing
//
// and nothing after. Every declared length is checked against what is left
// of the record before anything is allocated.
type record struct {
	kind    recKind
	epoch   uint64
	writer  uint64
	n       uint64
	updates [][]byte // recUpdates; they alias the decoded bytes
	snap    snapRef  // recSnapshot
}

// snapRef points to a snapshot object.
type snapRef struct {
	through uint64 // log sequence the snapshot covers, inclusive
	size    uint64 // bytes
	name    string // object name in the snapshot store
}

// recKind is a record's kind.
type recKind byte

const (
	recUpdates   recKind = iota + 1 // document updates, in order
	recFence                        // a new writer took over (no payload)
	recSnapshot                     // a snapshot covers the log through snap.through
	recTombstone                    // the document is deleted
)

const (
	recVersion = 1
	maxName    = 512 // snapshot object names are short: token.epoch.through
)

// appendRecord appends r's encoding to b.
func appendRecord(b []byte, r *record) []byte {
	b = append(b, recVersion, byte(r.kind))
	b = binary.AppendUvarint(b, r.epoch)
	b = binary.LittleEndian.AppendUint64(b, r.writer)
	b = binary.AppendUvarint(b, r.n)
	switch r.kind {
	case recUpdates:
		b = binary.AppendUvarint(b, uint64(len(r.updates)))
		for _, u := range r.updates {
			b = binary.AppendUvarint(b, uint64(len(u)))
			b = append(b, u...)
		}
	case recSnapshot:
		b = binary.AppendUvarint(b, r.snap.through)
		b = binary.AppendUvarint(b, r.snap.size)
		b = binary.AppendUvarint(b, uint64(len(r.snap.name)))
		b = append(b, r.snap.name...)
	}
	return b
}

// updatesSize is the encoded size of an updates record holding updates of
// total length n in count updates, at most.
func updatesSize(count, n int) int {
	return 2 + 3*binary.MaxVarintLen64 + 8 + binary.MaxVarintLen64*(count+1) + n
}

// decoder reads a record, checking every length.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) fail(field, why string) error {
	return &DecodeError{Offset: d.off, Field: field, Err: fmt.Errorf("%w: %s", ErrCorrupt, why)}
}

func (d *decoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.fail(field, "bad uvarint")
	}
	d.off += n
	return v, nil
}

// bytes reads n bytes, n checked against what is left.
func (d *decoder) bytes(field string, n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, d.fail(field, "length past the end")
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v, nil
}

// decodeRecord decodes one record of at most maxBytes bytes with at most
// maxUpdates updates. The updates alias b.
func decodeRecord(b []byte, maxBytes, maxUpdates int) (*record, error) {
	d := &decoder{b: b}
	if len(b) > maxBytes {
		return nil, d.fail("record", fmt.Sprintf("%d bytes, limit %d", len(b), maxBytes))
	}
	if len(b) < 2 {
		return nil, d.fail("header", "short record")
	}
	if b[0] != recVersion {
		return nil, d.fail("version", fmt.Sprintf("unknown version %d", b[0]))
	}
	r := &record{kind: recKind(b[1])}
	if r.kind < recUpdates || r.kind > recTombstone {
		return nil, d.fail("kind", fmt.Sprintf("unknown kind %d", b[1]))
	}
	d.off = 2
	var err error
	if r.epoch, err = d.uvarint("epoch"); err != nil {
		return nil, err
	}
	w, err := d.bytes("writer", 8)
	if err != nil {
		return nil, err
	}
	r.writer = binary.LittleEndian.Uint64(w)
	if r.n, err = d.uvarint("n"); err != nil {
		return nil, err
	}
	switch r.kind {
	case recUpdates:
		count, err := d.uvarint("count")
		if err != nil {
			return nil, err
		}
		// Each update takes at least one byte (its length).
		if count == 0 || count > uint64(maxUpdates) || count > uint64(len(b)-d.off) {
			return nil, d.fail("count", fmt.Sprintf("%d updates (limit %d)", count, maxUpdates))
		}
		r.updates = make([][]byte, 0, count)
		for range count {
			n, err := d.uvarint("update length")
			if err != nil {
				return nil, err
			}
			u, err := d.bytes("update", n)
			if err != nil {
				return nil, err
			}
			r.updates = append(r.updates, u)
		}
	case recSnapshot:
		if r.snap.through, err = d.uvarint("through"); err != nil {
			return nil, err
		}
		if r.snap.size, err = d.uvarint("size"); err != nil {
			return nil, err
		}
		n, err := d.uvarint("name length")
		if err != nil {
			return nil, err
		}
		if n == 0 || n > maxName {
			return nil, d.fail("name length", fmt.Sprintf("%d bytes (1..%d)", n, maxName))
		}
		name, err := d.bytes("name", n)
		if err != nil {
			return nil, err
		}
		r.snap.name = string(name)
	}
	if d.off != len(b) {
		return nil, d.fail("record", fmt.Sprintf("%d trailing bytes", len(b)-d.off))
	}
	return r, nil
}
