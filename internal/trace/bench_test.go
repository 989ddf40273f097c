package trace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/collabd/collabd/crdt"
)

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

func BenchmarkRemoteApply(b *testing.B) {
	tr := loadBench(b, "automerge-paper")
	_, updates, _, err := replaySequential(tr)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		d := crdt.NewDoc(crdt.Options{Agent: 99})
		for _, u := range updates {
			if err := d.ApplyUpdate(u); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSnapshot(b *testing.B) {
	tr := loadBench(b, "automerge-paper")
	doc, _, _, err := replaySequential(tr)
	if err != nil {
		b.Fatal(err)
	}
	snap := doc.EncodeSnapshot()
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			doc.EncodeSnapshot()
		}
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			d, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 5})
			if err != nil {
				b.Fatal(err)
			}
			_ = d.Text(Root).String()
		}
	})
}
