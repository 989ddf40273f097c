package yjs

import (
	"errors"
	"unicode/utf8"
)

// Server-side edits. Each one runs as its own transaction under the given
// client id, changes the document, and returns the Yjs update (v1) that a
// Yjs client making the same edit would send, ready to fan out and store.
// Positions count UTF-16 code units, as Yjs does. The client id must be the
// server's own: no other replica may write with it, and nothing of it may
// be pending.

// ErrBadEdit: the edit's arguments are out of range or invalid.
var ErrBadEdit = errors.New("yjs: invalid edit")

func (d *Doc) checkEditor(client uint64) error {
	if client > maxSafe || len(d.pending[client]) > 0 || d.tx != nil {
		return ErrBadEdit
	}
	return nil
}

// textPos is a position in a sequence (Yjs's ItemTextListPosition).
type textPos struct {
	left, right *item
	index       int
	attrs       []attr
}

func (p *textPos) forward() {
	r := p.right
	if r.ref == refFormat {
		if !r.deleted() {
			p.attrs = setAttrFrom(p.attrs, r)
		}
	} else if !r.deleted() {
		p.index += r.length
	}
	p.left, p.right = r, r.right
}

// findPosition walks to index from the start, splitting the item it falls in (findPosition).
func (d *Doc) findPosition(t *ytype, index int) *textPos {
	p := &textPos{right: t.start}
	d.findNext(p, index)
	return p
}

// findPositionMarker is findPosition as a Yjs doc that has just loaded the
// state runs it with its search markers: the walk starts at the marker item
// for index with no attributes in effect (Yjs's findMarker on an empty
// marker list), which decides which format marks an edit steps over.
func (d *Doc) findPositionMarker(t *ytype, index int) *textPos {
	if t.start == nil || index == 0 {
		return d.findPosition(t, index)
	}
	// p: the item after the last visible item ending at or before index, or
	// the item holding index (found from the cached position when there is one)
	p, pindex := t.start, 0
	if t.posItem != nil {
		p, pindex = t.posItem, t.posIndex
		for p.left != nil && pindex > index {
			p = p.left
			if p.visible() && p.countable() {
				pindex -= p.length
			}
		}
		if pindex == index {
			for p.left != nil && !(p.left.visible() && p.left.countable()) {
				p = p.left
			}
		}
	}
	for p.right != nil && pindex < index {
		if p.visible() && p.countable() {
			if index < pindex+p.length {
				break
			}
			pindex += p.length
		}
		p = p.right
	}
	for p.left != nil && p.left.id.Client == p.id.Client && p.left.end() == p.id.Clock {
		p = p.left
		if p.visible() && p.countable() {
			pindex -= p.length
		}
	}
	pos := &textPos{left: p.left, right: p, index: pindex}
	// remember the item before p: an edit at index >= pindex leaves it and its index alone
	if q := p.left; q != nil {
		t.pendingPos, t.pendingIndex = q, pindex
		if q.visible() && q.countable() {
			t.pendingIndex -= q.length
		}
	}
	d.findNext(pos, index-pindex)
	return pos
}

// findNext walks count units right from pos, splitting the item it ends in (findNextPosition).
func (d *Doc) findNext(p *textPos, count int) {
	for p.right != nil && count > 0 {
		r := p.right
		if r.ref == refFormat {
			if !r.deleted() {
				p.attrs = setAttrFrom(p.attrs, r)
			}
		} else if !r.deleted() {
			if count < r.length {
				d.getItemCleanStart(ID{r.id.Client, r.id.Clock + uint64(count)})
			}
			p.index += r.length
			count -= r.length
		}
		p.left, p.right = r, r.right
	}
}

func setAttrFrom(attrs []attr, r *item) []attr {
	attrs = setAttr(attrs, r.ext.str, compactJSON(r.ext.str2))
	for i := range attrs {
		if attrs[i].key == r.ext.str {
			attrs[i].src = r
		}
	}
	return attrs
}

// InsertText inserts text at index (UTF-16 units) of the Y.Text root name,
// with the formatting in effect there (Y.Text#insert without attributes).
func (d *Doc) InsertText(client uint64, name string, index int, text string) ([]byte, error) {
	if err := d.checkEditor(client); err != nil {
		return nil, err
	}
	if text == "" || !utf8.ValidString(text) || len(text) > d.lim.MaxStringBytes || index < 0 {
		return nil, ErrBadEdit
	}
	if d.docBytes+len(text)+96 > d.lim.MaxDocBytes {
		return nil, ErrTooLarge
	}
	t := d.root(name)
	if index > t.length {
		return nil, ErrBadEdit
	}
	d.beginTx()
	p := d.findPositionMarker(t, index)
	// minimizeAttributeChanges: step over deleted items and format items
	// that leave the attributes as they are
	for p.right != nil {
		r := p.right
		if !r.deleted() && !(r.ref == refFormat && attrValue(p.attrs, r.ext.str) == compactJSON(r.ext.str2)) {
			break
		}
		p.forward()
	}
	s := wireStruct{ref: refString, info: refString, id: ID{client, d.state(client)},
		content: content{ref: refString, buf: []byte(text)}, length: utf16Len([]byte(text))}
	d.placeStruct(&s, t, p.left, p.right, "")
	u := d.commitEdit(&s)
	t.keepPos()
	return u, nil
}

// keepPos makes the position remembered before an edit the cached one.
func (t *ytype) keepPos() {
	t.posItem, t.posIndex = t.pendingPos, t.pendingIndex
	t.pendingPos = nil
}

func attrValue(attrs []attr, key string) string {
	for _, a := range attrs {
		if a.key == key {
			return a.val
		}
	}
	return "null"
}

// placeStruct sets the origins (or the parent) of a new local struct.
func (d *Doc) placeStruct(s *wireStruct, t *ytype, left, right *item, key string) {
	if left != nil {
		s.info |= 0x80
		s.origin = left.lastID()
	}
	if right != nil {
		s.info |= 0x40
		s.rightOrigin = right.id
	}
	if key != "" {
		s.info |= 0x20
		s.parentSub = key
	}
	if left == nil && right == nil {
		if t.item == nil {
			s.parentKind, s.parentName = parentRoot, t.name
		} else {
			s.parentKind, s.parentID = parentItem, t.item.id
		}
	}
}

// commitEdit integrates s (nil for a delete-only edit), ends the
// transaction and returns its update.
func (d *Doc) commitEdit(s *wireStruct) []byte {
	u := &update{}
	if s != nil {
		d.integrate(s, 0)
		u.clients = []clientStructs{{client: s.id.Client, structs: []wireStruct{*s}}}
	}
	for _, x := range d.tx.deleted {
		u.ds.clients = append(u.ds.clients, dsClient{x.client, []dsRange{x.r}})
	}
	u.ds.normalize()
	d.finish(ApplyResult{})
	return u.encodeV1()
}

// DeleteText deletes length UTF-16 units from index of the Y.Text root
// name (Y.Text#delete; formatting marks are left in place).
func (d *Doc) DeleteText(client uint64, name string, index, length int) ([]byte, error) {
	if err := d.checkEditor(client); err != nil {
		return nil, err
	}
	t := d.roots[name]
	if t == nil || index < 0 || length < 0 || index+length > t.length {
		return nil, ErrBadEdit
	}
	d.beginTx()
	p := d.findPositionMarker(t, index)
	startAttrs := append([]attr(nil), p.attrs...)
	start := p.right
	for length > 0 && p.right != nil {
		r := p.right
		if !r.deleted() && (r.ref == refString || r.ref == refEmbed || r.ref == refType) {
			if length < r.length {
				d.getItemCleanStart(ID{r.id.Client, r.id.Clock + uint64(length)})
			}
			length -= r.length
			d.deleteItem(r)
		}
		p.forward()
	}
	if start != nil {
		d.cleanupFormattingGap(start, p.right, startAttrs, p.attrs)
	}
	u := d.commitEdit(nil)
	t.keepPos()
	return u, nil
}

// cleanupFormattingGap deletes the format marks a deletion left without
// effect (YText's cleanupFormattingGap). Attribute values compare as
// JavaScript's === does: primitives by value, objects only when they come
// from the same mark.
func (d *Doc) cleanupFormattingGap(start, curr *item, startAttrs, currAttrs []attr) []attr {
	end := start
	endFormats := map[string]*item{}
	for end != nil && (!end.countable() || end.deleted()) {
		if !end.deleted() && end.ref == refFormat {
			endFormats[end.ext.str] = end
		}
		end = end.right
	}
	reachedCurr := false
	for ; start != end; start = start.right {
		if curr == start {
			reachedCurr = true
		}
		if start.deleted() || start.ref != refFormat {
			continue
		}
		key, value := start.ext.str, compactJSON(start.ext.str2)
		sv := lookupAttr(startAttrs, key)
		if endFormats[key] != start || sv.same(value, start) {
			d.deleteItem(start)
			if cv := lookupAttr(currAttrs, key); !reachedCurr && cv.same(value, start) && !sv.same(value, start) {
				if sv.val == "null" {
					currAttrs = setAttr(currAttrs, key, "null")
				} else {
					currAttrs = setAttr(currAttrs, key, sv.val)
				}
			}
		}
		if !reachedCurr && !start.deleted() {
			currAttrs = setAttrFrom(currAttrs, start)
		}
	}
	return currAttrs
}

func lookupAttr(attrs []attr, key string) attr {
	for _, a := range attrs {
		if a.key == key {
			return a
		}
	}
	return attr{key: key, val: "null"}
}

// same is JavaScript's === between an attribute value and the value of mark src.
func (a attr) same(val string, src *item) bool {
	if len(val) > 0 && (val[0] == '{' || val[0] == '[') {
		return a.src == src
	}
	return a.val == val
}

// SetMap sets key of the Y.Map root name to value (Y.Map#set).
func (d *Doc) SetMap(client uint64, name, key string, value Any) ([]byte, error) {
	if err := d.checkEditor(client); err != nil {
		return nil, err
	}
	if key == "" || !utf8.ValidString(key) {
		return nil, ErrBadEdit
	}
	t := d.root(name)
	var left *item
	if t.m != nil {
		left = t.m[key]
	}
	d.beginTx()
	s := wireStruct{ref: refAny, info: refAny, id: ID{client, d.state(client)}, length: 1,
		content: content{ref: refAny, ext: &contentExt{anys: []Any{value}}}}
	d.placeStruct(&s, t, left, nil, key)
	return d.commitEdit(&s), nil
}

// DeleteMap deletes key of the Y.Map root name (Y.Map#delete); nil when
// the key is not set.
func (d *Doc) DeleteMap(client uint64, name, key string) ([]byte, error) {
	if err := d.checkEditor(client); err != nil {
		return nil, err
	}
	t := d.roots[name]
	if t == nil || t.m == nil || t.m[key] == nil || t.m[key].deleted() {
		return nil, nil
	}
	d.beginTx()
	d.deleteItem(t.m[key])
	return d.commitEdit(nil), nil
}
