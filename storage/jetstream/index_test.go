package jetstream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// listAll pages through List with limit and returns the ids.
func listAll(t *testing.T, s *jetstream.Store, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("List does not end")
		}
		page, err := s.List(ctxT(t), after, limit)
		if err != nil {
			t.Fatalf("List(%q, %d): %v", after, limit, err)
		}
		if len(page.Docs) > limit {
			t.Fatalf("List(%q, %d) = %d documents", after, limit, len(page.Docs))
		}
		for _, d := range page.Docs {
			if d.LastSeq == 0 || d.Created.IsZero() || d.Updated.IsZero() {
				t.Errorf("List entry %+v lacks a field", d)
			}
			ids = append(ids, d.ID)
		}
		if page.Next == "" {
			return ids
		}
		after = page.Next
	}
}

// TestList: written documents are listed once each, whatever the page
// size; a document only opened is not; a deleted one is not; a bad cursor
// is refused.
func TestList(t *testing.T) {
	c := natstest.Single(t)
	s := newStore(t, c.Connect(), jetstream.Options{})
	ctx := ctxT(t)
	var want []string
	for i := range 7 {
		doc := fmt.Sprintf("doc %d/.*>", i)
		if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
			t.Fatal(err)
		}
		submit(t, s, doc, "u")
		want = append(want, doc)
	}
	if _, err := s.Open(ctx, "opened only", 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	p, err := s.Delete(want[3])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, p); err != nil {
		t.Fatal(err)
	}
	want = slices.Delete(want, 3, 4)
	for _, limit := range []int{1, 2, 3, 100} {
		got := listAll(t, s, limit)
		if !slices.Equal(got, want) {
			t.Errorf("List with limit %d = %q, want %q", limit, got, want)
		}
	}
	for _, bad := range []string{"x", "c", "c1x", "c99999999999999999999999"} {
		if _, err := s.List(ctx, bad, 10); !errors.Is(err, jetstream.ErrBadCursor) {
			t.Errorf("List(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
	if _, err := s.List(ctx, "", 0); err == nil {
		t.Error("List with limit 0 succeeded")
	}
}

// TestReindex: a document whose index key is missing (written before the
// index existed) is indexed by its next Open, or by Reindex.
func TestReindex(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{})
	ctx := ctxT(t)
	for _, doc := range []string{"a", "b", "c"} {
		if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
			t.Fatal(err)
		}
		submit(t, s, doc, "u")
	}
	// Forget the index, as a cluster written before it had none.
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "collabd_docs")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "YQ"); err != nil { // "a"
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "Yg"); err != nil { // "b"
		t.Fatal(err)
	}
	if got := listAll(t, s, 10); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("List after purging a, b = %q", got)
	}
	if _, err := s.Open(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, 10); !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("List after opening a = %q, want c, a", got)
	}
	n, err := s.Reindex(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reindex = %d, %v; want 1 (b)", n, err)
	}
	if got := listAll(t, s, 10); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Fatalf("List after Reindex = %q, want c, a, b", got)
	}
	// A Store made on a cluster whose index was never filled fills it.
	if err := kv.Purge(ctx, "Yw"); err != nil { // "c"
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "meta.indexed"); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, nc, jetstream.Options{})
	if got := listAll(t, s2, 10); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("List after a new Store = %q, want a, b, c", got)
	}
	if _, err := kv.Get(ctx, "meta.indexed"); err != nil {
		t.Errorf("the index is not marked filled: %v", err)
	}
}
