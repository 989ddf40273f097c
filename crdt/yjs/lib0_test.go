package yjs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Examples from ../shared/anchors/YJS-WIRE.md §1 (checked there against lib0).
func TestVarUint(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{{0, "00"}, {127, "7f"}, {128, "8001"}, {300, "ac02"}, {1<<32 - 1, "ffffffff0f"}, {maxSafe, "ffffffffffffff0f"}} {
		e := &encoder{}
		e.varUint(tc.v)
		if got := hex.EncodeToString(e.b); got != tc.hex {
			t.Errorf("varUint(%d) = %s, want %s", tc.v, got, tc.hex)
		}
		lim := Limits{}.withDefaults()
		d := &decoder{b: e.b, lim: &lim}
		if got := d.varUint("x"); got != tc.v || d.err != nil || d.more() {
			t.Errorf("read varUint(%s) = %d, %v", tc.hex, got, d.err)
		}
	}
}

func TestVarUintHostile(t *testing.T) {
	lim := Limits{}.withDefaults()
	for _, h := range []string{"", "80", "ffffffffffffffff01", "8080808080808080808001", "ffffffffffffff1f"} {
		d := &decoder{b: unhex(t, h), lim: &lim}
		d.varUint("x")
		if !errors.Is(d.err, ErrMalformed) {
			t.Errorf("varUint(%s): err = %v, want ErrMalformed", h, d.err)
		}
	}
}

func TestVarInt(t *testing.T) {
	for _, tc := range []struct {
		v   float64
		hex string
	}{{63, "3f"}, {64, "8001"}, {-1, "41"}, {-64, "c001"}, {math.Copysign(0, -1), "40"}, {0, "00"}, {1<<31 - 1, "bfffffff0f"}} {
		e := &encoder{}
		e.varInt(tc.v)
		if got := hex.EncodeToString(e.b); got != tc.hex {
			t.Errorf("varInt(%v) = %s, want %s", tc.v, got, tc.hex)
		}
		lim := Limits{}.withDefaults()
		d := &decoder{b: e.b, lim: &lim}
		got := d.varInt("x")
		if got != tc.v || math.Signbit(got) != math.Signbit(tc.v) || d.err != nil {
			t.Errorf("read varInt(%s) = %v, %v", tc.hex, got, d.err)
		}
	}
}

func TestAnyRoundTrip(t *testing.T) {
	lim := Limits{}.withDefaults()
	for _, h := range []string{
		"760101617502787e", // {a:[true,null]} (YJS-WIRE.md)
		"7c4f000000",       // 2^31 as float32
		"7b3fb999999999999a", "7a0000000000000001", "7f", "79", "77026869", "740300ff01",
	} {
		b := unhex(t, h)
		d := &decoder{b: b, lim: &lim}
		a := d.any(0)
		if d.err != nil || d.more() {
			t.Fatalf("readAny(%s): %v", h, d.err)
		}
		e := &encoder{}
		e.any(a)
		if !bytes.Equal(e.b, b) {
			t.Errorf("writeAny(readAny(%s)) = %x", h, e.b)
		}
	}
	// hostile: unknown tag, huge declared lengths, deep nesting
	deep := bytes.Repeat([]byte{0x75, 0x01}, 100)
	for _, h := range [][]byte{{0x73}, unhex(t, "76ffffffff0f"), unhex(t, "75ffffffff0f"), unhex(t, "77ff"), deep} {
		d := &decoder{b: h, lim: &lim}
		d.any(0)
		if d.err == nil {
			t.Errorf("readAny(%x): no error", h)
		}
	}
}

func TestAnyNumber(t *testing.T) {
	for _, tc := range []struct {
		n    float64
		kind AnyKind
	}{{1, AnyInt}, {-(1<<31 - 1), AnyInt}, {1 << 31, AnyFloat32}, {0.5, AnyFloat32}, {0.1, AnyFloat64}, {1 << 40, AnyFloat32}, {1<<40 + 1, AnyFloat64}} {
		if got := AnyNumber(tc.n).Kind; got != tc.kind {
			t.Errorf("AnyNumber(%v).Kind = %v, want %v", tc.n, got, tc.kind)
		}
	}
}

func TestJSNumber(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{{0, "0"}, {math.Copysign(0, -1), "0"}, {1.5, "1.5"}, {-7, "-7"}, {1e21, "1e+21"}, {1e20, "100000000000000000000"},
		{123456789012345680000, "123456789012345680000"}, {0.000001, "0.000001"}, {1e-7, "1e-7"}, {1.5e-10, "1.5e-10"},
		{0.1, "0.1"}, {1 << 53, "9007199254740992"}, {math.NaN(), "null"}, {math.Inf(1), "null"}, {2.5e25, "2.5e+25"}} {
		if got := string(appendJSNumber(nil, tc.f)); got != tc.want {
			t.Errorf("appendJSNumber(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestUTF16Split(t *testing.T) {
	for _, tc := range []struct {
		s          string
		off        int
		left, rest string
	}{
		{"abc", 1, "a", "bc"},
		{"a😀b", 1, "a", "😀b"},
		{"a😀b", 3, "a😀", "b"},
		{"a😀b", 2, "a\uFFFD", "\uFFFDb"}, // ContentString.splice inside a surrogate pair
		{"é中", 1, "é", "中"},
	} {
		l, r := utf16Split([]byte(tc.s), tc.off, utf16Len([]byte(tc.s)))
		if string(l) != tc.left || string(r) != tc.rest {
			t.Errorf("utf16Split(%q, %d) = %q, %q, want %q, %q", tc.s, tc.off, l, r, tc.left, tc.rest)
		}
	}
}

// The example update of YJS-WIRE.md §4: clientID 1 inserts "ab" into text
// t, deletes "a", then sets m.k = 1.
func TestWireExample(t *testing.T) {
	b := unhex(t, "01030100"+"0101017401"+"8401000162"+"280101"+"6d016b017d01"+"0101010001")
	d := New(Limits{})
	res, err := d.Apply(b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Integrated != 3 || !res.Changed || len(res.Roots) != 2 {
		t.Errorf("Apply = %+v", res)
	}
	if got := d.Text("t"); got != "b" {
		t.Errorf("Text = %q, want b", got)
	}
	if got := string(d.JSON("m", TypeMap)); got != `{"k":1}` {
		t.Errorf("JSON(m) = %s", got)
	}
	if got := d.EncodeState(); !bytes.Equal(got, b) {
		t.Errorf("EncodeState = %x, want %x", got, b)
	}
	if got := hex.EncodeToString(d.StateVector()); got != "010103" {
		t.Errorf("StateVector = %s, want 010103", got)
	}
	// every truncation is rejected and changes nothing
	for i := 0; i < len(b); i++ {
		d2 := New(Limits{})
		if _, err := d2.Apply(b[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Apply(b[:%d]) err = %v, want ErrMalformed", i, err)
		}
		if got := d2.EncodeState(); !bytes.Equal(got, []byte{0, 0}) {
			t.Fatalf("Apply(b[:%d]) changed the doc: %x", i, got)
		}
	}
}
