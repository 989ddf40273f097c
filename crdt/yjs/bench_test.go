package yjs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Trace benchmarks read the Yjs updates that interop/yjs/traces.mjs made from
// the editing traces (one update per transaction, as a Yjs client sends
// them) from $COLLABD_YJS_TRACE_UPDATES; bench/yjs-engine.sh makes them and
// runs these benchmarks next to Yjs's own figures from the same run.

var traceNames = []string{"automerge-paper", "seph-blog1", "friendsforever"}

func loadTraceUpdates(b *testing.B, name string) ([][]byte, int) {
	b.Helper()
	dir := os.Getenv("COLLABD_YJS_TRACE_UPDATES")
	if dir == "" {
		b.Skip("COLLABD_YJS_TRACE_UPDATES not set (bench/yjs-engine.sh sets it)")
	}
	data, err := os.ReadFile(filepath.Join(dir, name+".updates"))
	if err != nil {
		b.Skip(err)
	}
	var meta struct {
		TextLength int `json:"textLength"`
	}
	if m, err := os.ReadFile(filepath.Join(dir, name+".yjs.json")); err == nil {
		_ = json.Unmarshal(m, &meta)
	}
	lim := Limits{}.withDefaults()
	d := &decoder{b: data, lim: &lim}
	var ups [][]byte
	for d.more() {
		ups = append(ups, d.bytesView("update"))
	}
	if d.err != nil {
		b.Fatal(d.err)
	}
	return ups, meta.TextLength
}

func applyAll(b *testing.B, ups [][]byte) *Doc {
	d := New(Limits{})
	for i, u := range ups {
		if _, err := d.Apply(u); err != nil {
			b.Fatalf("update %d: %v", i, err)
		}
	}
	return d
}

func checkLen(b *testing.B, d *Doc, want int) {
	if want > 0 {
		if got := utf16Len([]byte(d.Text("t"))); got != want {
			b.Fatalf("text length %d, want %d", got, want)
		}
	}
}

// BenchmarkTraceRemoteApply: every update applied one by one to a fresh doc.
func BenchmarkTraceRemoteApply(b *testing.B) {
	for _, name := range traceNames {
		b.Run(name, func(b *testing.B) {
			ups, n := loadTraceUpdates(b, name)
			b.ReportAllocs()
			var d *Doc
			for b.Loop() {
				d = applyAll(b, ups)
			}
			checkLen(b, d, n)
			// heap held by the document: live heap with it minus live heap after dropping it
			var m1, m2 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m1)
			runtime.KeepAlive(d)
			d = nil
			runtime.GC()
			runtime.ReadMemStats(&m2)
			b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m2.HeapAlloc)), "heap-bytes")
		})
	}
}

// BenchmarkTraceEncodeState: EncodeState of the document after the trace.
func BenchmarkTraceEncodeState(b *testing.B) {
	for _, name := range traceNames {
		b.Run(name, func(b *testing.B) {
			ups, _ := loadTraceUpdates(b, name)
			d := applyAll(b, ups)
			var st []byte
			for b.Loop() {
				st = d.EncodeState()
			}
			b.ReportMetric(float64(len(st)), "state-bytes")
		})
	}
}

// BenchmarkTraceLoadRead: apply the encoded state to a fresh doc and read the text.
func BenchmarkTraceLoadRead(b *testing.B) {
	for _, name := range traceNames {
		b.Run(name, func(b *testing.B) {
			ups, n := loadTraceUpdates(b, name)
			st := applyAll(b, ups).EncodeState()
			for b.Loop() {
				d := New(Limits{})
				if _, err := d.Apply(st); err != nil {
					b.Fatal(err)
				}
				if n > 0 && utf16Len([]byte(d.Text("t"))) != n {
					b.Fatal("wrong text")
				}
			}
		})
	}
}
