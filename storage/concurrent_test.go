package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/collabd/collabd/storage"
)

// TestConcurrentUse runs writers, a compactor, readers, a deleter and hot
// backups at once (meant for -race), then checks that every acknowledged
// append of a live document is in its snapshot or tail exactly once, and that
// deleted documents stay deleted.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, storage.Options{JournalEntries: 32}) // keep migration busy
	const (
		writers  = 8
		perW     = 150
		docs     = 12
		victimID = "doc-00" // deleted midway
	)
	type acked struct {
		doc  string
		seq  uint64
		data []byte
	}
	mustAppend(t, s, victimID, "first") // exists before the Delete, so Delete cannot miss it
	results := make([][]acked, writers)
	var writersWG, othersWG sync.WaitGroup
	done := make(chan struct{})
	deleted := make(chan struct{})
	for w := range writers {
		writersWG.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range perW {
				doc := fmt.Sprintf("doc-%02d", rng.IntN(docs))
				data := fmt.Appendf(nil, "w%d-%d", w, i)
				// Half through Submit with a later wait, like a document owner.
				var seq uint64
				var err error
				if i%2 == 0 {
					seq, err = s.Append(ctx, doc, data)
				} else {
					var p *storage.Pending
					if p, err = s.Submit(ctx, doc, data); err == nil {
						<-p.Done()
						seq, err = p.Result()
					}
				}
				if errors.Is(err, storage.ErrDeleted) && doc == victimID {
					continue
				}
				if err != nil {
					t.Errorf("Append(%s) = %v", doc, err)
					return
				}
				results[w] = append(results[w], acked{doc, seq, data})
				if w == 0 && i == perW/2 {
					if err := s.Delete(ctx, victimID); err != nil {
						t.Errorf("Delete() = %v", err)
					}
					close(deleted)
				}
			}
		})
	}
	// Compactor: folds random tail prefixes into the test snapshot.
	othersWG.Go(func() {
		rng := rand.New(rand.NewPCG(7, 7))
		for {
			select {
			case <-done:
				return
			default:
			}
			doc := fmt.Sprintf("doc-%02d", 1+rng.IntN(docs-1))
			d, err := s.Load(ctx, doc)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Errorf("Load(%s) = %v", doc, err)
				return
			}
			if len(d.Tail) == 0 {
				continue
			}
			through := d.Tail[rng.IntN(len(d.Tail))].Seq
			snap, err := compactionSnapshot(d, through)
			if err == nil {
				err = s.Compact(ctx, doc, snap, through)
			}
			if err != nil {
				t.Errorf("Compact(%s) = %v", doc, err)
				return
			}
		}
	})
	// Readers: List, Stats, Since, Export and Backup against the moving store.
	othersWG.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.List(ctx, storage.ListOptions{IncludeDeleted: true}); err != nil {
				t.Errorf("List() = %v", err)
			}
			if _, err := s.Stats(ctx); err != nil {
				t.Errorf("Stats() = %v", err)
			}
			if _, err := s.Since(ctx, "doc-03", 0, 10); err != nil && !errors.Is(err, storage.ErrCompacted) && !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Since() = %v", err)
			}
			if err := s.Export(ctx, "doc-04", io.Discard); err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Export() = %v", err)
			}
			if _, err := s.Backup(ctx, io.Discard); err != nil {
				t.Errorf("Backup() = %v", err)
			}
		}
	})
	writersWG.Wait()
	close(done)
	othersWG.Wait()
	<-deleted

	stored := map[string]map[uint64][]byte{}
	for i := range docs {
		doc := fmt.Sprintf("doc-%02d", i)
		d, err := s.Load(ctx, doc)
		if doc == victimID {
			if !errors.Is(err, storage.ErrDeleted) {
				t.Errorf("Load(%s) after Delete = %v, want ErrDeleted", doc, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Load(%s) = %v", doc, err)
		}
		es, err := allEntries(d)
		if err != nil {
			t.Fatal(err)
		}
		stored[doc] = map[uint64][]byte{}
		for _, e := range es {
			if _, dup := stored[doc][e.Seq]; dup {
				t.Errorf("%s seq %d stored twice", doc, e.Seq)
			}
			stored[doc][e.Seq] = e.Data
		}
	}
	n := 0
	for _, rs := range results {
		for _, a := range rs {
			if a.doc == victimID {
				continue
			}
			n++
			if got, ok := stored[a.doc][a.seq]; !ok || !bytes.Equal(got, a.data) {
				t.Errorf("acked %s/%d %q: stored %q (present %v)", a.doc, a.seq, a.data, got, ok)
			}
		}
	}
	total := 0
	for _, m := range stored {
		total += len(m)
	}
	if total != n {
		t.Errorf("%d entries stored for live documents, %d acknowledged", total, n)
	}
	verifyLive(t, s)
}
