package trace

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/collabd/collabd/crdt"
)

// Benchmarks on the recorded traces. Run with
//
//	go test -run='^$' -bench=. -benchmem ./internal/trace
//
// (COLLABD_TRACES points at the traces; default ../../../shared/traces).

func tracesDir() string {
	if d := os.Getenv("COLLABD_TRACES"); d != "" {
		return d
	}
	return "../../../shared/traces"
}

func loadBench(b *testing.B, name string) *Trace {
	b.Helper()
	tr, err := Load(filepath.Join(tracesDir(), name+".json.gz"))
	if err != nil {
		b.Skip(err)
	}
	return tr
}

var benchTraces = []string{"automerge-paper", "seph-blog1"}

// BenchmarkLocalReplay applies every patch of a sequential trace to one replica.
func BenchmarkLocalReplay(b *testing.B) {
	for _, name := range benchTraces {
		b.Run(name, func(b *testing.B) {
			tr := loadBench(b, name)
			for b.Loop() {
				d := crdt.NewDoc(crdt.Options{Agent: 1})
				x := d.Text(Root)
				for _, txn := range tr.Txns {
					for _, p := range txn.Patches {
						if err := splice(x, p); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(tr.Edits()), "ns/edit")
		})
	}
}

// BenchmarkRemoteApply applies the per-txn updates one at a time to a fresh
// replica: the server's hot path.
func BenchmarkRemoteApply(b *testing.B) {
	for _, name := range benchTraces {
		b.Run(name, func(b *testing.B) {
			tr := loadBench(b, name)
			_, updates, _, err := replaySequential(tr)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				d := crdt.NewDoc(crdt.Options{Agent: 99})
				for _, u := range updates {
					if err := d.ApplyUpdate(u); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(updates)), "ns/update")
		})
	}
}

// BenchmarkSnapshot encodes the final document and loads it back (reading
// the text). load is LoadSnapshot as it is (the structure is built on first
// use); load-eager builds and checks the whole structure first
// (Options.Eager: what every load did before, the reference); load+op is a
// load, a read of the text and then one remote op from a new agent at the
// middle of the text, which builds the structure.
func BenchmarkSnapshot(b *testing.B) {
	for _, name := range []string{"automerge-paper", "seph-blog1", "friendsforever"} {
		tr := loadBench(b, name)
		replay := replaySequential
		if tr.Concurrent() {
			replay = replayConcurrent
		}
		doc, _, _, err := replay(tr)
		if err != nil {
			b.Fatal(err)
		}
		snap := doc.EncodeSnapshot()
		b.Run(name+"/encode", func(b *testing.B) {
			for b.Loop() {
				doc.EncodeSnapshot()
			}
			b.ReportMetric(float64(len(snap)), "bytes")
		})
		load := func(b *testing.B, o crdt.Options) *crdt.Doc {
			d, err := crdt.LoadSnapshot(snap, o)
			if err != nil {
				b.Fatal(err)
			}
			if d.Text(Root).String() != tr.EndContent {
				b.Fatal("loaded text differs from the end content")
			}
			return d
		}
		b.Run(name+"/load", func(b *testing.B) {
			for b.Loop() {
				load(b, crdt.Options{Agent: 5})
			}
		})
		b.Run(name+"/load-eager", func(b *testing.B) {
			for b.Loop() {
				load(b, crdt.Options{Agent: 5, Eager: true})
			}
		})
		other := crdt.NewDoc(crdt.Options{Agent: 1 << 50})
		if err := other.ApplyUpdate(doc.EncodeDiff(nil)); err != nil {
			b.Fatal(err)
		}
		x := other.Text(Root)
		_ = other.TakeUpdate()
		if err := x.Insert(x.Len()/2, "!"); err != nil {
			b.Fatal(err)
		}
		op := other.TakeUpdate()
		b.Run(name+"/load+op", func(b *testing.B) {
			for b.Loop() {
				d := load(b, crdt.Options{Agent: 5})
				if err := d.ApplyUpdate(op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLiveHeap reports the heap a fully replayed document keeps alive.
func BenchmarkLiveHeap(b *testing.B) {
	for _, name := range benchTraces {
		b.Run(name, func(b *testing.B) {
			tr := loadBench(b, name)
			var heap float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				doc, _, _, err := replaySequential(tr)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
				runtime.KeepAlive(doc)
			}
			b.ReportMetric(heap, "live-MB")
		})
	}
}
