package mp

import (
	"errors"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	uints := []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	for _, v := range uints {
		b = AppendUint(b, v)
	}
	b = AppendString(b, "héllo")
	b = AppendBin(b, []byte{1, 2, 3})
	b = AppendArrayLen(b, 70000)
	b = AppendBool(b, true)
	b = AppendNil(b)
	r := NewReader(b)
	if m := AppendMapLen(AppendMapLen(AppendMapLen(nil, 3), 300), 70000); len(m) != 1+3+5 {
		t.Fatalf("AppendMapLen encodings: % x", m)
	}
	if n, err := NewReader(AppendString(AppendString(AppendMapLen(nil, 1), "k"), "v")).MapLen(); n != 1 || err != nil {
		t.Fatalf("MapLen: %d, %v", n, err)
	}
	for _, want := range uints {
		if got, err := r.Uint(); err != nil || got != want {
			t.Fatalf("Uint: got %d, %v; want %d", got, err, want)
		}
	}
	if s, err := r.StringBytes(); err != nil || string(s) != "héllo" {
		t.Fatalf("StringBytes: %q, %v", s, err)
	}
	if p, err := r.Bin(); err != nil || len(p) != 3 {
		t.Fatalf("Bin: %v, %v", p, err)
	}
	// The array header claims more elements than bytes remain: refused.
	if _, err := r.ArrayLen(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ArrayLen bomb: %v", err)
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(*Reader) error
		want error
	}{
		{"str32 bomb", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, func(r *Reader) error { _, err := r.StringBytes(); return err }, ErrTooLarge},
		{"bin32 bomb", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, func(r *Reader) error { _, err := r.Bin(); return err }, ErrTooLarge},
		{"array32 bomb", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, func(r *Reader) error { _, err := r.ArrayLen(); return err }, ErrTooLarge},
		{"map32 bomb", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, func(r *Reader) error { _, err := r.MapLen(); return err }, ErrTooLarge},
		{"fixmap past the end", []byte{0x82, 0xa1, 'k', 0x01}, func(r *Reader) error { _, err := r.MapLen(); return err }, ErrTooLarge},
		{"array as map", []byte{0x90}, func(r *Reader) error { _, err := r.MapLen(); return err }, ErrType},
		{"truncated uint32", []byte{0xce, 0x01}, func(r *Reader) error { _, err := r.Uint(); return err }, ErrShort},
		{"negative int", []byte{0xd0, 0xff}, func(r *Reader) error { _, err := r.Uint(); return err }, ErrType},
		{"string as uint", []byte{0xa1, 'x'}, func(r *Reader) error { _, err := r.Uint(); return err }, ErrType},
		{"empty", nil, func(r *Reader) error { _, err := r.ArrayLen(); return err }, ErrShort},
	}
	for _, tc := range tests {
		r := NewReader(tc.in)
		if err := tc.read(r); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if r.Offset() != 0 {
			t.Errorf("%s: a failed read consumed %d bytes", tc.name, r.Offset())
		}
	}
}

func TestStickyU(t *testing.T) {
	r := NewReader([]byte{0x05, 0xcd, 0x01, 0x00, 0xa1})
	if a, b := r.U(), r.U(); a != 5 || b != 256 || r.Err() != nil {
		t.Fatalf("U: %d %d %v", a, b, r.Err())
	}
	if v := r.U(); v != 0 || !errors.Is(r.Err(), ErrType) {
		t.Fatalf("U on a str: %d %v", v, r.Err())
	}
}

// FuzzReader reads arbitrary input as a stream of values; it must never
// panic, and every length it returns must fit in the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x94, 0x01, 0x91, 0x05, 0x90, 0x90})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdb, 0x00, 0x00, 0x00, 0x02, 'h', 'i'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		for r.Remaining() > 0 {
			start := r.Offset()
			if n, err := r.ArrayLen(); err == nil {
				if n > r.Remaining() {
					t.Fatalf("array of %d with %d bytes left", n, r.Remaining())
				}
				continue
			}
			if n, err := r.MapLen(); err == nil {
				if 2*n > r.Remaining() {
					t.Fatalf("map of %d pairs with %d bytes left", n, r.Remaining())
				}
				continue
			}
			if p, err := r.StringBytes(); err == nil {
				_ = p
				continue
			}
			if _, err := r.Bin(); err == nil {
				continue
			}
			if _, err := r.Uint(); err == nil {
				continue
			}
			if _, err := r.Bool(); err == nil {
				continue
			}
			if r.Nil() == nil {
				continue
			}
			if r.Offset() != start {
				t.Fatal("failed reads consumed input")
			}
			return
		}
	})
}
