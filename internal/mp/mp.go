// Package mp is a minimal, allocation-free MessagePack reader and writer for the
// hot wire types of collabd (CRDT updates, state vectors, snapshots headers).
//
// It exists because decoding untrusted bytes with a general msgpack library can
// allocate from declared lengths before checking them (docs/SECURITY.md: every length is checked before it is allocated):
// every length this Reader returns has already been checked against the bytes
// that remain, so a caller that allocates at most one unit per returned element
// allocates at most in proportion to its input. Reader never allocates; str and
// bin values are returned as sub-slices of the input.
//
// Only the subset of the format collabd writes is produced (canonical smallest
// encodings); the Reader accepts every valid encoding of those types.
package mp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errors returned by Reader. They are wrapped in a *Error carrying the offset.
var (
	ErrShort    = errors.New("mp: unexpected end of input")
	ErrType     = errors.New("mp: unexpected type")
	ErrTooLarge = errors.New("mp: declared length exceeds remaining input")
	ErrDepth    = errors.New("mp: nesting too deep")
)

// Error is a decode failure at a byte offset.
type Error struct {
	Offset int
	Err    error
	Want   string
}

func (e *Error) Error() string {
	if e.Want != "" {
		return fmt.Sprintf("%v at byte %d (want %s)", e.Err, e.Offset, e.Want)
	}
	return fmt.Sprintf("%v at byte %d", e.Err, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// AppendArrayLen appends an array header for n elements.
func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// AppendMapLen appends a map header for n key/value pairs.
func AppendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// AppendUint appends an unsigned integer in its smallest encoding.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends a boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendString appends s as a msgpack str.
func AppendString(b []byte, s string) []byte {
	b = appendStrHeader(b, len(s))
	return append(b, s...)
}

// AppendStringBytes appends p as a msgpack str.
func AppendStringBytes(b []byte, p []byte) []byte {
	b = appendStrHeader(b, len(p))
	return append(b, p...)
}

// AppendStrHeader appends the header of a str of n bytes; the caller appends the bytes.
func AppendStrHeader(b []byte, n int) []byte { return appendStrHeader(b, n) }

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	default:
		return append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// AppendBin appends p as a msgpack bin.
func AppendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// Reader reads msgpack values from a byte slice. The zero value reads nothing;
// use NewReader or Reset.
type Reader struct {
	b   []byte
	off int
	err error // first error of the sticky readers (U)
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from its start.
func (r *Reader) Reset(b []byte) { r.b, r.off, r.err = b, 0, nil }

// Err is the first error met by the sticky readers (U).
func (r *Reader) Err() error { return r.err }

// U reads a non-negative integer like Uint, but records a failure in Err and
// returns 0, so a caller can read several fields and check once.
func (r *Reader) U() uint64 {
	if b := r.b[r.off:]; len(b) > 0 && b[0] < 0x80 {
		r.off++
		return uint64(b[0])
	}
	return r.uSlow()
}

func (r *Reader) uSlow() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.uintSlow()
	if err != nil {
		r.err = err
	}
	return v
}

// Offset is the number of bytes consumed.
func (r *Reader) Offset() int { return r.off }

// Remaining is the number of bytes not yet consumed.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

func (r *Reader) fail(err error, want string) error {
	return &Error{Offset: r.off, Err: err, Want: want}
}

func (r *Reader) need(n int) bool { return n >= 0 && len(r.b)-r.off >= n }

func (r *Reader) be(n int) uint64 {
	p := r.b[r.off:]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	default:
		return binary.BigEndian.Uint64(p)
	}
}

// PeekNil reports whether the next value is nil, without consuming it.
func (r *Reader) PeekNil() bool { return r.off < len(r.b) && r.b[r.off] == 0xc0 }

// Nil consumes a nil value.
func (r *Reader) Nil() error {
	if !r.PeekNil() {
		return r.fail(ErrType, "nil")
	}
	r.off++
	return nil
}

// PeekString reports whether the next value is a str.
func (r *Reader) PeekString() bool {
	if r.off >= len(r.b) {
		return false
	}
	c := r.b[r.off]
	return c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb
}

// Bool reads a boolean.
func (r *Reader) Bool() (bool, error) {
	if r.off >= len(r.b) {
		return false, r.fail(ErrShort, "bool")
	}
	switch r.b[r.off] {
	case 0xc2:
		r.off++
		return false, nil
	case 0xc3:
		r.off++
		return true, nil
	}
	return false, r.fail(ErrType, "bool")
}

// Uint reads a non-negative integer (positive fixint, uint8..64, or a
// non-negative int8..64).
func (r *Reader) Uint() (uint64, error) {
	if off := r.off; off < len(r.b) {
		if c := r.b[off]; c < 0x80 {
			r.off = off + 1
			return uint64(c), nil
		}
	}
	return r.uintSlow()
}

func (r *Reader) uintSlow() (uint64, error) {
	if r.off >= len(r.b) {
		return 0, r.fail(ErrShort, "uint")
	}
	c := r.b[r.off]
	if c < 0x80 {
		r.off++
		return uint64(c), nil
	}
	var n int
	signed := false
	switch c {
	case 0xcc:
		n = 1
	case 0xcd:
		n = 2
	case 0xce:
		n = 4
	case 0xcf:
		n = 8
	case 0xd0:
		n, signed = 1, true
	case 0xd1:
		n, signed = 2, true
	case 0xd2:
		n, signed = 4, true
	case 0xd3:
		n, signed = 8, true
	default:
		return 0, r.fail(ErrType, "uint")
	}
	start := r.off
	r.off++
	if !r.need(n) {
		r.off = start
		return 0, r.fail(ErrShort, "uint")
	}
	v := r.be(n)
	if signed && v>>(uint(n)*8-1) != 0 {
		r.off = start
		return 0, r.fail(ErrType, "non-negative integer")
	}
	return v, nil
}

// ArrayLen reads an array header. The returned count is at most the number of
// bytes remaining (every element takes at least one byte).
func (r *Reader) ArrayLen() (int, error) { return r.header("array", 0x90, 0xdc, 0xdd, 1) }

// MapLen reads a map header. The returned count of pairs is at most half the
// number of bytes remaining (every key and value takes at least one byte).
func (r *Reader) MapLen() (int, error) { return r.header("map", 0x80, 0xde, 0xdf, 2) }

// header reads a container header: fix (fixarray/fixmap prefix with the count
// in its low 4 bits), or b16/b32 with a big-endian count, refusing a count
// whose minimum size (per bytes per entry) exceeds what remains.
func (r *Reader) header(want string, fix, b16, b32 byte, per uint64) (int, error) {
	if r.off >= len(r.b) {
		return 0, r.fail(ErrShort, want)
	}
	c := r.b[r.off]
	start := r.off
	var n uint64
	switch {
	case c&0xf0 == fix:
		n = uint64(c & 0x0f)
		r.off++
	case c == b16 || c == b32:
		w := 2
		if c == b32 {
			w = 4
		}
		r.off++
		if !r.need(w) {
			r.off = start
			return 0, r.fail(ErrShort, want)
		}
		n = r.be(w)
	default:
		return 0, r.fail(ErrType, want)
	}
	if n > uint64(r.Remaining())/per {
		r.off = start
		return 0, r.fail(ErrTooLarge, want)
	}
	return int(n), nil
}

func (r *Reader) lenPrefixed(want string, fix, b8, b16, b32 byte, fixMask byte, fixMax byte) ([]byte, error) {
	if r.off >= len(r.b) {
		return nil, r.fail(ErrShort, want)
	}
	c := r.b[r.off]
	start := r.off
	var n uint64
	switch {
	case fixMask != 0 && c&fixMask == fix:
		n = uint64(c & fixMax)
		r.off++
	case c == b8 || c == b16 || c == b32:
		w := 1
		if c == b16 {
			w = 2
		} else if c == b32 {
			w = 4
		}
		r.off++
		if !r.need(w) {
			r.off = start
			return nil, r.fail(ErrShort, want)
		}
		n = r.be(w)
	default:
		return nil, r.fail(ErrType, want)
	}
	if n > uint64(r.Remaining()) {
		r.off = start
		return nil, r.fail(ErrTooLarge, want)
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

// StringBytes reads a str and returns its bytes as a sub-slice of the input.
func (r *Reader) StringBytes() ([]byte, error) {
	return r.lenPrefixed("str", 0xa0, 0xd9, 0xda, 0xdb, 0xe0, 0x1f)
}

// Bin reads a bin and returns its bytes as a sub-slice of the input.
func (r *Reader) Bin() ([]byte, error) {
	return r.lenPrefixed("bin", 0, 0xc4, 0xc5, 0xc6, 0, 0)
}

// Done reports an error if input remains.
func (r *Reader) Done() error {
	if r.off != len(r.b) {
		return r.fail(errors.New("mp: trailing bytes"), "")
	}
	return nil
}
