package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/collabd/collabd/storage"
	bolt "go.etcd.io/bbolt"
)

// Benchmarks run with fsync on, on the disk that holds the test's temporary
// directory (set TMPDIR to measure another). Results and the command are in
// BENCHMARKS.md. Custom metrics: ops/s, ack latency percentiles in µs, and
// ops/commit for group commit.

const benchPayload = 200 // bytes per update: a typical typing batch

func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkFsync is the reference: append 4 KiB to a file and fdatasync.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte("x"), 4096)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatencies(b, lat)
}

// BenchmarkBoltUpdatePerOp is the baseline group commit must beat: one bbolt
// transaction (two fdatasyncs) per op.
func BenchmarkBoltUpdatePerOp(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bolt.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("v"), benchPayload)
	var seq uint64
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("log"))
			if err != nil {
				return err
			}
			seq++
			return bk.Put(fmt.Appendf(nil, "%016x", seq), val)
		})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatencies(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchStore(b *testing.B) *storage.Store {
	s, err := storage.Open(filepath.Join(b.TempDir(), "bench.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// BenchmarkAppendLone: one writer, one Append at a time. Its p50 is to be
// compared with BenchmarkFsync's (target: at most 2×).
func BenchmarkAppendLone(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), benchPayload)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.Append(ctx, "doc", val); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatencies(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkAppendLoneVsFsync alternates one plain fsync (4 KiB append +
// fdatasync, in the same directory) with one lone Append, so that both see
// the same disk weather, and reports both medians and their ratio (target:
// at most 2). A bbolt commit needs two fdatasyncs (data, then meta page).
func BenchmarkAppendLoneVsFsync(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte("x"), 4096)
	val := bytes.Repeat([]byte("v"), benchPayload)
	var fs, ap []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Append(ctx, "doc", val); err != nil {
			b.Fatal(err)
		}
		fs, ap = append(fs, t1.Sub(t0)), append(ap, time.Since(t1))
	}
	slices.Sort(fs)
	slices.Sort(ap)
	fp50, ap50 := fs[len(fs)/2], ap[len(ap)/2]
	b.ReportMetric(float64(fp50.Nanoseconds())/1e3, "fsync-p50-µs")
	b.ReportMetric(float64(ap50.Nanoseconds())/1e3, "append-p50-µs")
	b.ReportMetric(float64(ap50)/float64(fp50), "ratio")
}

// BenchmarkAppendConcurrent: W writers, each appending to documents spread
// over D, all through the group committer, with the journal at its target.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, c := range []struct{ writers, docs int }{
		{1, 1}, {10, 10}, {100, 100}, {128, 1}, {128, 500}, {1000, 500},
	} {
		b.Run(fmt.Sprintf("writers=%d/docs=%d", c.writers, c.docs), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			val := bytes.Repeat([]byte("v"), benchPayload)
			fillJournal(b, s, c.docs, val)
			var next atomic.Int64
			lats := make([][]time.Duration, c.writers)
			before, _ := s.Stats(ctx)
			cpu0 := processCPU(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range c.writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						doc := fmt.Sprintf("doc-%d", (int(i)*7919+w)%c.docs)
						t0 := time.Now()
						if _, err := s.Append(ctx, doc, val); err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu := processCPU(b) - cpu0
			after, _ := s.Stats(ctx)
			reportLatencies(b, slices.Concat(lats...))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			if commits := after.Commits - before.Commits; commits > 0 {
				b.ReportMetric(float64(after.Requests-before.Requests)/float64(commits), "ops/commit")
				b.ReportMetric(float64((after.CommitTime-before.CommitTime).Microseconds())/float64(commits), "commit-µs")
			}
			// CPU of the whole process (committer, writers, GC) per append:
			// less sensitive than ops/s to other tenants of a shared machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(after.JournalEntries), "journal-end")
		})
	}
}

// processCPU is the user+system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillJournal brings the journal to its default target (65,536 entries)
// spread over docs documents, untimed, so that the measured appends run in
// steady state: every commit also migrates journal entries into the
// per-document logs, as on a busy server.
func fillJournal(b *testing.B, s *storage.Store, docs int, val []byte) {
	b.Helper()
	ctx := context.Background()
	var last *storage.Pending
	for i := range 1 << 16 {
		p, err := s.Submit(ctx, fmt.Sprintf("doc-%d", i%docs), val)
		if err != nil {
			b.Fatal(err)
		}
		last = p
	}
	if _, err := last.Wait(ctx); err != nil {
		b.Fatal(err)
	}
}

// makeTestDoc creates document id with a 64 KiB snapshot covering seq 1
// and a tail of `tail` 200-byte entries. With inJournal the tail is left in
// the journal (as after recent edits); otherwise it is in the document's own
// log (as after a migration or an Import).
func makeTestDoc(b *testing.B, s *storage.Store, id string, tail int, inJournal bool) {
	b.Helper()
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), benchPayload)
	if !inJournal {
		var exp bytes.Buffer
		dir := b.TempDir()
		src, err := storage.Open(filepath.Join(dir, "src.db"), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		makeTestDoc(b, src, "src", tail, true)
		err = src.Export(ctx, "src", &exp)
		if cerr := src.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Import(ctx, &exp, storage.ImportOptions{ID: id, Replace: true}); err != nil {
			b.Fatal(err)
		}
		return
	}
	var last *storage.Pending
	for range tail + 1 {
		p, err := s.Submit(ctx, id, val)
		if err != nil {
			b.Fatal(err)
		}
		last = p
	}
	first, err := last.Wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Compact(ctx, id, bytes.Repeat([]byte("s"), 64<<10), first-uint64(tail)); err != nil {
		b.Fatal(err)
	}
}

var tailPlaces = []struct {
	name      string
	inJournal bool
}{{"tail=journal", true}, {"tail=log", false}}

// BenchmarkLoad: a 64 KiB snapshot plus a 1,000-entry tail (target ≤ 5 ms).
func BenchmarkLoad(b *testing.B) {
	for _, tp := range tailPlaces {
		b.Run(tp.name, func(b *testing.B) {
			s := benchStore(b)
			makeTestDoc(b, s, "doc", 1000, tp.inJournal)
			ctx := context.Background()
			for b.Loop() {
				d, err := s.Load(ctx, "doc")
				if err != nil || len(d.Tail) != 1000 {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// BenchmarkCompact: replace the snapshot of a document with a 1,000-entry
// tail by a fresh 64 KiB one covering all of it (through=last) or half of it
// (target ≤ 10 ms).
func BenchmarkCompact(b *testing.B) {
	for _, tp := range tailPlaces {
		for _, half := range []bool{false, true} {
			name := tp.name + map[bool]string{false: "/through=last", true: "/through=half"}[half]
			b.Run(name, func(b *testing.B) {
				s := benchStore(b)
				ctx := context.Background()
				snap := bytes.Repeat([]byte("S"), 64<<10)
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					id := fmt.Sprintf("doc-%d", i)
					makeTestDoc(b, s, id, 1000, tp.inJournal)
					info, err := s.Stat(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					through := info.LastSeq
					if half {
						through = info.SnapshotSeq + 500
					}
					b.StartTimer()
					if err := s.Compact(ctx, id, snap, through); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpenAfterCrash: Open of a store whose journal holds 65,536
// entries over 500 documents (what a crash at the journal target leaves),
// which rebuilds the journal index.
func BenchmarkOpenAfterCrash(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := storage.Open(src, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fillJournal(b, s, 500, bytes.Repeat([]byte("v"), benchPayload))
	// A hot backup keeps the journal as it is; Close would empty it.
	copyPath := filepath.Join(dir, "crashed.db")
	if err := s.BackupFile(context.Background(), copyPath); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := storage.Open(copyPath, storage.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
