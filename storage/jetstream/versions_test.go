package jetstream_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// TestVersions: versions are listed newest first, paged by before, read
// back with their snapshot and metadata, kept apart per document, refused
// past a record's size, and deleted with their document.
func TestVersions(t *testing.T) {
	c := natstest.Single(t)
	s := newStore(t, c.Connect(), jetstream.Options{})
	ctx := ctxT(t)
	const doc, other = "a/b.c", "other"
	var seqs []uint64
	for i := range 3 {
		p, err := s.SubmitVersion(doc, []byte(fmt.Sprintf("meta%d", i)), []byte(fmt.Sprintf("snapshot %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		seq, err := wait(t, p)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		if i == 0 { // another document's version in between
			if p, err := s.SubmitVersion(other, nil, []byte("x")); err != nil {
				t.Fatal(err)
			} else if _, err := wait(t, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	vs, err := s.Versions(ctx, doc, 1<<62, 2)
	if err != nil || len(vs) != 2 || vs[0].Seq != seqs[2] || vs[1].Seq != seqs[1] || string(vs[0].Meta) != "meta2" ||
		vs[0].Snapshot != nil || vs[0].Size != len("snapshot 2") || vs[0].Time.IsZero() {
		t.Fatalf("Versions(limit 2) = %+v, %v; want seqs %d, %d", vs, err, seqs[2], seqs[1])
	}
	vs, err = s.Versions(ctx, doc, seqs[1], 2)
	if err != nil || len(vs) != 1 || vs[0].Seq != seqs[0] {
		t.Fatalf("Versions(before %d) = %+v, %v; want %d", seqs[1], vs, err, seqs[0])
	}
	v, err := s.Version(ctx, doc, seqs[1])
	if err != nil || string(v.Snapshot) != "snapshot 1" || string(v.Meta) != "meta1" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	if _, err := s.Version(ctx, other, seqs[1]); !errors.Is(err, jetstream.ErrNoVersion) {
		t.Errorf("another document's version = %v, want ErrNoVersion", err)
	}
	if _, err := s.Version(ctx, doc, 1<<40); !errors.Is(err, jetstream.ErrNoVersion) {
		t.Errorf("a version past the end = %v, want ErrNoVersion", err)
	}
	if _, err := s.SubmitVersion(doc, nil, make([]byte, 9<<20)); !errors.Is(err, jetstream.ErrTooLarge) {
		t.Errorf("a version past a record = %v, want ErrTooLarge", err)
	}
	if vs, err := s.Versions(ctx, "none", 1<<62, 10); err != nil || len(vs) != 0 {
		t.Errorf("Versions of a document without any = %v, %v", vs, err)
	}
	// Deleting the document deletes its versions.
	if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	submit(t, s, doc, "u")
	p, err := s.Delete(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, p); err != nil {
		t.Fatal(err)
	}
	// The purge follows the tombstone's ack on the publishing goroutine;
	// Close waits for it.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, c.Connect(), jetstream.Options{})
	if vs, err := s2.Versions(ctx, doc, 1<<62, 10); !errors.Is(err, jetstream.ErrDeleted) {
		t.Errorf("versions after the delete = %+v, %v; want ErrDeleted", vs, err)
	}
	if _, err := s2.Version(ctx, doc, seqs[0]); !errors.Is(err, jetstream.ErrDeleted) {
		t.Errorf("a version after the delete = %v; want ErrDeleted", err)
	}
	js, err := njs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, "collabd_versions")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := str.GetLastMsgForSubject(ctx, "collabd.ver.YS9iLmM"); !errors.Is(err, njs.ErrMsgNotFound) { // "a/b.c"
		t.Errorf("the deleted document's versions are still stored: %v, %v", m, err)
	}
	if vs, err := s2.Versions(ctx, other, 1<<62, 10); err != nil || len(vs) != 1 {
		t.Errorf("the other document's versions after the delete = %+v, %v", vs, err)
	}
}

// TestPruneVersions: after each stored version, Options.PruneVersions
// sees the document's versions oldest first and the ones it returns are
// deleted.
func TestPruneVersions(t *testing.T) {
	c := natstest.Single(t)
	seen := make(chan int, 16)
	s := newStore(t, c.Connect(), jetstream.Options{PruneVersions: func(_ time.Time, _ string, vs []jetstream.StoredVersion) []uint64 {
		seen <- len(vs)
		var drop []uint64
		for _, v := range vs[:len(vs)-1] { // keep the newest only
			drop = append(drop, v.Seq)
		}
		return drop
	}})
	ctx := ctxT(t)
	var last uint64
	for i := range 3 {
		p, err := s.SubmitVersion("d", []byte(fmt.Sprint(i)), []byte("s"))
		if err != nil {
			t.Fatal(err)
		}
		if last, err = wait(t, p); err != nil {
			t.Fatal(err)
		}
		select { // the pruning follows the ack
		case <-seen:
		case <-ctx.Done():
			t.Fatal("PruneVersions not called")
		}
	}
	if err := s.Close(ctx); err != nil { // waits for the last pruning
		t.Fatal(err)
	}
	s2 := newStore(t, c.Connect(), jetstream.Options{})
	vs, err := s2.Versions(ctx, "d", 0, 10)
	if err != nil || len(vs) != 1 || vs[0].Seq != last {
		t.Errorf("versions after pruning = %+v, %v; want only %d", vs, err, last)
	}
}
