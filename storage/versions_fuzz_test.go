package storage

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// FuzzDecodeVersion: decodeVersion never panics, accepts a record only under
// the sequence it was sealed for, and whatever it accepts re-encodes to the
// same bytes.
func FuzzDecodeVersion(f *testing.F) {
	f.Add(uint64(1), encodeVersionRecord(1, 5, &NewVersion{Version: 3, Kind: VersionNamed, Label: "v1", Authors: []string{"a", "b"}, Snapshot: []byte("snap")}))
	f.Add(uint64(2), encodeVersionRecord(2, 0, &NewVersion{Kind: VersionAuto}))
	f.Fuzz(func(t *testing.T, seq uint64, b []byte) {
		v, err := decodeVersion(seq, b, true)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeVersion error %v is not a *DecodeError wrapping ErrCorrupt", err)
			}
			return
		}
		nv := NewVersion{Version: v.Version, Kind: v.Kind, Label: v.Label, Authors: v.Authors, Snapshot: v.Snapshot}
		if got := encodeVersionRecord(seq, unixNano(v.Time), &nv); !bytes.Equal(got, b) {
			t.Fatalf("encode(decodeVersion(%x)) = %x", b, got)
		}
		if _, err := decodeVersion(seq+1, b, false); err == nil {
			t.Fatalf("record sealed for %d also accepted for %d", seq, seq+1)
		}
	})
}

// A damaged version record is reported by Verify, and reads refuse it.
func TestVerifyFindsDamagedVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "doc", []byte("u")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveVersion(ctx, "doc", NewVersion{Kind: VersionAuto, Snapshot: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	var format []byte
	err = s.db.Update(func(tx *bolt.Tx) error {
		format = bytes.Clone(tx.Bucket(bucketRoot).Get(keyFormat))
		vb := tx.Bucket(bucketDocs).Bucket([]byte("doc")).Bucket(keyVersions)
		v := bytes.Clone(vb.Get(seqKey(1)))
		v[len(v)-1] ^= 1
		return vb.Put(seqKey(1), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(format, []byte{2}) {
		t.Fatalf("format after the first version = %x, want 02", format)
	}
	if _, err := s.Version(ctx, "doc", 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Version of a damaged record = %v, want ErrCorrupt", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, path, Options{})
	if !errors.Is(err, ErrCorrupt) || len(rep.Problems) != 1 {
		t.Fatalf("Verify = %v, problems %q; want one problem", err, rep.Problems)
	}
}
