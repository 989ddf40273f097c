package yjs

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// maxSafe is JavaScript's Number.MAX_SAFE_INTEGER: lib0 refuses larger varUints.
const maxSafe = 1<<53 - 1

// decoder reads lib0 encodings from a byte slice. The first error sticks:
// later reads return zero values, and err reports the first failure.
type decoder struct {
	b   []byte
	pos int
	err error
	lim *Limits
	// intern maps root names to their types: a root name read from the
	// input reuses the key's string instead of allocating.
	intern map[string]*ytype
}

func (d *decoder) internString(field string) string {
	v := d.bytesView(field)
	if d.err != nil {
		return ""
	}
	if t, ok := d.intern[string(v)]; ok {
		return t.name
	}
	if !utf8.Valid(v) {
		d.pos -= len(v)
		d.fail(field, ErrMalformed)
		return ""
	}
	return string(v)
}

func (d *decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = &DecodeError{Offset: d.pos, Field: field, Err: err}
	}
	d.pos = len(d.b)
}

func (d *decoder) more() bool { return d.err == nil && d.pos < len(d.b) }

func (d *decoder) uint8(field string) uint8 {
	if d.pos >= len(d.b) {
		d.fail(field, ErrMalformed)
		return 0
	}
	v := d.b[d.pos]
	d.pos++
	return v
}

// varUint reads lib0's unsigned LEB128 (at most 2^53-1).
func (d *decoder) varUint(field string) uint64 {
	var v uint64
	var shift uint
	for {
		if d.pos >= len(d.b) {
			d.fail(field, ErrMalformed)
			return 0
		}
		c := d.b[d.pos]
		d.pos++
		if shift >= 56 {
			d.fail(field, ErrMalformed)
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if v > maxSafe {
			d.fail(field, ErrMalformed)
			return 0
		}
		if c < 0x80 {
			return v
		}
		shift += 7
	}
}

// varInt reads lib0's sign-magnitude varInt as a float64 (so -0 survives).
func (d *decoder) varInt(field string) float64 {
	c := d.uint8(field)
	neg := c&0x40 != 0
	v := uint64(c & 0x3f)
	shift := uint(6)
	for c&0x80 != 0 {
		if d.err != nil {
			return 0
		}
		c = d.uint8(field)
		if shift >= 55 {
			d.fail(field, ErrMalformed)
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if v > maxSafe {
			d.fail(field, ErrMalformed)
			return 0
		}
		shift += 7
	}
	f := float64(v)
	if neg {
		f = -f
	}
	return f
}

// length reads a varUint that counts something still to be read (each at
// least minBytes bytes): it is checked against the remaining input first.
func (d *decoder) length(field string, minBytes int, max int) int {
	n := d.varUint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.fail(field, ErrTooLarge)
		return 0
	}
	if minBytes > 0 && n > uint64((len(d.b)-d.pos)/minBytes) {
		d.fail(field, ErrMalformed)
		return 0
	}
	return int(n)
}

// bytesView returns the next n bytes without copying.
func (d *decoder) bytesView(field string) []byte {
	n := d.length(field, 1, d.lim.MaxStringBytes)
	if d.err != nil {
		return nil
	}
	v := d.b[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return v
}

// varBytes reads a varUint8Array into a fresh slice.
func (d *decoder) varBytes(field string) []byte {
	v := d.bytesView(field)
	if d.err != nil {
		return nil
	}
	return append([]byte{}, v...)
}

// varString reads a varString; invalid UTF-8 is an error (lib0's TextDecoder is fatal).
func (d *decoder) varString(field string) string {
	v := d.bytesView(field)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(v) {
		d.pos -= len(v)
		d.fail(field, ErrMalformed)
		return ""
	}
	return string(v)
}

func (d *decoder) fixed(field string, n int) []byte {
	if n > len(d.b)-d.pos {
		d.fail(field, ErrMalformed)
		return nil
	}
	v := d.b[d.pos : d.pos+n]
	d.pos += n
	return v
}

// any reads lib0's writeAny encoding.
func (d *decoder) any(depth int) Any {
	if depth > d.lim.MaxDepth {
		d.fail("any", ErrTooLarge)
		return Any{}
	}
	tag := d.uint8("any tag")
	if d.err != nil {
		return Any{}
	}
	switch tag {
	case 127:
		return Any{Kind: AnyUndefined}
	case 126:
		return Any{Kind: AnyNull}
	case 125:
		return Any{Kind: AnyInt, Num: d.varInt("any int")}
	case 124:
		b := d.fixed("any float32", 4)
		if d.err != nil {
			return Any{}
		}
		return Any{Kind: AnyFloat32, Num: float64(math.Float32frombits(binary.BigEndian.Uint32(b)))}
	case 123:
		b := d.fixed("any float64", 8)
		if d.err != nil {
			return Any{}
		}
		return Any{Kind: AnyFloat64, Num: math.Float64frombits(binary.BigEndian.Uint64(b))}
	case 122:
		b := d.fixed("any bigint", 8)
		if d.err != nil {
			return Any{}
		}
		return Any{Kind: AnyBigInt, Big: int64(binary.BigEndian.Uint64(b))}
	case 121:
		return Any{Kind: AnyBool}
	case 120:
		return Any{Kind: AnyBool, Bool: true}
	case 119:
		return Any{Kind: AnyString, Str: d.varString("any string")}
	case 118:
		n := d.length("any object", 2, d.lim.MaxCollection)
		if d.err != nil {
			return Any{}
		}
		obj := make([]AnyField, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.varString("any key")
			v := d.any(depth + 1)
			obj = append(obj, AnyField{Key: k, Val: v})
		}
		return Any{Kind: AnyObject, Obj: obj}
	case 117:
		n := d.length("any array", 1, d.lim.MaxCollection)
		if d.err != nil {
			return Any{}
		}
		arr := make([]Any, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			arr = append(arr, d.any(depth+1))
		}
		return Any{Kind: AnyArray, Arr: arr}
	case 116:
		return Any{Kind: AnyBytes, Bytes: d.varBytes("any bytes")}
	}
	d.pos--
	d.fail("any tag", ErrMalformed)
	return Any{}
}

// encoder appends lib0 encodings to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) uint8(v uint8) { e.b = append(e.b, v) }

func (e *encoder) varUint(v uint64) {
	for v >= 0x80 {
		e.b = append(e.b, byte(v)|0x80)
		v >>= 7
	}
	e.b = append(e.b, byte(v))
}

// varInt writes f (an integer-valued float64, -0 allowed) in lib0's varInt.
func (e *encoder) varInt(f float64) {
	neg := math.Signbit(f)
	if neg {
		f = -f
	}
	v := uint64(f)
	c := byte(v & 0x3f)
	if neg {
		c |= 0x40
	}
	v >>= 6
	if v > 0 {
		c |= 0x80
	}
	e.b = append(e.b, c)
	for v > 0 {
		c = byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		e.b = append(e.b, c)
	}
}

func (e *encoder) varBytes(v []byte) {
	e.varUint(uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) varString(s string) {
	e.varUint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) any(a Any) {
	switch a.Kind {
	case AnyUndefined, 0:
		e.uint8(127)
	case AnyNull:
		e.uint8(126)
	case AnyInt:
		e.uint8(125)
		e.varInt(a.Num)
	case AnyFloat32:
		e.uint8(124)
		e.b = binary.BigEndian.AppendUint32(e.b, math.Float32bits(float32(a.Num)))
	case AnyFloat64:
		e.uint8(123)
		e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(a.Num))
	case AnyBigInt:
		e.uint8(122)
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(a.Big))
	case AnyBool:
		if a.Bool {
			e.uint8(120)
		} else {
			e.uint8(121)
		}
	case AnyString:
		e.uint8(119)
		e.varString(a.Str)
	case AnyObject:
		e.uint8(118)
		e.varUint(uint64(len(a.Obj)))
		for _, f := range a.Obj {
			e.varString(f.Key)
			e.any(f.Val)
		}
	case AnyArray:
		e.uint8(117)
		e.varUint(uint64(len(a.Arr)))
		for _, v := range a.Arr {
			e.any(v)
		}
	case AnyBytes:
		e.uint8(116)
		e.varBytes(a.Bytes)
	}
}
