package yjs

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// ProseMirrorJSON returns the XmlFragment root name as the ProseMirror JSON
// that y-prosemirror's yXmlFragmentToProseMirrorRootNode(…).toJSON() (and so
// TipTap's getJSON()) gives: {"type":"doc","content":[…]}, an element per
// Y.XmlElement (its attributes as "attrs"), text nodes from each Y.XmlText
// delta with marks from its formatting attributes (y-prosemirror's
// "--hash" suffixes of overlapping marks removed; a mark's "attrs" is its
// attribute value when that is a non-empty object).
//
// ProseMirror orders marks by their rank in the schema and fills attribute
// defaults from it; without a schema the view cannot know either, so
// markOrder gives the schema's mark names in order (marks not listed follow
// in the order Yjs holds them), and attributes appear as stored: an attribute
// whose value was null in ProseMirror is not stored by y-prosemirror and is
// missing here. Adjacent text nodes with the same marks are joined, as
// ProseMirror joins them; embeds inside text are left out.
func (d *Doc) ProseMirrorJSON(name string, markOrder []string) []byte {
	b := []byte(`{"type":"doc"`)
	if t := d.roots[name]; t != nil {
		b = d.appendPMContent(b, t, markOrder, 0)
	}
	return append(b, '}')
}

var hashedMark = regexp.MustCompile(`^(.*)(--[a-zA-Z0-9+/=]{8})$`)

type pmText struct {
	text  []byte
	marks []byte // JSON array of marks, or nil
}

func (d *Doc) appendPMContent(b []byte, t *ytype, markOrder []string, depth int) []byte {
	var parts [][]byte
	var texts []pmText
	flush := func() {
		for _, x := range texts {
			p := []byte(`{"type":"text"`)
			if x.marks != nil {
				p = append(p, `,"marks":`...)
				p = append(p, x.marks...)
			}
			p = append(p, `,"text":`...)
			p = appendJSONString(p, string(x.text))
			parts = append(parts, append(p, '}'))
		}
		texts = texts[:0]
	}
	for it := t.start; it != nil; it = it.right {
		if !it.visible() || it.ref != refType || depth > d.lim.MaxDepth {
			continue
		}
		c := it.ext.typ
		switch c.kind {
		case TypeXmlElement:
			flush()
			p := []byte(`{"type":`)
			p = appendJSONString(p, c.name)
			if attrs := d.appendMap(nil, c, modeJSON, depth+1); len(attrs) > 2 {
				p = append(p, `,"attrs":`...)
				p = append(p, attrs...)
			}
			p = d.appendPMContent(p, c, markOrder, depth+1)
			parts = append(parts, append(p, '}'))
		case TypeXmlText:
			for _, op := range pmDelta(d.appendDelta(nil, c, modeJSON, depth+1), markOrder) {
				if n := len(texts); n > 0 && bytes.Equal(texts[n-1].marks, op.marks) {
					texts[n-1].text = append(texts[n-1].text, op.text...)
					continue
				}
				texts = append(texts, op)
			}
		}
	}
	flush()
	if len(parts) == 0 {
		return b
	}
	b = append(b, `,"content":[`...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	return append(b, ']')
}

// pmDelta turns a Y.Text delta (JSON) into text nodes with ProseMirror marks.
func pmDelta(delta []byte, markOrder []string) []pmText {
	var ops []struct {
		Insert     json.RawMessage `json:"insert"`
		Attributes json.RawMessage `json:"attributes"`
	}
	if json.Unmarshal(delta, &ops) != nil {
		return nil
	}
	out := make([]pmText, 0, len(ops))
	for _, op := range ops {
		var s string
		if json.Unmarshal(op.Insert, &s) != nil || s == "" {
			continue // an embed: not text
		}
		out = append(out, pmText{text: []byte(s), marks: pmMarks(op.Attributes, markOrder)})
	}
	return out
}

// pmMarks builds the marks array from formatting attributes, keeping their
// order except that names in markOrder come first, in that order.
func pmMarks(attrs json.RawMessage, markOrder []string) []byte {
	if len(attrs) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(attrs))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	type mark struct {
		name string
		val  json.RawMessage
	}
	var marks []mark
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil
		}
		k, _ := kt.(string)
		if m := hashedMark.FindStringSubmatch(k); m != nil {
			k = m[1]
		}
		marks = append(marks, mark{k, v})
	}
	if len(marks) == 0 {
		return nil
	}
	rank := func(n string) int {
		for i, m := range markOrder {
			if m == n {
				return i
			}
		}
		return len(markOrder)
	}
	for i := 1; i < len(marks); i++ { // stable insertion sort by rank
		for j := i; j > 0 && rank(marks[j].name) < rank(marks[j-1].name); j-- {
			marks[j], marks[j-1] = marks[j-1], marks[j]
		}
	}
	b := []byte{'['}
	for i, m := range marks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":`...)
		b = appendJSONString(b, m.name)
		if v := bytes.TrimSpace(m.val); len(v) > 2 && v[0] == '{' {
			b = append(b, `,"attrs":`...)
			b = append(b, v...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}
