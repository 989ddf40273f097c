package yjs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// view modes: how values are written.
const (
	modeJSON = iota // like Yjs's toJSON (then JSON.stringify)
	modeDump        // the canonical dump the oracle tests compare (interop/yjs/lib/dump.mjs)
)

// rootType returns the root name, typed as kind when no update typed it.
func (d *Doc) rootType(name string, kind TypeKind) (*ytype, error) {
	t := d.roots[name]
	if t == nil {
		return nil, ErrNotFound
	}
	if t.kind == TypeUnknown {
		return t, nil
	}
	return t, nil
}

// Text returns the visible text of the Y.Text root name (Y.Text#toString):
// strings only, embeds and formatting left out. A missing root is "".
func (d *Doc) Text(name string) string {
	t := d.roots[name]
	if t == nil {
		return ""
	}
	var sb strings.Builder
	for it := t.start; it != nil; it = it.right {
		if it.visible() && it.ref == refString {
			sb.Write(it.buf)
		}
	}
	return sb.String()
}

// TextDelta returns the Y.Text root name as a rich-text delta, the JSON of
// Yjs's toDelta(): [{"insert":"…","attributes":{…}}, {"insert":{embed}}, …].
func (d *Doc) TextDelta(name string) []byte {
	t := d.roots[name]
	if t == nil {
		return []byte("[]")
	}
	return d.appendDelta(nil, t, modeJSON, 0)
}

// JSON returns the root name as Yjs's toJSON() would give it, written by
// JSON.stringify: a Text as its string, a Map as an object, an Array as an
// array, an XmlFragment as its XML string. kind types a root no update has
// typed yet (as Yjs's doc.getText / getMap / … do); a missing root gives the
// empty value of kind.
func (d *Doc) JSON(name string, kind TypeKind) []byte {
	t := d.roots[name]
	if t == nil {
		t = &ytype{}
	}
	return d.appendType(nil, t, kind, modeJSON, 0)
}

func (d *Doc) appendType(b []byte, t *ytype, kind TypeKind, mode, depth int) []byte {
	if t.kind != TypeUnknown {
		kind = t.kind
	}
	if depth > d.lim.MaxDepth {
		return append(b, "null"...)
	}
	switch kind {
	case TypeText:
		if mode == modeJSON {
			return appendJSONString(b, d.textOf(t))
		}
		b = append(b, `{"text":`...)
		b = d.appendDelta(b, t, mode, depth)
		return append(b, '}')
	case TypeXmlText:
		if mode == modeJSON {
			return appendJSONString(b, d.xmlString(t, depth))
		}
		b = append(b, `{"xmltext":`...)
		b = d.appendDelta(b, t, mode, depth)
		b = append(b, `,"attrs":`...)
		b = d.appendMap(b, t, mode, depth)
		return append(b, '}')
	case TypeMap:
		if mode == modeJSON {
			return d.appendMap(b, t, mode, depth)
		}
		b = append(b, `{"map":`...)
		b = d.appendMap(b, t, mode, depth)
		return append(b, '}')
	case TypeXmlHook:
		if mode == modeJSON {
			return d.appendMap(b, t, mode, depth)
		}
		b = append(b, `{"hook":`...)
		b = appendJSONString(b, t.name)
		b = append(b, `,"map":`...)
		b = d.appendMap(b, t, mode, depth)
		return append(b, '}')
	case TypeArray:
		if mode == modeJSON {
			return d.appendArray(b, t, mode, depth)
		}
		b = append(b, `{"array":`...)
		b = d.appendArray(b, t, mode, depth)
		return append(b, '}')
	case TypeXmlFrag:
		if mode == modeJSON {
			return appendJSONString(b, d.xmlString(t, depth))
		}
		b = append(b, `{"frag":`...)
		b = d.appendArray(b, t, mode, depth)
		return append(b, '}')
	case TypeXmlElement:
		if mode == modeJSON {
			return appendJSONString(b, d.xmlString(t, depth))
		}
		b = append(b, `{"el":`...)
		b = appendJSONString(b, t.name)
		b = append(b, `,"attrs":`...)
		b = d.appendMap(b, t, mode, depth)
		b = append(b, `,"children":`...)
		b = d.appendArray(b, t, mode, depth)
		return append(b, '}')
	}
	return append(b, `{"unknown":true}`...)
}

func (d *Doc) textOf(t *ytype) string {
	var sb strings.Builder
	for it := t.start; it != nil; it = it.right {
		if it.visible() && it.ref == refString {
			sb.Write(it.buf)
		}
	}
	return sb.String()
}

// attr is one formatting attribute in effect (key, JSON value), in the
// order Yjs's Map of current attributes holds them.
type attr struct {
	key, val string
	src      *item // the format mark that set it (edits compare object values by identity)
}

func setAttr(attrs []attr, key, val string) []attr {
	for i := range attrs {
		if attrs[i].key == key {
			if val == "null" {
				return append(attrs[:i], attrs[i+1:]...)
			}
			attrs[i].val, attrs[i].src = val, nil
			return attrs
		}
	}
	if val == "null" {
		return attrs
	}
	return append(attrs, attr{key: key, val: val})
}

func appendAttrs(b []byte, attrs []attr) []byte {
	b = append(b, `,"attributes":{`...)
	for i, a := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, a.key)
		b = append(b, ':')
		b = append(b, a.val...)
	}
	return append(b, '}')
}

// appendDelta writes Y.Text#toDelta() of t.
func (d *Doc) appendDelta(b []byte, t *ytype, mode, depth int) []byte {
	b = append(b, '[')
	first := true
	var attrs []attr
	var str []byte
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	pack := func() {
		if len(str) == 0 {
			return
		}
		sep()
		b = append(b, `{"insert":`...)
		b = appendJSONString(b, string(str))
		if len(attrs) > 0 {
			b = appendAttrs(b, attrs)
		}
		b = append(b, '}')
		str = str[:0]
	}
	for it := t.start; it != nil; it = it.right {
		if !it.visible() {
			continue
		}
		switch it.ref {
		case refString:
			str = append(str, it.buf...)
		case refEmbed, refType:
			pack()
			sep()
			b = append(b, `{"insert":`...)
			if it.ref == refEmbed {
				b = appendRawJSON(b, it.ext.str, mode)
			} else {
				b = d.appendType(b, it.ext.typ, TypeUnknown, mode, depth+1)
			}
			if len(attrs) > 0 {
				b = appendAttrs(b, attrs)
			}
			b = append(b, '}')
		case refFormat:
			pack()
			attrs = setAttr(attrs, it.ext.str, compactJSON(it.ext.str2))
		}
	}
	pack()
	return append(b, ']')
}

// appendMap writes the visible keys of t (sorted by key) and their values.
func (d *Doc) appendMap(b []byte, t *ytype, mode, depth int) []byte {
	b = append(b, '{')
	first := true
	for _, k := range sortedKeys(t.m) {
		it := t.m[k]
		if !it.visible() {
			continue
		}
		if mode == modeJSON && it.ref == refAny && it.ext.anys[len(it.ext.anys)-1].Kind == AnyUndefined {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = d.appendContent(b, it, it.length-1, mode, depth)
	}
	return append(b, '}')
}

// appendArray writes the visible elements of the sequence t.
func (d *Doc) appendArray(b []byte, t *ytype, mode, depth int) []byte {
	b = append(b, '[')
	first := true
	for it := t.start; it != nil; it = it.right {
		if !it.visible() || !it.countable() {
			continue
		}
		for i := 0; i < it.length; i++ {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = d.appendContent(b, it, i, mode, depth)
		}
	}
	return append(b, ']')
}

// appendContent writes element i of an item's content.
func (d *Doc) appendContent(b []byte, it *item, i int, mode, depth int) []byte {
	switch it.ref {
	case refAny:
		return appendAnyMode(b, it.ext.anys[i], mode)
	case refJSON:
		return appendRawJSON(b, it.ext.json[i], mode)
	case refBinary:
		return appendBinary(b, it.buf, mode)
	case refType:
		return d.appendType(b, it.ext.typ, TypeUnknown, mode, depth+1)
	case refEmbed:
		return appendRawJSON(b, it.ext.str, mode)
	case refString:
		return appendJSONString(b, string(it.buf)) // not produced by Yjs's Array/Map APIs
	case refDoc:
		if mode == modeJSON { // an unloaded subdocument's toJSON
			return append(b, "{}"...)
		}
		b = append(b, `{"guid":`...)
		b = appendJSONString(b, it.ext.str)
		return append(b, '}')
	}
	return append(b, "null"...)
}

func appendBinary(b []byte, v []byte, mode int) []byte {
	if mode == modeDump {
		b = append(b, `{"$bin":"`...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, `"}`...)
	}
	return appendBytesJSON(b, v)
}

func appendRawJSON(b []byte, s string, mode int) []byte {
	if s == "undefined" {
		if mode == modeDump {
			return append(b, `{"$undefined":true}`...)
		}
		return append(b, "null"...)
	}
	return append(b, compactJSON(s)...)
}

// compactJSON drops insignificant whitespace (the text is valid JSON).
func compactJSON(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	var sb strings.Builder
	inStr := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			sb.WriteByte(c)
			if c == '\\' && i+1 < len(s) {
				i++
				sb.WriteByte(s[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inStr = true
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func appendAnyMode(b []byte, a Any, mode int) []byte {
	if mode == modeJSON {
		return appendAnyJSON(b, a)
	}
	switch a.Kind {
	case AnyUndefined:
		return append(b, `{"$undefined":true}`...)
	case AnyBigInt:
		b = append(b, `{"$bigint":"`...)
		b = appendAnyJSON(b, a)
		return append(b, `"}`...)
	case AnyBytes:
		return appendBinary(b, a.Bytes, mode)
	case AnyArray:
		b = append(b, '[')
		for i, v := range a.Arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAnyMode(b, v, mode)
		}
		return append(b, ']')
	case AnyObject:
		b = append(b, '{')
		for i, f := range a.Obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Key)
			b = append(b, ':')
			b = appendAnyMode(b, f.Val, mode)
		}
		return append(b, '}')
	}
	return appendAnyJSON(b, a)
}

// xmlString is Yjs's toString() of an XML type.
func (d *Doc) xmlString(t *ytype, depth int) string {
	var sb strings.Builder
	d.writeXML(&sb, t, depth)
	return sb.String()
}

func (d *Doc) writeXML(sb *strings.Builder, t *ytype, depth int) {
	if depth > d.lim.MaxDepth {
		return
	}
	switch t.kind {
	case TypeXmlText:
		d.writeXMLText(sb, t)
		return
	case TypeXmlElement:
		sb.WriteString("<" + t.name)
		for _, k := range sortedKeys(t.m) {
			it := t.m[k]
			if !it.visible() {
				continue
			}
			sb.WriteString(" " + k + `="`)
			sb.WriteString(xmlAttrValue(d, it))
			sb.WriteString(`"`)
		}
		sb.WriteString(">")
	case TypeXmlHook: // a Y.Map: Object#toString
		sb.WriteString("[object Object]")
		return
	}
	for it := t.start; it != nil; it = it.right {
		if it.visible() && it.ref == refType {
			d.writeXML(sb, it.ext.typ, depth+1)
		}
	}
	if t.kind == TypeXmlElement {
		sb.WriteString("</" + t.name + ">")
	}
}

// xmlAttrValue renders an attribute value as JavaScript's template string would.
func xmlAttrValue(d *Doc, it *item) string {
	if it.ref == refAny {
		a := it.ext.anys[len(it.ext.anys)-1]
		if a.Kind == AnyString {
			return a.Str
		}
		return string(appendAnyJSON(nil, a))
	}
	return string(d.appendContent(nil, it, it.length-1, modeJSON, 0))
}

// writeXMLText is YXmlText#toString: formatted runs wrapped in tags named
// after the attributes (sorted), with their object values as XML attributes.
func (d *Doc) writeXMLText(sb *strings.Builder, t *ytype) {
	delta := d.appendDelta(nil, t, modeJSON, 0)
	ops, ok := parseDelta(delta)
	if !ok {
		return
	}
	for _, op := range ops {
		names := make([]string, 0, len(op.attrs))
		for k := range op.attrs {
			names = append(names, k)
		}
		sortStrings(names)
		for _, n := range names {
			sb.WriteString("<" + n)
			keys, vals := forInKeys(op.attrs[n])
			// Yjs sorts the attributes by key (string order, as here)
			idx := make([]int, len(keys))
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
			for _, i := range idx {
				sb.WriteString(" " + keys[i] + `="` + jsTemplate(vals[i]) + `"`)
			}
			sb.WriteString(">")
		}
		sb.WriteString(op.insert)
		for i := len(names) - 1; i >= 0; i-- {
			sb.WriteString("</" + names[i] + ">")
		}
	}
}

type deltaOp struct {
	insert string
	attrs  map[string]any
}

func parseDelta(b []byte) ([]deltaOp, bool) {
	var raw []struct {
		Insert     json.RawMessage `json:"insert"`
		Attributes map[string]any  `json:"attributes"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if dec.Decode(&raw) != nil {
		return nil, false
	}
	ops := make([]deltaOp, 0, len(raw))
	for _, r := range raw {
		var s string
		if json.Unmarshal(r.Insert, &s) != nil {
			s = "[object Object]"
		}
		ops = append(ops, deltaOp{s, r.Attributes})
	}
	return ops, true
}

// jsTemplate renders a JSON value as a JavaScript template literal would.
func jsTemplate(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		f, _ := x.Float64()
		return string(appendJSNumber(nil, f))
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if e != nil {
				parts[i] = jsTemplate(e)
			}
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}

// forInKeys lists what JavaScript's for…in yields over a JSON value, with
// the value at each key: an object's keys, a string's or array's indexes.
func forInKeys(v any) ([]string, []any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sortStrings(keys)
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = x[k]
		}
		return keys, vals
	case string:
		var keys []string
		var vals []any
		for _, u := range utf16.Encode([]rune(x)) {
			keys = append(keys, strconv.Itoa(len(keys)))
			vals = append(vals, string(rune(u)))
		}
		return keys, vals
	case []any:
		keys := make([]string, len(x))
		for i := range x {
			keys[i] = strconv.Itoa(i)
		}
		return keys, x
	}
	return nil, nil
}

// RootKind is the kind of root name: as a client typed it, or, since
// updates do not carry a root's type, as its content shows it (what a
// schema-less server can know): map entries make a Map; strings, embeds
// or formatting a Text; XML elements or XML text an XmlFragment; other
// content an Array. TypeUnknown for a missing root or one with no live
// content to tell.
func (d *Doc) RootKind(name string) TypeKind {
	t := d.roots[name]
	if t == nil {
		return TypeUnknown
	}
	if t.kind != TypeUnknown {
		return t.kind
	}
	kind := TypeUnknown
	for it := t.start; it != nil; it = it.right {
		switch it.ref {
		case refString, refEmbed, refFormat:
			return TypeText
		case refType:
			if k := it.ext.typ.kind; k == TypeXmlElement || k == TypeXmlText || k == TypeXmlHook {
				return TypeXmlFrag
			}
			kind = TypeArray
		case refJSON, refAny, refBinary, refDoc:
			kind = TypeArray
		}
	}
	if kind == TypeUnknown && len(t.m) > 0 {
		return TypeMap
	}
	return kind
}
