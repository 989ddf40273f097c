package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/collabd/collabd/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// TestDiskFull fills a store capped by MaxSize: the commit that would grow
// the file fails, the store refuses further writes, nothing unacknowledged is
// stored, and a reopen with room continues.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "full.db")
	s, err := storage.Open(path, storage.Options{MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 4000)
	var acked []uint64
	var failErr error
	for i := 0; i < 1000; i++ {
		seq, err := s.Append(ctx, "d", payload)
		if err != nil {
			failErr = err
			break
		}
		acked = append(acked, seq)
	}
	if !errors.Is(failErr, storage.ErrFailed) || !errors.Is(failErr, berrors.ErrMaxSizeReached) {
		t.Fatalf("Append into a full file = %v, want ErrFailed wrapping ErrMaxSizeReached", failErr)
	}
	if len(acked) < 100 {
		t.Fatalf("only %d appends fit in 1 MiB", len(acked))
	}
	if _, err := s.Append(ctx, "other", []byte("small")); !errors.Is(err, storage.ErrFailed) {
		t.Errorf("Append after disk full = %v, want ErrFailed", err)
	}
	if !errors.Is(s.Err(), berrors.ErrMaxSizeReached) {
		t.Errorf("Err() = %v, want the disk-full cause", s.Err())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path)

	s, err = storage.Open(path, storage.Options{MaxSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := mustLoad(t, s, "d")
	if len(d.Tail) != len(acked) || d.Tail[len(d.Tail)-1].Seq != acked[len(acked)-1] {
		t.Errorf("after reopen: %d entries up to %d, acked %d up to %d",
			len(d.Tail), d.Info.LastSeq, len(acked), acked[len(acked)-1])
	}
	if seq, err := s.Append(ctx, "d", payload); err != nil || seq != uint64(len(acked)+1) {
		t.Errorf("Append after reopen with room = %d, %v", seq, err)
	}
}

// TestCorruptDocumentIsNeverOverwritten damages stored bytes and checks that
// loads are refused with ErrCorrupt, that writes to a document with a bad
// metadata record are refused, that Verify reports both, and that the stored
// bytes are unchanged afterwards.
func TestCorruptDocumentIsNeverOverwritten(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bad-snap", "bad-meta", "bad-log", "good"} {
		for i := range 3 {
			mustAppend(t, s, id, fmt.Sprint(i))
		}
		if err := s.Compact(ctx, id, []byte("snapshot"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	flip := func(id string, get func(b *bolt.Bucket) (*bolt.Bucket, []byte)) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			b, key := get(tx.Bucket([]byte("docs")).Bucket([]byte(id)))
			v := bytes.Clone(b.Get(key))
			v[len(v)-1] ^= 1
			return b.Put(key, v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	flip("bad-snap", func(b *bolt.Bucket) (*bolt.Bucket, []byte) { return b, []byte("s") })
	flip("bad-meta", func(b *bolt.Bucket) (*bolt.Bucket, []byte) { return b, []byte("m") })
	flip("bad-log", func(b *bolt.Bucket) (*bolt.Bucket, []byte) {
		l := b.Bucket([]byte("l"))
		k, _ := l.Cursor().Last()
		return l, k
	})
	before := hashDocs(t, path)

	rep, err := storage.Verify(ctx, path, storage.Options{})
	if !errors.Is(err, storage.ErrCorrupt) || len(rep.Problems) != 3 || rep.Documents != 1 {
		t.Errorf("Verify() = %v, %d problems %q, %d good documents; want ErrCorrupt, 3 problems, 1 good",
			err, len(rep.Problems), rep.Problems, rep.Documents)
	}

	s, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bad-snap", "bad-meta", "bad-log"} {
		if _, err := s.Load(ctx, id); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("Load(%s) = %v, want ErrCorrupt", id, err)
		}
		if err := s.Export(ctx, id, &bytes.Buffer{}); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("Export(%s) = %v, want ErrCorrupt", id, err)
		}
	}
	for name, err := range map[string]error{
		"Append":  func() error { _, err := s.Append(ctx, "bad-meta", []byte("x")); return err }(),
		"Compact": s.Compact(ctx, "bad-meta", []byte("empty"), 3),
		"Delete":  s.Delete(ctx, "bad-meta"),
		"Stat":    func() error { _, err := s.Stat(ctx, "bad-meta"); return err }(),
	} {
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s(bad-meta) = %v, want ErrCorrupt", name, err)
		}
	}
	if s.Err() != nil {
		t.Errorf("Err() = %v; a refused request must not fail the store", s.Err())
	}
	mustAppend(t, s, "good", "still works")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := hashDocs(t, path)
	for _, id := range []string{"bad-snap", "bad-meta", "bad-log"} {
		if before[id] != after[id] {
			t.Errorf("stored bytes of %s changed", id)
		}
	}
	if before["good"] == after["good"] {
		t.Errorf("the good document did not change; the test did not write")
	}
}

// hashDocs returns a hash of every key and value under each document bucket.
func hashDocs(t *testing.T, path string) map[string][32]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][32]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("docs")).ForEachBucket(func(id []byte) error {
			h := sha256.New()
			var walk func(b *bolt.Bucket)
			walk = func(b *bolt.Bucket) {
				_ = b.ForEach(func(k, v []byte) error { // the callback never fails
					fmt.Fprintf(h, "%x=%x;", k, v)
					if v == nil {
						walk(b.Bucket(k))
					}
					return nil
				})
			}
			walk(tx.Bucket([]byte("docs")).Bucket(id))
			out[string(id)] = [32]byte(h.Sum(nil))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
