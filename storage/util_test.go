package storage_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/collabd/collabd/storage"
)

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// The tests' stand-in for a CRDT snapshot: the entries it covers, each as
// uvarint seq, uvarint length, bytes. It lets a test check that snapshot
// plus tail hold every acknowledged entry exactly once.

func encodeTestSnapshot(es []storage.Entry) []byte {
	var b []byte
	for _, e := range es {
		b = binary.AppendUvarint(b, e.Seq)
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

func decodeTestSnapshot(b []byte) ([]storage.Entry, error) {
	var out []storage.Entry
	for len(b) > 0 {
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("bad seq")
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, errors.New("bad length")
		}
		out = append(out, storage.Entry{Seq: seq, Data: b[n : n+int(l)]})
		b = b[n+int(l):]
	}
	return out, nil
}

// allEntries returns the entries in d's test snapshot followed by its tail.
func allEntries(d *storage.Document) ([]storage.Entry, error) {
	es, err := decodeTestSnapshot(d.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("document %q snapshot: %w", d.Info.ID, err)
	}
	for _, e := range es {
		if e.Seq > d.Info.SnapshotSeq {
			return nil, fmt.Errorf("document %q: snapshot holds seq %d past its %d", d.Info.ID, e.Seq, d.Info.SnapshotSeq)
		}
	}
	return append(es, d.Tail...), nil
}

// compactionSnapshot builds the test snapshot of d covering every entry up to
// through (which must be SnapshotSeq or a tail seq).
func compactionSnapshot(d *storage.Document, through uint64) ([]byte, error) {
	es, err := allEntries(d)
	if err != nil {
		return nil, err
	}
	var keep []storage.Entry
	for _, e := range es {
		if e.Seq <= through {
			keep = append(keep, e)
		}
	}
	return encodeTestSnapshot(keep), nil
}

func getenv(k string) string { return os.Getenv(k) }
