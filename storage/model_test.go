package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/collabd/collabd/storage"
)

// modelDoc is what a document must look like after the operations so far.
type modelDoc struct {
	deleted  bool
	snap     []byte // nil: no snapshot
	snapSeq  uint64
	tail     []storage.Entry
	last     uint64
	appended int
}

// TestModel drives a store with a seeded random mix of appends (single and
// batched), compactions, deletes, imports and reopens, with a tiny journal so
// that entries keep moving from the journal to the per-document logs, and
// compares every document with a model after each step.
func TestModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(getenv("COLLABD_MODEL_SEED"), 10, 64); err == nil {
		seed = v
	}
	steps := 600
	if testing.Short() {
		steps = 150
	}
	t.Logf("seed %d (replay with COLLABD_MODEL_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "model.db")
	journalSizes := []int{1, 4, 16, 0}
	open := func() *storage.Store {
		s, err := storage.Open(path, storage.Options{JournalEntries: journalSizes[rng.IntN(len(journalSizes))]})
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		return s
	}
	s := open()
	defer func() { _ = s.Close() }() // the last Close is checked below
	model := map[string]*modelDoc{}
	ids := []string{"a", "b", "c", "d", "e", "f"}
	payload := func() []byte { return fmt.Appendf(nil, "p%d", rng.Uint64()) }

	check := func(step int, id string) {
		t.Helper()
		m := model[id]
		d, err := s.Load(ctx, id)
		switch {
		case m == nil:
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("step %d: Load(%s) = %v, want ErrNotFound", step, id, err)
			}
			return
		case m.deleted:
			if !errors.Is(err, storage.ErrDeleted) {
				t.Fatalf("step %d: Load(%s) = %v, want ErrDeleted", step, id, err)
			}
			return
		case err != nil:
			t.Fatalf("step %d: Load(%s) = %v", step, id, err)
		}
		if !bytes.Equal(d.Snapshot, m.snap) || d.Info.SnapshotSeq != m.snapSeq || d.Info.LastSeq != m.last ||
			!slices.EqualFunc(d.Tail, m.tail, func(a, b storage.Entry) bool { return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data) }) ||
			d.Info.LogEntries != int64(len(m.tail)) {
			t.Fatalf("step %d: Load(%s) = info %+v, snapshot %q, tail %v\nwant snapshot %q@%d, last %d, tail %v",
				step, id, d.Info, d.Snapshot, d.Tail, m.snap, m.snapSeq, m.last, m.tail)
		}
	}

	for step := range steps {
		id := ids[rng.IntN(len(ids))]
		m := model[id]
		switch op := rng.IntN(100); {
		case op < 50: // append, sometimes several at once
			n := 1 + rng.IntN(3)*rng.IntN(4)
			var ps []*storage.Pending
			var datas [][]byte
			for range n {
				data := payload()
				p, err := s.Submit(ctx, id, data)
				if err != nil {
					t.Fatalf("step %d: Submit() = %v", step, err)
				}
				ps, datas = append(ps, p), append(datas, data)
			}
			for i, p := range ps {
				seq, err := p.Wait(ctx)
				if m != nil && m.deleted {
					if !errors.Is(err, storage.ErrDeleted) {
						t.Fatalf("step %d: Append(deleted %s) = %v", step, id, err)
					}
					continue
				}
				if m == nil {
					m = &modelDoc{}
					model[id] = m
				}
				if err != nil || seq != m.last+1 {
					t.Fatalf("step %d: Append(%s) = %d, %v; want %d", step, id, seq, err, m.last+1)
				}
				m.last = seq
				m.tail = append(m.tail, storage.Entry{Seq: seq, Data: datas[i]})
			}
		case op < 65: // compact through a random point
			if m == nil || m.deleted {
				if err := s.Compact(ctx, id, nil, 0); err == nil {
					t.Fatalf("step %d: Compact(%s) of a missing or deleted document succeeded", step, id)
				}
				continue
			}
			through := m.snapSeq + uint64(rng.IntN(int(m.last-m.snapSeq)+1))
			all := append(decodeModelSnap(t, m.snap), m.tail...)
			var keep []storage.Entry
			for _, e := range all {
				if e.Seq <= through {
					keep = append(keep, e)
				}
			}
			snap := encodeTestSnapshot(keep)
			if err := s.Compact(ctx, id, snap, through); err != nil {
				t.Fatalf("step %d: Compact(%s, %d) = %v", step, id, through, err)
			}
			m.snap, m.snapSeq = snap, through
			m.tail = slices.DeleteFunc(m.tail, func(e storage.Entry) bool { return e.Seq <= through })
		case op < 72: // delete
			err := s.Delete(ctx, id)
			switch {
			case m == nil && !errors.Is(err, storage.ErrNotFound),
				m != nil && m.deleted && !errors.Is(err, storage.ErrDeleted),
				m != nil && !m.deleted && err != nil:
				t.Fatalf("step %d: Delete(%s) = %v", step, id, err)
			}
			if m != nil {
				m.deleted = true
			}
		case op < 82: // export another document and import it over this one
			src := ids[rng.IntN(len(ids))]
			sm := model[src]
			if sm == nil || sm.deleted {
				continue
			}
			var exp bytes.Buffer
			if err := s.Export(ctx, src, &exp); err != nil {
				t.Fatalf("step %d: Export(%s) = %v", step, src, err)
			}
			if _, err := s.Import(ctx, &exp, storage.ImportOptions{ID: id, Replace: true}); err != nil {
				t.Fatalf("step %d: Import(%s → %s) = %v", step, src, id, err)
			}
			model[id] = &modelDoc{snap: sm.snap, snapSeq: sm.snapSeq, last: sm.last, tail: slices.Clone(sm.tail)}
		case op < 86: // reopen, with another journal size
			if err := s.Close(); err != nil {
				t.Fatalf("step %d: Close() = %v", step, err)
			}
			s = open()
			if st, _ := s.Stats(ctx); st.JournalEntries != 0 {
				t.Fatalf("step %d: %d journal entries after a clean Close", step, st.JournalEntries)
			}
		default: // reads that must agree with Load
			if m != nil && !m.deleted {
				after := m.snapSeq + uint64(rng.IntN(int(m.last-m.snapSeq)+1))
				es, err := s.Since(ctx, id, after, 0)
				want := slices.DeleteFunc(slices.Clone(m.tail), func(e storage.Entry) bool { return e.Seq <= after })
				if err != nil || len(es) != len(want) || (len(es) > 0 && es[0].Seq != want[0].Seq) {
					t.Fatalf("step %d: Since(%s, %d) = %d entries, %v; want %d", step, id, after, len(es), err, len(want))
				}
			}
		}
		check(step, id)
		if step%50 == 49 {
			checkAll(t, s, model, ids, check, step)
		}
	}
	checkAll(t, s, model, ids, check, steps)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path)
}

func checkAll(t *testing.T, s *storage.Store, model map[string]*modelDoc, ids []string, check func(int, string), step int) {
	t.Helper()
	for _, id := range ids {
		check(step, id)
	}
	all, err := s.List(context.Background(), storage.ListOptions{IncludeDeleted: true})
	if err != nil || len(all) != len(model) {
		t.Fatalf("step %d: List() = %d documents, %v; model has %d", step, len(all), err, len(model))
	}
	st, err := s.Stats(context.Background())
	var live, entries int64
	for _, m := range model {
		if !m.deleted {
			live++
			entries += int64(len(m.tail))
		}
	}
	if err != nil || st.Documents != live || st.LogEntries != entries {
		t.Fatalf("step %d: Stats() = %+v, %v; want %d documents, %d entries", step, st, err, live, entries)
	}
	verifyLive(t, s)
}

func decodeModelSnap(t *testing.T, b []byte) []storage.Entry {
	t.Helper()
	es, err := decodeTestSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
