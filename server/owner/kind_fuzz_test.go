package owner

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRecordKind: any stored record (disk input) splits into a kind and
// the engine's bytes, or is refused as corrupt: never a panic, never a
// Yjs record read as native or the reverse, and record() round-trips.
func FuzzRecordKind(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x93, 1, 2, 3})
	f.Add(record(KindYjs, []byte{0, 0}))
	f.Add([]byte{0xC1})
	f.Add([]byte{0xC1, 'y'})
	f.Add([]byte{0xC1, 'z', 1, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		k, data, err := RecordKind(rec)
		switch {
		case len(rec) > 0 && rec[0] == 0xC1 && !bytes.HasPrefix(rec, yjsRecord):
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("% x: %v %v, want ErrCorrupt", rec, k, err)
			}
			return
		case err != nil:
			t.Fatalf("% x: %v", rec, err)
		}
		if !bytes.Equal(record(k, data), rec) {
			t.Fatalf("% x: kind %v, data % x does not encode back", rec, k, data)
		}
		if name, ok := ParseKind(k.String()); !ok || name != k {
			t.Fatalf("kind %v does not parse back from %q", k, k.String())
		}
	})
}
