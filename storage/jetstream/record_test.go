package jetstream

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func sampleRecords() []*record {
	return []*record{
		{kind: recUpdates, epoch: 7, writer: 0xdeadbeef, n: 3, updates: [][]byte{[]byte("a"), {}, []byte("hello")}},
		{kind: recFence, epoch: 1 << 40, writer: 1, n: 0},
		{kind: recSnapshot, epoch: 9, writer: 2, n: 5, snap: snapRef{through: 1234, size: 99, name: "ZG9j.9.1234"}},
		{kind: recTombstone, epoch: 9, writer: 2, n: 6},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b := appendRecord(nil, r)
		got, err := decodeRecord(b, 1<<20, 16)
		if err != nil {
			t.Fatalf("decodeRecord(%x) = %v", b, err)
		}
		if r.updates != nil && got.updates != nil {
			for i := range r.updates {
				if !bytes.Equal(r.updates[i], got.updates[i]) {
					t.Fatalf("update %d = %q, want %q", i, got.updates[i], r.updates[i])
				}
			}
			got.updates, r.updates = nil, nil
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("decodeRecord(appendRecord(%+v)) = %+v", r, got)
		}
	}
	if n := len(appendRecord(nil, &record{kind: recUpdates, updates: [][]byte{make([]byte, 1000), make([]byte, 5)}})); n > updatesSize(2, 1005) {
		t.Errorf("updatesSize(2, 1005) = %d, smaller than the encoding (%d)", updatesSize(2, 1005), n)
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	good := appendRecord(nil, sampleRecords()[0])
	snap := appendRecord(nil, sampleRecords()[2])
	for _, tc := range []struct {
		name  string
		b     []byte
		field string
	}{
		{"empty", nil, "header"},
		{"version", append([]byte{2}, good[1:]...), "version"},
		{"kind 0", append([]byte{1, 0}, good[2:]...), "kind"},
		{"kind 5", append([]byte{1, 5}, good[2:]...), "kind"},
		{"truncated", good[:len(good)-1], "update"},
		{"trailing", append(bytes.Clone(good), 0), "record"},
		{"huge count", appendRecord(nil, &record{kind: recUpdates, updates: make([][]byte, 17)}), "count"},
		{"too long", make([]byte, 1<<20+1), "record"},
		{"name truncated", snap[:len(snap)-3], "name"},
		{"bad uvarint", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "epoch"},
	} {
		_, err := decodeRecord(tc.b, 1<<20, 16)
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) || de.Field != tc.field {
			t.Errorf("%s: decodeRecord = %v, want a DecodeError in %q wrapping ErrCorrupt", tc.name, err, tc.field)
		}
	}
}

// FuzzDecodeRecord: no input panics or allocates past its length, and a
// decoded record encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(appendRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b, 1<<16, 64)
		if err != nil {
			return
		}
		if len(r.updates) > len(b) {
			t.Fatalf("%d updates from %d bytes", len(r.updates), len(b))
		}
		if re := appendRecord(nil, r); !bytes.Equal(re, b) {
			// Uvarints have one canonical form only when minimal: accept a
			// re-encoding that decodes to the same record.
			r2, err := decodeRecord(re, 1<<16, 64)
			if err != nil || !reflect.DeepEqual(normal(r2), normal(r)) {
				t.Fatalf("re-encoding %x of %x decodes to %+v, %v", re, b, r2, err)
			}
		}
	})
}

func normal(r *record) *record {
	c := *r
	if c.updates != nil {
		u := make([][]byte, len(c.updates))
		for i := range c.updates {
			u[i] = append([]byte{}, c.updates[i]...)
		}
		c.updates = u
	}
	return &c
}

// TestFuzzCorpus: the checked-in corpus exists (the fuzz target runs it in
// `go test`).
func TestFuzzCorpus(t *testing.T) {
	m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeRecord", "*"))
	if len(m) == 0 {
		if _, err := os.Stat("testdata"); err != nil {
			t.Fatal("no testdata/fuzz/FuzzDecodeRecord corpus")
		}
		t.Fatal("empty testdata/fuzz/FuzzDecodeRecord corpus")
	}
}

func TestFold(t *testing.T) {
	u := func(seq, epoch uint64, s string) seqRecord {
		return seqRecord{seq: seq, rec: &record{kind: recUpdates, epoch: epoch, updates: [][]byte{[]byte(s)}}}
	}
	recs := []seqRecord{
		{seq: 1, rec: &record{kind: recFence, epoch: 1}},
		u(2, 1, "a"), u(5, 1, "b"),
		{seq: 6, rec: &record{kind: recFence, epoch: 4}},
		u(8, 4, "c"),
		{seq: 9, rec: &record{kind: recSnapshot, epoch: 4, snap: snapRef{through: 5, size: 1, name: "x"}}},
		u(12, 4, "d"),
	}
	f, err := fold(recs)
	if err != nil {
		t.Fatal(err)
	}
	var tail []string
	for _, e := range f.tail {
		tail = append(tail, string(e.Data))
	}
	if !reflect.DeepEqual(tail, []string{"c", "d"}) || f.last != 12 || !f.exists || f.deleted || f.snap.name != "x" {
		t.Errorf("fold = tail %q last %d exists %v deleted %v snap %+v", tail, f.last, f.exists, f.deleted, f.snap)
	}
	if _, err := fold(append(recs, u(13, 3, "stale"))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("fold with a decreasing epoch = %v, want ErrCorrupt", err)
	}
	f, err = fold(append(recs, seqRecord{seq: 13, rec: &record{kind: recFence, epoch: 2}}))
	if err != nil || f.last != 13 || f.lastActive != 12 || f.epoch != 4 {
		t.Errorf("fold with a stale fence = last %d active %d epoch %d, %v; want 13 12 4", f.last, f.lastActive, f.epoch, err)
	}
	f, _ = fold(append(recs, seqRecord{seq: 14, rec: &record{kind: recTombstone, epoch: 4}}))
	if !f.deleted {
		t.Error("fold with a tombstone: not deleted")
	}
	f, _ = fold(recs[:1])
	if f.exists || f.last != 1 || f.epoch != 1 {
		t.Errorf("fold of a fence only: exists %v last %d, want false 1", f.exists, f.last)
	}
}
