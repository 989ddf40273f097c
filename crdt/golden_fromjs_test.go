package crdt_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/collabd/collabd/crdt"
)

// TestGoldenJSSnapshots loads snapshots written by clients/js
// (testdata/golden/js_snapshots.json): LZ4 from its own block compressor and
// DEFLATE from fflate, which are not byte-identical with Go's compressors.
// Go must load them to the recorded texts and re-encode the same body.
func TestGoldenJSSnapshots(t *testing.T) {
	raw, err := os.ReadFile("../testdata/golden/js_snapshots.json")
	if err != nil {
		t.Fatalf("read JS vectors: %v", err)
	}
	var f struct {
		Snapshots []struct {
			Name, Agent, Body, LZ4, Deflate string
			Texts                           map[string]string
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Snapshots) == 0 {
		t.Fatal("no JS snapshot vectors")
	}
	for _, s := range f.Snapshots {
		for kind, h := range map[string]string{"lz4": s.LZ4, "deflate": s.Deflate} {
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			if b[2] == 0 {
				t.Errorf("%s %s: snapshot is not compressed; the vector tests nothing", s.Name, kind)
			}
			d, err := crdt.LoadSnapshot(b, crdt.Options{Agent: agentOf(t, s.Agent), Eager: true}) // eager: the body is re-encoded from the structure
			if err != nil {
				t.Fatalf("%s %s: LoadSnapshot: %v", s.Name, kind, err)
			}
			for root, want := range s.Texts {
				if got := d.Text(root).String(); got != want {
					t.Errorf("%s %s: root %q = %q, want %q", s.Name, kind, root, got, want)
				}
			}
			if body := hex.EncodeToString(snapshotBody(t, d.EncodeSnapshotWith(crdt.CompressSmall))); body != s.Body {
				t.Errorf("%s %s: re-encoded body differs from the JS body", s.Name, kind)
			}
		}
	}
}
