package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func openWithHooks(t *testing.T, opts Options, h hooks) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collabd.db")
	s, err := open(path, opts, h)
	if err != nil {
		t.Fatalf("open(%s) = %v", path, err)
	}
	return s, path
}

// TestLoneWriterIsNotDelayed checks that a single Append commits at once. In
// a synctest bubble the clock only moves when every goroutine is blocked on
// it, so any batching timer in the commit path would show up as elapsed time.
func TestLoneWriterIsNotDelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openWithHooks(t, Options{}, hooks{})
		defer s.Close()
		ctx := context.Background()
		for i := range 5 {
			start := time.Now()
			seq, err := s.Append(ctx, "d", []byte("x"))
			if err != nil || seq != uint64(i+1) {
				t.Fatalf("Append() = %d, %v", seq, err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("lone Append took %v of bubble time, want 0 (no batching window)", d)
			}
		}
		if got := s.stats.commits.Load(); got != 5 {
			t.Errorf("commits = %d, want 5 (one per lone append)", got)
		}
	})
}

// TestBatchesWhatArrivesDuringACommit holds the first commit open while n
// writers submit, and checks that all n then commit in one transaction and
// are acknowledged only after it.
func TestBatchesWhatArrivesDuringACommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		release := make(chan struct{})
		var batches []int
		s, _ := openWithHooks(t, Options{}, hooks{beforeCommit: func(ops int) error {
			batches = append(batches, ops) // only the committer goroutine runs this
			if len(batches) == 1 {
				<-release
			}
			return nil
		}})
		defer s.Close()
		ctx := context.Background()

		first, err := s.Submit(ctx, "first", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the committer is now blocked inside the first commit

		var wg sync.WaitGroup
		acked := make(chan uint64, n)
		for i := range n {
			wg.Go(func() {
				seq, err := s.Append(ctx, fmt.Sprintf("doc-%d", i%7), []byte("y"))
				if err != nil {
					t.Errorf("Append() = %v", err)
				}
				acked <- seq
			})
		}
		synctest.Wait() // every writer is queued, blocked on its ack
		if len(acked) != 0 {
			t.Fatalf("%d appends acknowledged before their commit", len(acked))
		}
		select {
		case <-first.Done():
			t.Fatal("first request completed before its commit returned")
		default:
		}
		close(release)
		wg.Wait()
		if seq, err := first.Result(); err != nil || seq != 1 {
			t.Errorf("first.Result() = %d, %v", seq, err)
		}
		if len(batches) != 2 || batches[0] != 1 || batches[1] != n {
			t.Errorf("batch sizes = %v, want [1 %d]", batches, n)
		}
	})
}

func TestBatchLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var batches []int
		s, _ := openWithHooks(t, Options{MaxBatchOps: 4, MaxBatchBytes: 1000}, hooks{beforeCommit: func(ops int) error {
			batches = append(batches, ops)
			if len(batches) == 1 {
				<-release
			}
			return nil
		}})
		defer s.Close()
		ctx := context.Background()
		if _, err := s.Submit(ctx, "d", nil); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// 10 small requests (MaxBatchOps 4 → 4, 4, 2), then two of 1000 bytes
		// (MaxBatchBytes → one each).
		var ps []*Pending
		for range 10 {
			p, err := s.Submit(ctx, "d", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		for range 2 {
			p, err := s.Submit(ctx, "d", make([]byte, 1000))
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		close(release)
		for i, p := range ps {
			if seq, err := p.Result(); err != nil || seq != uint64(i+2) {
				t.Errorf("request %d: Result() = %d, %v; want %d", i, seq, err, i+2)
			}
		}
		want := []int{1, 4, 4, 3, 1}
		if fmt.Sprint(batches) != fmt.Sprint(want) {
			t.Errorf("batch sizes = %v, want %v", batches, want)
		}
	})
}

// TestCommitFailureFailsStore injects a commit error and checks the failure
// policy: the batch fails, nothing of it is on disk, every later write fails
// without a retry, reads still work, and a reopen recovers.
func TestCommitFailureFailsStore(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected: fsync: input/output error")
	commits := 0
	s, path := openWithHooks(t, Options{}, hooks{beforeCommit: func(int) error {
		if commits++; commits == 3 {
			return injected
		}
		return nil
	}})
	for i := range 2 {
		if _, err := s.Append(ctx, "d", []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Append(ctx, "d", []byte("lost"))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, injected) {
		t.Fatalf("Append in failing commit = %v, want ErrFailed wrapping the cause", err)
	}
	for name, err := range map[string]error{
		"Append":  func() error { _, err := s.Append(ctx, "d", []byte("later")); return err }(),
		"Compact": s.Compact(ctx, "d", nil, 1),
		"Delete":  s.Delete(ctx, "d"),
		"Err":     s.Err(),
	} {
		if !errors.Is(err, ErrFailed) || !errors.Is(err, injected) {
			t.Errorf("%s after failure = %v, want ErrFailed wrapping the cause", name, err)
		}
	}
	if commits != 3 {
		t.Errorf("commit attempts = %d, want 3 (no retry after the failure)", commits)
	}
	doc, err := s.Load(ctx, "d")
	if err != nil || len(doc.Tail) != 2 {
		t.Errorf("Load on failed store = %v, %v; want the 2 committed entries", doc, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seq, err := s.Append(ctx, "d", []byte("c")); err != nil || seq != 3 {
		t.Errorf("Append after reopen = %d, %v; want 3", seq, err)
	}
}

// TestQueuedRequestsFailWithTheStore checks that requests queued behind a
// failing commit are failed, not silently committed later.
func TestQueuedRequestsFailWithTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		injected := errors.New("injected")
		release := make(chan struct{})
		s, _ := openWithHooks(t, Options{MaxBatchOps: 2}, hooks{beforeCommit: func(int) error {
			<-release
			return injected
		}})
		defer s.Close()
		ctx := context.Background()
		var ps []*Pending
		for range 5 {
			p, err := s.Submit(ctx, "d", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		close(release)
		for i, p := range ps {
			if _, err := p.Result(); !errors.Is(err, ErrFailed) {
				t.Errorf("request %d: %v, want ErrFailed", i, err)
			}
		}
	})
}

func TestSubmitOrder(t *testing.T) {
	s, _ := openWithHooks(t, Options{}, hooks{})
	defer s.Close()
	ctx := context.Background()
	var ps []*Pending
	for i := range 200 {
		p, err := s.Submit(ctx, "d", []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		if seq, err := p.Wait(ctx); err != nil || seq != uint64(i+1) {
			t.Fatalf("request %d: seq %d, %v; want %d", i, seq, err, i+1)
		}
	}
	doc, err := s.Load(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range doc.Tail {
		if e.Data[0] != byte(i) {
			t.Fatalf("entry %d holds %d", i, e.Data[0])
		}
	}
}

func TestSubmitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		s, _ := openWithHooks(t, Options{QueueLen: 1}, hooks{beforeCommit: func(int) error {
			<-release
			return nil
		}})
		defer s.Close()
		bg := context.Background()
		p1, err := s.Submit(bg, "d", nil) // taken by the committer, which then blocks
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := s.Submit(bg, "d", nil); err != nil { // fills the queue
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		if _, err := s.Submit(ctx, "d", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Submit on a full queue = %v, want DeadlineExceeded", err)
		}
		if _, err := p1.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait past ctx = %v, want DeadlineExceeded", err)
		}
		close(release)
		if seq, err := p1.Result(); err != nil || seq != 1 {
			t.Errorf("Result() = %d, %v; the request commits even though a Wait gave up", seq, err)
		}
	})
}

// TestIdleMigration checks the committer's idle-time cleaning: a burst of
// appends leaves the journal past its target (below twice the target, where
// commits of requests do not clean at all, and far past it, where they do);
// with no request queued, cleaning-only commits bring it back under the
// target and then stop. Appends and compactions racing with the idle
// cleaning still commit, and every acknowledged update is stored exactly
// once, in order, before and after a reopen.
func TestIdleMigration(t *testing.T) {
	for _, c := range []struct{ target, docs, burst int }{
		{1000, 37, 1900}, // only idle commits clean
		{64, 37, 3000},   // commits of requests clean too
		{8, 1, 500},      // one document: migration in chunks of migrateChunk
	} {
		t.Run(fmt.Sprintf("target=%d/docs=%d/burst=%d", c.target, c.docs, c.burst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				s, path := openWithHooks(t, Options{JournalEntries: c.target}, hooks{})
				want := make(map[string][]string) // per document, every acked update in order
				snapped := make(map[string]uint64)
				burst := func(from, n int) {
					t.Helper()
					ps := make([]*Pending, n)
					for i := range n {
						id := fmt.Sprintf("doc-%d", (from+i)%c.docs)
						p, err := s.Submit(ctx, id, fmt.Appendf(nil, "u%d", from+i))
						if err != nil {
							t.Fatalf("Submit(%s) = %v", id, err)
						}
						ps[i] = p
					}
					for i, p := range ps {
						id := fmt.Sprintf("doc-%d", (from+i)%c.docs)
						seq, err := p.Result()
						if err != nil || seq != uint64(len(want[id])+1) {
							t.Fatalf("append %d to %s: Result() = %d, %v; want %d, nil", from+i, id, seq, err, len(want[id])+1)
						}
						want[id] = append(want[id], fmt.Sprintf("u%d", from+i))
					}
				}
				check := func(s *Store, when string) {
					t.Helper()
					for id, us := range want {
						d, err := s.Load(ctx, id)
						if err != nil {
							t.Fatalf("%s: Load(%s) = %v", when, id, err)
						}
						from := snapped[id]
						if d.Info.LastSeq != uint64(len(us)) || len(d.Tail) != len(us)-int(from) {
							t.Fatalf("%s: Load(%s): LastSeq %d, %d tail entries; want %d, %d", when, id, d.Info.LastSeq, len(d.Tail), len(us), len(us)-int(from))
						}
						for j, e := range d.Tail {
							if e.Seq != from+uint64(j)+1 || string(e.Data) != us[int(from)+j] {
								t.Fatalf("%s: Load(%s).Tail[%d] = %d %q, want %d %q", when, id, j, e.Seq, e.Data, from+uint64(j)+1, us[int(from)+j])
							}
						}
					}
				}

				burst(0, c.burst)
				// While the committer cleans in its idle time, more appends
				// and a compaction arrive; each waits for at most one
				// cleaning commit.
				burst(c.burst, c.docs)
				if err := s.Compact(ctx, "doc-0", []byte("snapshot"), 2); err != nil {
					t.Fatalf("Compact(doc-0) = %v", err)
				}
				snapped["doc-0"] = 2
				synctest.Wait() // the committer is idle: blocked on its queue
				st, err := s.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.JournalEntries > int64(c.target) || st.CleanCommits == 0 {
					t.Errorf("idle: %d journal entries, %d cleaning commits; want at most %d, more than 0", st.JournalEntries, st.CleanCommits, c.target)
				}
				cleans := st.CleanCommits
				check(s, "idle")
				synctest.Wait()
				if st, _ := s.Stats(ctx); st.CleanCommits != cleans {
					t.Errorf("an idle committer under its target made %d more cleaning commits", st.CleanCommits-cleans)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				rep, err := Verify(ctx, path, Options{})
				if err != nil || len(rep.Problems) > 0 || rep.JournalEntries != 0 {
					t.Fatalf("Verify() = %+v, %v", rep, err)
				}
				s2, err := Open(path, Options{JournalEntries: c.target})
				if err != nil {
					t.Fatal(err)
				}
				defer s2.Close()
				check(s2, "reopened")
			})
		})
	}
}
