package yjs

import (
	"bytes"
	"errors"
	"testing"
)

func goldenSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, c := range loadGolden(f, "testdata/golden.json") {
		if b := unb64(f, c.Message); len(b) < 4096 {
			out = append(out, b)
		}
	}
	return out
}

// FuzzDecode: any frame decodes to a message that re-encodes to the same
// bytes, or to a typed error.
func FuzzDecode(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, Limits{MaxMessage: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var again []byte
		switch m.Type {
		case TypeSync:
			again = AppendSync(nil, m.Sync, m.Payload)
		case TypeAwareness:
			again = AppendAwareness(nil, m.Payload)
		case TypeAuth:
			again = AppendAuthDenied(nil, m.Reason)
		case TypeQueryAwareness:
			again = AppendQueryAwareness(nil)
		}
		// lib0 may write a varUint with redundant continuation bytes; a
		// decoded message re-encodes minimally, and that decodes the same
		if m2, err := Decode(again, Limits{MaxMessage: 1 << 16}); err != nil || m2.Type != m.Type || m2.Sync != m.Sync || m2.Reason != m.Reason || !bytes.Equal(m2.Payload, m.Payload) {
			t.Fatalf("round trip: %+v → %x → %+v, %v", m, again, m2, err)
		}
	})
}

// FuzzDecodeAwareness: any awareness update decodes to entries that
// re-encode and decode the same, or to a typed error.
func FuzzDecodeAwareness(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		if m, err := Decode(s, Limits{}); err == nil && m.Type == TypeAwareness {
			f.Add(m.Payload)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeAwareness(b, Limits{})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		es2, err := DecodeAwareness(AppendAwarenessUpdate(nil, es), Limits{})
		if err != nil || len(es2) != len(es) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range es {
			if es[i] != es2[i] {
				t.Fatalf("entry %d: %+v → %+v", i, es[i], es2[i])
			}
		}
	})
}
