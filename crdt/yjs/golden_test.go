package yjs

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type goldenCase struct {
	Name string `json:"name"`
	oracleCase
}

func readGolden(t *testing.T) []goldenCase {
	t.Helper()
	data, err := os.ReadFile("testdata/golden/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenCase
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var g goldenCase
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(line), &g.oracleCase); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

// TestGoldenV1 checks updates and states written by Yjs 13.6.33
// (interop/yjs/golden.mjs): every one decodes and re-encodes to the same
// bytes; applied in the recorded order they give Yjs's views, state vector
// and delete set; and Go's EncodeState is byte-for-byte Yjs's
// encodeStateAsUpdate of the same document.
func TestGoldenV1(t *testing.T) {
	lim := Limits{}.withDefaults()
	for _, g := range readGolden(t) {
		t.Run(g.Name, func(t *testing.T) {
			for i, s := range append(append([]string{}, g.Updates...), g.State) {
				b := b64(t, s)
				u, err := decodeUpdateV1(b, &lim)
				if err != nil {
					t.Fatalf("decode %d: %v", i, err)
				}
				if got := u.encodeV1(); !bytes.Equal(got, b) {
					t.Fatalf("re-encode %d:\n got %x\nwant %x", i, got, b)
				}
			}
			d := New(Limits{})
			for i, s := range g.Updates {
				if _, err := d.Apply(b64(t, s)); err != nil {
					t.Fatalf("apply %d: %v", i, err)
				}
			}
			checkAgainst(t, "in order", d, &g.oracleCase)
			if got, want := d.EncodeState(), b64(t, g.State); !bytes.Equal(got, want) {
				t.Errorf("EncodeState:\n got %x\nwant %x", got, want)
			}
			d2 := New(Limits{})
			if _, err := d2.Apply(b64(t, g.State)); err != nil {
				t.Fatal(err)
			}
			checkAgainst(t, "from state", d2, &g.oracleCase)
			if got, want := d2.EncodeState(), b64(t, g.State); !bytes.Equal(got, want) {
				t.Errorf("EncodeState after loading Yjs's state:\n got %x\nwant %x", got, want)
			}
		})
	}
}
