package yjs

import (
	"math"
	"unicode/utf8"
)

// The column codecs of Yjs's update format v2 (lib0 RleEncoder,
// UintOptRleEncoder, IntDiffOptRleEncoder, StringEncoder). Every reader
// works on its own column; the first error sticks in the shared decoder.

// rleU8Reader is lib0's RleDecoder over uint8 values.
type rleU8Reader struct {
	d     *decoder
	s     uint8
	count int // -1: repeat s forever
}

func (r *rleU8Reader) read() uint8 {
	if r.count == 0 {
		r.s = r.d.uint8("rle value")
		if r.d.more() {
			n := r.d.varUint("rle count")
			if n > maxSafe-1 {
				r.d.fail("rle count", ErrMalformed)
			}
			r.count = int(n) + 1
		} else {
			r.count = -1
		}
	}
	if r.count > 0 {
		r.count--
	}
	return r.s
}

// uintOptRleReader is lib0's UintOptRleDecoder.
type uintOptRleReader struct {
	d     *decoder
	s     uint64
	count uint64
}

func (r *uintOptRleReader) read() uint64 {
	if r.count == 0 {
		v := r.d.varInt("uint rle value")
		r.count = 1
		if math.Signbit(v) {
			v = -v
			r.count = r.d.varUint("uint rle count") + 2
		}
		r.s = uint64(v)
	}
	if r.d.err != nil {
		return 0
	}
	r.count--
	return r.s
}

// intDiffOptRleReader is lib0's IntDiffOptRleDecoder.
type intDiffOptRleReader struct {
	d     *decoder
	s     int64
	diff  int64
	count uint64
}

func (r *intDiffOptRleReader) read() int64 {
	if r.count == 0 {
		v := int64(r.d.varInt("diff rle value"))
		r.diff = v >> 1
		r.count = 1
		if v&1 != 0 {
			r.count = r.d.varUint("diff rle count") + 2
		}
	}
	if r.d.err != nil {
		return 0
	}
	r.s += r.diff
	r.count--
	return r.s
}

// stringReader is lib0's StringDecoder: one string holding every string,
// cut by UTF-16 lengths.
type stringReader struct {
	d    *decoder
	str  string
	pos  int // byte offset in str
	lens uintOptRleReader
}

func (r *stringReader) read(field string) string {
	n := r.lens.read()
	if r.d.err != nil {
		return ""
	}
	start := r.pos
	for units := uint64(0); units < n; {
		if r.pos >= len(r.str) {
			r.d.fail(field, ErrMalformed)
			return ""
		}
		c, size := utf8.DecodeRuneInString(r.str[r.pos:])
		u := uint64(1)
		if c >= 0x10000 {
			u = 2
		}
		if units+u > n { // the cut falls inside a surrogate pair
			r.d.fail(field, ErrMalformed)
			return ""
		}
		units += u
		r.pos += size
	}
	return r.str[start:r.pos]
}

// Encoders.

type rleU8Writer struct {
	e     encoder
	s     uint8
	count int
}

func (w *rleU8Writer) write(v uint8) {
	if w.count > 0 && w.s == v {
		w.count++
		return
	}
	if w.count > 0 {
		w.e.varUint(uint64(w.count - 1))
	}
	w.count = 1
	w.e.uint8(v)
	w.s = v
}

func (w *rleU8Writer) bytes() []byte { return w.e.b }

type uintOptRleWriter struct {
	e     encoder
	s     uint64
	count uint64
}

func (w *uintOptRleWriter) write(v uint64) {
	if w.s == v {
		w.count++
		return
	}
	w.flush()
	w.count = 1
	w.s = v
}

func (w *uintOptRleWriter) flush() {
	if w.count == 0 {
		return
	}
	if w.count == 1 {
		w.e.varInt(float64(w.s))
	} else {
		w.e.varInt(-float64(w.s) + negZero(w.s))
		w.e.varUint(w.count - 2)
	}
}

// negZero makes -0 when s is 0 (lib0 writes -s, and -0 keeps its sign bit).
func negZero(s uint64) float64 {
	if s == 0 {
		return math.Copysign(0, -1)
	}
	return 0
}

func (w *uintOptRleWriter) bytes() []byte {
	w.flush()
	w.count = 0
	return w.e.b
}

type intDiffOptRleWriter struct {
	e     encoder
	s     int64
	diff  int64
	count uint64
}

func (w *intDiffOptRleWriter) write(v int64) {
	if w.count > 0 && w.diff == v-w.s {
		w.s = v
		w.count++
		return
	}
	w.flush()
	w.count = 1
	w.diff = v - w.s
	w.s = v
}

func (w *intDiffOptRleWriter) flush() {
	if w.count == 0 {
		return
	}
	enc := w.diff * 2
	if w.count > 1 {
		enc++
	}
	w.e.varInt(float64(enc))
	if w.count > 1 {
		w.e.varUint(w.count - 2)
	}
}

func (w *intDiffOptRleWriter) bytes() []byte {
	w.flush()
	w.count = 0
	return w.e.b
}

type stringWriter struct {
	all  []byte
	lens uintOptRleWriter
}

func (w *stringWriter) write(s string) {
	w.all = append(w.all, s...)
	w.lens.write(uint64(utf16Len([]byte(s))))
}

func (w *stringWriter) bytes() []byte {
	e := encoder{}
	e.varBytes(w.all)
	e.b = append(e.b, w.lens.bytes()...)
	return e.b
}
