package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"
	"time"
)

// Every decoder of bytes read from disk or from an import stream has a fuzz
// target here. Seeds live in testdata/fuzz/<target>/ and also run as plain
// tests in every `go test`.

// FuzzDecodeMeta: decodeMeta never panics, and whatever it accepts
// re-encodes to exactly the same bytes (the record has one canonical form).
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(&DocInfo{Created: time.Unix(1, 2), Updated: time.Unix(3, 4), LastSeq: 9, LogEntries: 9, LogBytes: 90}))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := decodeMeta("fuzz", b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMeta error %v is not a *DecodeError wrapping ErrCorrupt", err)
			}
			return
		}
		if got := encodeMeta(&info); !bytes.Equal(got, b) {
			t.Fatalf("encodeMeta(decodeMeta(%x)) = %x", b, got)
		}
	})
}

// FuzzDecodeRecord: decodeRecord never panics, accepts a record only under
// the sequence it was sealed for, and round-trips it.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint64(1), encodeRecord(1, []byte("update")))
	f.Fuzz(func(t *testing.T, seq uint64, b []byte) {
		payload, err := decodeRecord(seq, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecord error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := encodeRecord(seq, payload); !bytes.Equal(got, b) {
			t.Fatalf("encodeRecord(decodeRecord(%x)) = %x", b, got)
		}
		if len(b) > 4 {
			if _, err := decodeRecord(seq+1, b); err == nil {
				t.Fatalf("record sealed for seq %d also accepted for %d", seq, seq+1)
			}
		}
	})
}

// FuzzDecodeJournalValue: decodeJournalValue never panics, and whatever it
// accepts is exactly what newJournalValue and sealJournalValue produce.
func FuzzDecodeJournalValue(f *testing.F) {
	v := newJournalValue("doc", []byte("update"))
	sealJournalValue(v, 7, 1234)
	f.Add(v)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeJournalValue(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeJournalValue error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		got := newJournalValue(e.doc, e.payload)
		sealJournalValue(got, e.seq, e.nanos)
		if !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x gave %x", b, got)
		}
	})
}

// fuzzLimits are small so that the fuzzer reaches every limit.
var fuzzLimits = exportLimits{maxEntries: 64, maxSnapshot: 1 << 10, maxUpdate: 256, maxTotal: 8 << 10}

// FuzzDecodeExport: decodeExport never panics or over-allocates, gives the
// same answer when the stream arrives one byte per Read, and whatever it
// accepts re-encodes to a stream that decodes to the same document.
func FuzzDecodeExport(f *testing.F) {
	var seed bytes.Buffer
	_ = encodeExport(&seed, &Document{ // writing to a bytes.Buffer cannot fail
		Info:     DocInfo{ID: "doc", LastSeq: 3, HasSnapshot: true, SnapshotSeq: 1, SnapshotBytes: 4, LogEntries: 2, LogBytes: 2},
		Snapshot: []byte("snap"),
		Tail:     []Entry{{Seq: 2, Data: []byte("a")}, {Seq: 3, Data: []byte("b")}},
	})
	f.Add(seed.Bytes())
	seed.Reset()
	_ = encodeExport(&seed, &Document{
		Info:     DocInfo{ID: "doc", LastSeq: 1, LogEntries: 1, LogBytes: 1},
		Tail:     []Entry{{Seq: 1, Data: []byte("a")}},
		Versions: []Version{{Seq: 2, Version: 1, Kind: VersionNamed, Label: "v", Authors: []string{"al"}, Snapshot: []byte("s"), SnapshotBytes: 1}},
	})
	f.Add(seed.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := decodeExport(bytes.NewReader(b), fuzzLimits)
		doc1, err1 := decodeExport(iotest.OneByteReader(bytes.NewReader(b)), fuzzLimits)
		if (err == nil) != (err1 == nil) || !reflect.DeepEqual(doc, doc1) {
			t.Fatalf("decodeExport differs by read size: %v / %v", err, err1)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge)) {
				t.Fatalf("decodeExport error %v is not a *DecodeError wrapping ErrCorrupt or ErrTooLarge", err)
			}
			if de.Offset < 0 || de.Offset > int64(len(b)) {
				t.Fatalf("DecodeError offset %d outside input of %d bytes", de.Offset, len(b))
			}
			return
		}
		var re bytes.Buffer
		if err := encodeExport(&re, doc); err != nil {
			t.Fatal(err)
		}
		if re.Len() > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), re.Len())
		}
		doc2, err := decodeExport(&re, fuzzLimits)
		if err != nil || !reflect.DeepEqual(doc, doc2) {
			t.Fatalf("decode(encode(doc)) = %+v, %v; want %+v", doc2, err, doc)
		}
	})
}

// FuzzCheckFile: checkBoltFile (the check that runs before bbolt maps a
// file) never panics, every refusal wraps ErrCorrupt or ErrFormat, and a
// file it accepts holds every page its valid meta pages say is in use.
// Seeds include cut and damaged meta pages (testdata/fuzz/FuzzCheckFile).
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir+"/seed.db", Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(dir + "/seed.db")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, strict := range []bool{true, false} {
			size, err := checkBoltFile(path, strict)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
					t.Fatalf("checkBoltFile(strict %v) = %v, want ErrCorrupt or ErrFormat", strict, err)
				}
				continue
			}
			if size != int64(len(b)) {
				t.Fatalf("size %d, file %d", size, len(b))
			}
			m, err := parseBoltMeta(b, 0)
			if strict && err != nil {
				t.Fatalf("strict check accepted a bad first meta page: %v", err)
			}
			if err == nil && m.pgid*m.pageSize > uint64(len(b)) {
				t.Fatalf("accepted %d pages of %d bytes in a %d-byte file", m.pgid, m.pageSize, len(b))
			}
		}
	})
}

// FuzzVerifyFile: a store file with any bytes changed gives Verify an error
// wrapping ErrCorrupt or ErrFormat, or a clean report, never a crash: the
// meta check and the page walk (walkBoltFile) must catch whatever would make
// bbolt read outside the file, including inside Tx.Check's own goroutine
// where a fault cannot be recovered.
func FuzzVerifyFile(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir+"/seed.db", Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 40 {
		if _, err := s.Append(context.Background(), fmt.Sprintf("doc-%d", i%7), bytes.Repeat([]byte{byte(i)}, 50*i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(dir + "/seed.db")
	if err != nil {
		f.Fatal(err)
	}
	if pgid := binary.LittleEndian.Uint64(good[16+40:]); uint64(len(good)) > pgid*uint64(os.Getpagesize()) {
		good = good[:pgid*uint64(os.Getpagesize())] // the pages in use: a smaller input to mutate
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := walkBoltFile(path); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("walkBoltFile = %v, want nil or ErrCorrupt", err)
		}
		if _, err := Verify(context.Background(), path, Options{}); err != nil &&
			!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
			t.Fatalf("Verify = %v, want nil, ErrCorrupt or ErrFormat", err)
		}
	})
}
