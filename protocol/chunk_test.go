package protocol_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// history builds a document edited by three agents over two roots, with
// concurrent inserts, deletes in both directions, multi-byte text and a long
// pasted insert, and returns it.
func history(t *testing.T, seed uint64) *crdt.Doc {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	docs := []*crdt.Doc{crdt.NewDoc(crdt.Options{Agent: 1}), crdt.NewDoc(crdt.Options{Agent: 2}), crdt.NewDoc(crdt.Options{Agent: 3})}
	words := []string{"a", "héllo ", "世界", "🎉🎉", " ", "x"}
	for step := 0; step < 300; step++ {
		d := docs[rng.IntN(len(docs))]
		x := d.Text([]string{"body", "title"}[rng.IntN(2)])
		if n := x.Len(); n > 0 && rng.IntN(3) == 0 {
			p := rng.IntN(n)
			if err := x.Delete(p, 1+rng.IntN(min(n-p, 5))); err != nil {
				t.Fatal(err)
			}
		} else if err := x.Insert(rng.IntN(x.Len()+1), words[rng.IntN(len(words))]); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 { // exchange updates
			for _, to := range docs {
				for _, from := range docs {
					if to != from {
						if err := to.ApplyUpdate(from.EncodeDiff(to.StateVector())); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	if err := docs[0].Text("body").Insert(0, strings.Repeat("pasted ☃ text, ", 400)); err != nil {
		t.Fatal(err)
	}
	for _, from := range docs[1:] {
		if err := docs[0].ApplyUpdate(from.EncodeDiff(docs[0].StateVector())); err != nil {
			t.Fatal(err)
		}
	}
	return docs[0]
}

func TestSplitUpdate(t *testing.T) {
	src := history(t, 7)
	whole := src.EncodeDiff(nil)
	for _, max := range []int{150, 256, 1000, 4096, len(whole) - 1, len(whole), 0} {
		chunks, err := protocol.SplitUpdate(whole, max)
		if err != nil {
			t.Fatalf("SplitUpdate(%d bytes, %d): %v", len(whole), max, err)
		}
		limit := max
		if max <= 0 {
			limit = protocol.MaxChunk
		}
		if max >= len(whole) || max == 0 {
			if len(chunks) != 1 || !bytes.Equal(chunks[0], whole) {
				t.Errorf("SplitUpdate(%d bytes, %d) = %d chunks, want the update itself", len(whole), max, len(chunks))
			}
		} else if len(chunks) < 2 {
			t.Errorf("SplitUpdate(%d bytes, %d) = %d chunks, want several", len(whole), max, len(chunks))
		}
		d := crdt.NewDoc(crdt.Options{Agent: 99})
		for i, c := range chunks {
			if len(c) > limit {
				t.Errorf("max %d: chunk %d has %d bytes", max, i, len(c))
			}
			if _, err := crdt.DecodeUpdate(c, crdt.Limits{}); err != nil {
				t.Fatalf("max %d: chunk %d is not a valid update: %v", max, i, err)
			}
			if err := d.ApplyUpdate(c); err != nil {
				t.Fatalf("max %d: applying chunk %d: %v", max, i, err)
			}
			if d.Pending() != 0 {
				t.Errorf("max %d: after chunk %d, %d ops wait for dependencies; want each chunk to apply at once", max, i, d.Pending())
			}
		}
		if !d.StateVector().Equal(src.StateVector()) {
			t.Errorf("max %d: state vector %v, want %v", max, d.StateVector(), src.StateVector())
		}
		for _, r := range src.Roots() {
			if got, want := d.Text(r).String(), src.Text(r).String(); got != want {
				t.Errorf("max %d: root %q = %.40q..., want %.40q...", max, r, got, want)
			}
		}
		ref := crdt.NewDoc(crdt.Options{Agent: 99})
		if err := ref.ApplyUpdate(whole); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.EncodeSnapshot(), ref.EncodeSnapshot()) {
			t.Errorf("max %d: snapshot after the chunks differs from the snapshot after the whole update", max)
		}
	}
}

func TestSplitUpdateLongInsert(t *testing.T) {
	d := crdt.NewDoc(crdt.Options{Agent: 9})
	text := strings.Repeat("ab€😀", 5000) // 1-, 2-?, 3- and 4-byte code points
	if err := d.Text("t").Insert(0, text); err != nil {
		t.Fatal(err)
	}
	up := d.TakeUpdate()
	for _, max := range []int{120, 1 << 10, 64 << 10} {
		chunks, err := protocol.SplitUpdate(up, max)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(up)/max + 1; len(chunks) < want {
			t.Errorf("max %d: %d chunks for %d bytes, want at least %d", max, len(chunks), len(up), want)
		}
		e := crdt.NewDoc(crdt.Options{})
		for i, c := range chunks {
			if len(c) > max {
				t.Errorf("max %d: chunk %d has %d bytes", max, i, len(c))
			}
			if err := e.ApplyUpdate(c); err != nil {
				t.Fatalf("max %d: chunk %d: %v", max, i, err)
			}
		}
		if got := e.Text("t").String(); got != text {
			t.Errorf("max %d: text after chunks has %d bytes, want %d identical", max, len(got), len(text))
		}
	}
}

func TestSplitUpdateTinyMax(t *testing.T) {
	// Below the size of one single-code-point op, every op goes alone.
	d := crdt.NewDoc(crdt.Options{Agent: 9})
	_ = d.Text("t").Insert(0, "abc")
	_ = d.Text("t").Delete(1, 1)
	chunks, err := protocol.SplitUpdate(d.TakeUpdate(), 10)
	if err != nil {
		t.Fatal(err)
	}
	e := crdt.NewDoc(crdt.Options{})
	for _, c := range chunks {
		if err := e.ApplyUpdate(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Text("t").String(); got != "ac" || len(chunks) != 4 {
		t.Errorf("SplitUpdate(max 10) = %d chunks giving %q, want 4 chunks giving %q", len(chunks), got, "ac")
	}
}

func TestSplitUpdateRejectsGarbage(t *testing.T) {
	bad := append([]byte{0x94, 1, 0x90, 0x90, 0xdc, 0, 200}, make([]byte, 300)...)
	if chunks, err := protocol.SplitUpdate(bad, 100); err == nil {
		t.Errorf("SplitUpdate(garbage) = %d chunks, nil; want an error", len(chunks))
	}
	if got := protocol.ChunkUpdate(bad); len(got) != 1 || !bytes.Equal(got[0], bad) {
		t.Errorf("ChunkUpdate(garbage) = %d chunks, want the input whole", len(got))
	}
}

func TestChunkUpdate(t *testing.T) {
	d := crdt.NewDoc(crdt.Options{Agent: 9})
	_ = d.Text("t").Insert(0, strings.Repeat("0123456789", 60<<10)) // 600 KiB
	chunks := protocol.ChunkUpdate(d.TakeUpdate())
	if len(chunks) != 3 {
		t.Errorf("ChunkUpdate(600 KiB) = %d chunks, want 3", len(chunks))
	}
	for i, c := range chunks {
		if len(c) > protocol.MaxChunk {
			t.Errorf("chunk %d has %d bytes, more than MaxChunk", i, len(c))
		}
	}
}
