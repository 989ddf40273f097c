package yjs

import (
	"encoding/json"
	"unicode/utf8"
)

// Content refs: the low 5 bits of a struct's info byte.
const (
	refGC      = 0
	refDeleted = 1
	refJSON    = 2
	refBinary  = 3
	refString  = 4
	refEmbed   = 5
	refFormat  = 6
	refType    = 7
	refAny     = 8
	refDoc     = 9
	refSkip    = 10
)

// content is an item's content. String text and Binary bytes live in buf;
// everything rarer lives behind ext so the common item stays small.
type content struct {
	buf []byte // String: UTF-8 text (its UTF-16 length is the item length); Binary: the bytes
	ext *contentExt
	ref uint8
}

type contentExt struct {
	str  string   // Embed: JSON; Format: key; Doc: guid
	str2 string   // Format: JSON value
	json []string // JSON: one JSON text per element ("undefined" kept literally)
	anys []Any    // Any
	typ  *ytype   // Type
	opts *Any     // Doc options
}

func (c *content) countable() bool { return c.ref != refDeleted && c.ref != refFormat }

// length is the clock length of the content (UTF-16 units for strings).
// A Deleted content carries no data: its length is the item's.
func (c *content) length() int {
	switch c.ref {
	case refJSON:
		return len(c.ext.json)
	case refString:
		return utf16Len(c.buf)
	case refAny:
		return len(c.ext.anys)
	}
	return 1
}

// utf16Len counts the UTF-16 code units of valid UTF-8 text.
func utf16Len(b []byte) int {
	n := 0
	for _, c := range b {
		if c&0xC0 != 0x80 {
			n++
			if c >= 0xF0 {
				n++
			}
		}
	}
	return n
}

// utf16Split splits UTF-8 text at a UTF-16 offset, as ContentString.splice
// does: a surrogate pair cut in half becomes U+FFFD on both sides.
func utf16Split(b []byte, off int, units int) (left, right []byte) {
	if len(b) == units { // ASCII
		return b[:off:off], b[off:]
	}
	u := 0
	for i := 0; i < len(b); {
		if u == off {
			return b[:i:i], b[i:]
		}
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x10000 {
			if u+1 == off { // the cut falls inside the pair
				l := append(append(make([]byte, 0, i+3), b[:i]...), "\uFFFD"...)
				rt := append([]byte("\uFFFD"), b[i+size:]...)
				return l, rt
			}
			u += 2
		} else {
			u++
		}
		i += size
	}
	return b, nil
}

// splice cuts the content at off (0 < off < length) and returns the right part.
func (c *content) splice(off int, length int) content {
	switch c.ref {
	case refDeleted:
		return content{ref: refDeleted}
	case refString:
		l, r := utf16Split(c.buf, off, length)
		c.buf = l
		return content{ref: refString, buf: r}
	case refJSON:
		r := content{ref: refJSON, ext: &contentExt{json: c.ext.json[off:]}}
		c.ext.json = c.ext.json[:off:off]
		return r
	case refAny:
		r := content{ref: refAny, ext: &contentExt{anys: c.ext.anys[off:]}}
		c.ext.anys = c.ext.anys[:off:off]
		return r
	}
	panic("yjs: splice of unsplittable content") // length-1 contents are never split
}

// mergeWith appends right's content when the kinds merge (as Yjs's Content*.mergeWith).
func (c *content) mergeWith(r *content) bool {
	if c.ref != r.ref {
		return false
	}
	switch c.ref {
	case refDeleted:
		return true
	case refString:
		c.buf = append(c.buf, r.buf...)
		return true
	case refJSON:
		c.ext.json = append(c.ext.json, r.ext.json...)
		return true
	case refAny:
		c.ext.anys = append(c.ext.anys, r.ext.anys...)
		return true
	}
	return false
}

// sizeBytes approximates the memory held by the content (for MaxDocBytes).
func (c *content) sizeBytes() int {
	n := len(c.buf)
	if c.ext != nil {
		n += len(c.ext.str) + len(c.ext.str2) + 16
		for _, s := range c.ext.json {
			n += len(s) + 16
		}
		n += len(c.ext.anys) * 32
	}
	return n
}

// decodeContent reads the content of an item with the given ref and returns
// it with its clock length.
func decodeContent(d *decoder, ref uint8) (content, int) {
	if ref == refDeleted {
		n := d.varUint("deleted length")
		if n == 0 {
			d.fail("deleted length", ErrMalformed)
		}
		return content{ref: ref}, int(n)
	}
	c := decodeContentData(d, ref)
	if d.err != nil {
		return c, 0
	}
	return c, c.length()
}

func decodeContentData(d *decoder, ref uint8) content {
	switch ref {
	case refJSON:
		n := d.length("json count", 1, d.lim.MaxCollection)
		if n == 0 {
			d.fail("json count", ErrMalformed)
		}
		arr := make([]string, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			s := d.varString("json")
			if d.err == nil && s != "undefined" && !json.Valid([]byte(s)) {
				d.fail("json", ErrMalformed)
			}
			arr = append(arr, s)
		}
		return content{ref: ref, ext: &contentExt{json: arr}}
	case refBinary:
		return content{ref: ref, buf: d.varBytes("binary")}
	case refString:
		s := d.bytesView("string")
		if d.err == nil && len(s) == 0 {
			d.fail("string", ErrMalformed)
		}
		if d.err == nil && !utf8.Valid(s) {
			d.fail("string", ErrMalformed)
		}
		// a view into the input: integration copies what it keeps, and
		// structs that wait in the pending buffer are copied (ownStructs)
		return content{ref: ref, buf: s}
	case refEmbed:
		s := d.varString("embed")
		if d.err == nil && !json.Valid([]byte(s)) {
			d.fail("embed", ErrMalformed)
		}
		return content{ref: ref, ext: &contentExt{str: s}}
	case refFormat:
		k := d.varString("format key")
		v := d.varString("format value")
		if d.err == nil && !json.Valid([]byte(v)) {
			d.fail("format value", ErrMalformed)
		}
		return content{ref: ref, ext: &contentExt{str: k, str2: v}}
	case refType:
		tr := d.varUint("type ref")
		t := &ytype{kind: TypeKind(tr + 1)}
		switch tr {
		case typeRefXmlElement, typeRefXmlHook:
			t.name = d.varString("type name")
		case typeRefArray, typeRefMap, typeRefText, typeRefXmlFragment, typeRefXmlText:
		default:
			d.fail("type ref", ErrMalformed)
		}
		return content{ref: ref, ext: &contentExt{typ: t}}
	case refAny:
		n := d.length("any count", 1, d.lim.MaxCollection)
		if n == 0 {
			d.fail("any count", ErrMalformed)
		}
		arr := make([]Any, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			arr = append(arr, d.any(0))
		}
		return content{ref: ref, ext: &contentExt{anys: arr}}
	case refDoc:
		g := d.varString("doc guid")
		o := d.any(0)
		return content{ref: ref, ext: &contentExt{str: g, opts: &o}}
	}
	d.fail("content ref", ErrMalformed)
	return content{}
}

// write encodes the content from offset off (Content*.write).
func (c *content) write(e *encoder, off int, length int) {
	switch c.ref {
	case refDeleted:
		e.varUint(uint64(length - off))
	case refJSON:
		e.varUint(uint64(len(c.ext.json) - off))
		for _, s := range c.ext.json[off:] {
			e.varString(s)
		}
	case refBinary:
		e.varBytes(c.buf)
	case refString:
		if off == 0 {
			e.varBytes(c.buf)
		} else {
			_, r := utf16Split(c.buf, off, length)
			e.varBytes(r)
		}
	case refEmbed:
		e.varString(c.ext.str)
	case refFormat:
		e.varString(c.ext.str)
		e.varString(c.ext.str2)
	case refType:
		t := c.ext.typ
		e.varUint(uint64(t.kind - 1))
		if t.kind == TypeXmlElement || t.kind == TypeXmlHook {
			e.varString(t.name)
		}
	case refAny:
		e.varUint(uint64(len(c.ext.anys) - off))
		for _, a := range c.ext.anys[off:] {
			e.any(a)
		}
	case refDoc:
		e.varString(c.ext.str)
		e.any(*c.ext.opts)
	}
}
