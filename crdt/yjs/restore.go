package yjs

// Restore: server-side edits that make a root equal to the same root of
// another document (a version), as any Yjs client could, so that edits
// made concurrently merge with them like with any edit.
//
// A root is two parts, and both are restored:
//
//   - its sequence (a Y.Array's elements, a Y.XmlFragment's children): the
//     elements of the two sides are compared whole, by their canonical dump
//     (deep content: an Any value, a nested type with everything in it); a
//     longest common subsequence keeps the equal elements where they are
//     (after trimming the common prefix and suffix; past restoreLCSCells it
//     keeps only those) and the others are deleted, or inserted as deep
//     copies, each run of inserts after the kept element before it;
//   - its map entries (a Y.Map's keys): keys whose value differs are set to
//     a deep copy of the version's value, keys the version lacks are deleted.
//
// A changed element or value is replaced whole: a paragraph with one word
// changed is deleted and inserted again (an edit made concurrently inside
// it is lost with it), a nested Y.Map inside a map whose keys differ is
// replaced by a copy. Unchanged elements and keys are not touched, so
// concurrent edits inside them survive. Text roots are not restored here
// (their sequence is characters and formatting marks: Y.Text roots go
// through InsertText/DeleteText on a text diff); a root with text content
// in its sequence is refused (ErrBadEdit).

// restoreLCSCells bounds the table of the element diff (rows × columns of
// the middle left after trimming the common prefix and suffix).
const restoreLCSCells = 1 << 20

// element is one visible element of a sequence: offset off of item it.
type element struct {
	it  *item
	off int
	key int // its content, interned (equal contents, equal keys)
}

func (e element) id() ID { return ID{e.it.id.Client, e.it.id.Clock + uint64(e.off)} }

// hunk replaces the current elements [i0, i1) with the version's [j0, j1).
type hunk struct{ i0, i1, j0, j1 int }

// RestoreRoot makes the root name of d equal to the root name of from (a
// missing root is empty) with edits made as client, and returns their
// update (v1), or nil when the roots are equal already. See the top of
// restore.go for what is kept and what is replaced. from is only read; the
// values copied from it share nothing with it.
func (d *Doc) RestoreRoot(client uint64, name string, from *Doc) ([]byte, error) {
	if err := d.checkEditor(client); err != nil {
		return nil, err
	}
	if from == nil || from == d {
		return nil, ErrBadEdit
	}
	dst, src := d.roots[name], from.roots[name]
	if dst == nil {
		dst = &ytype{name: name} // not created unless something is written
	}
	if src == nil {
		src = &ytype{name: name}
	}
	if hasText(dst) || hasText(src) {
		return nil, ErrBadEdit
	}
	intern := map[string]int{}
	keyOf := func(doc *Doc, it *item, off int) int {
		k := string(doc.appendContent(nil, it, off, modeDump, 0))
		n, ok := intern[k]
		if !ok {
			n = len(intern)
			intern[k] = n
		}
		return n
	}
	cur, ver := elements(d, dst, keyOf), elements(from, src, keyOf)
	hunks := diffElements(cur, ver)

	// map entries: keys to delete, keys to set (in the version's order)
	var unset []*item
	var set []string
	for _, k := range dst.keys {
		if it := dst.m[k]; it != nil && it.visible() {
			if s := src.m[k]; s == nil || !s.visible() {
				unset = append(unset, it)
			}
		}
	}
	for _, k := range src.keys {
		s := src.m[k]
		if s == nil || !s.visible() {
			continue
		}
		if it := dst.m[k]; it != nil && it.visible() && keyOf(d, it, it.length-1) == keyOf(from, s, s.length-1) {
			continue
		}
		set = append(set, k)
	}
	if len(hunks) == 0 && len(unset) == 0 && len(set) == 0 {
		return nil, nil
	}

	// what the copies add, checked before anything changes
	size := 0
	for _, h := range hunks {
		for _, e := range ver[h.j0:h.j1] {
			size += from.copySize(e.it, 0)
		}
	}
	for _, k := range set {
		size += from.copySize(src.m[k], 0)
	}
	if d.docBytes+size > d.lim.MaxDocBytes {
		return nil, ErrTooLarge
	}

	if d.roots[name] == nil {
		dst = d.root(name)
	}
	before := d.state(client)
	d.beginTx()
	r := restorer{d: d, from: from, client: client}
	for _, it := range unset {
		d.deleteItem(it)
	}
	for _, k := range set {
		s := src.m[k]
		r.copyItem(dst, dst.m[k], nil, k, s, s.length-1, 1)
	}
	for _, h := range hunks {
		for _, e := range cur[h.i0:h.i1] {
			x := d.getItemCleanStart(e.id())
			d.getItemCleanEnd(e.id())
			d.deleteItem(x)
		}
		var left, right *item
		if h.i0 > 0 {
			left = d.getItemCleanEnd(cur[h.i0-1].id())
			right = left.right
		} else {
			right = dst.start
		}
		for _, e := range ver[h.j0:h.j1] {
			left = r.copyItem(dst, left, right, "", e.it, e.off, 1)
		}
	}
	return d.commitRestore(client, before), nil
}

// hasText reports whether t's sequence holds text (characters, embeds or
// formatting marks).
func hasText(t *ytype) bool {
	for it := t.start; it != nil; it = it.right {
		if it.visible() && (it.ref == refString || it.ref == refEmbed || it.ref == refFormat) {
			return true
		}
	}
	return false
}

// elements lists the visible elements of t's sequence.
func elements(d *Doc, t *ytype, keyOf func(*Doc, *item, int) int) []element {
	var out []element
	for it := t.start; it != nil; it = it.right {
		if !it.visible() || !it.countable() {
			continue
		}
		for i := 0; i < it.length; i++ {
			out = append(out, element{it: it, off: i, key: keyOf(d, it, i)})
		}
	}
	return out
}

// diffElements turns cur into ver: the hunks, in order, around a longest
// common subsequence of the middle left after the common prefix and suffix
// (bounded by restoreLCSCells; past it the whole middle is one hunk).
func diffElements(cur, ver []element) []hunk {
	p := 0
	for p < len(cur) && p < len(ver) && cur[p].key == ver[p].key {
		p++
	}
	s := 0
	for s < len(cur)-p && s < len(ver)-p && cur[len(cur)-1-s].key == ver[len(ver)-1-s].key {
		s++
	}
	a, b := cur[p:len(cur)-s], ver[p:len(ver)-s]
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	if len(a) == 0 || len(b) == 0 || len(a)*len(b) > restoreLCSCells {
		return []hunk{{p, p + len(a), p, p + len(b)}}
	}
	// lcs[i][j]: length of the LCS of a[i:] and b[j:]
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i].key == b[j].key {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	var out []hunk
	i, j := 0, 0
	open := false
	var h hunk
	flush := func() {
		if open {
			h.i1, h.j1 = p+i, p+j
			out = append(out, h)
			open = false
		}
	}
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i].key == b[j].key:
			flush()
			i++
			j++
			continue
		case !open:
			h, open = hunk{i0: p + i, j0: p + j}, true
		}
		if j == len(b) || (i < len(a) && lcs[(i+1)*w+j] >= lcs[i*w+j+1]) {
			i++
		} else {
			j++
		}
	}
	flush()
	return out
}

// restorer writes deep copies of from's content into d as client.
type restorer struct {
	d, from *Doc
	client  uint64
}

// put integrates a new item holding c (length units) in t between left and
// right (key: a map entry of t, left its current value) and returns the
// item that holds it once integrated.
func (r *restorer) put(t *ytype, left, right *item, key string, c content, length int) *item {
	d := r.d
	s := wireStruct{ref: c.ref, info: c.ref, id: ID{r.client, d.state(r.client)}, content: c, length: length}
	d.placeStruct(&s, t, left, right, key)
	d.integrate(&s, 0)
	return d.getItem(ID{s.id.Client, s.id.Clock + uint64(length) - 1})
}

// copyItem inserts a copy of n units of src (an item of from) from offset
// off into t, nested types copied deep, and returns the item holding the
// copy's last unit. n is 1 for a sequence element or a map value, src's
// length for a whole item of a copied type.
func (r *restorer) copyItem(t *ytype, left, right *item, key string, src *item, off, n int) *item {
	c := content{ref: src.ref}
	switch src.ref {
	case refAny:
		c.ext = &contentExt{anys: append([]Any(nil), src.ext.anys[off:off+n]...)}
	case refJSON:
		c.ext = &contentExt{json: append([]string(nil), src.ext.json[off:off+n]...)}
	case refString: // only whole items: XmlText / Text content of a copied type
		c.buf = append([]byte(nil), src.buf...)
	case refBinary:
		c.buf = append([]byte(nil), src.buf...)
	case refEmbed:
		c.ext = &contentExt{str: src.ext.str}
	case refFormat:
		c.ext = &contentExt{str: src.ext.str, str2: src.ext.str2}
	case refDoc: // a subdocument: the same guid and options
		o := *src.ext.opts
		c.ext = &contentExt{str: src.ext.str, opts: &o}
	case refType:
		st := src.ext.typ
		nt := &ytype{kind: st.kind, name: st.name}
		c.ext = &contentExt{typ: nt}
		it := r.put(t, left, right, key, c, 1)
		r.copyType(nt, st)
		return it
	default: // Deleted content is never visible
		panic("yjs: copy of invisible content")
	}
	return r.put(t, left, right, key, c, n)
}

// copyType fills the new type nt with copies of src's visible content: its
// sequence item by item (formatting marks included, so a Y.XmlText keeps
// its delta), then its map entries in their insertion order.
func (r *restorer) copyType(nt, src *ytype) {
	var left *item
	for it := src.start; it != nil; it = it.right {
		if it.visible() {
			left = r.copyItem(nt, left, nil, "", it, 0, it.length)
		}
	}
	for _, k := range src.keys {
		if it := src.m[k]; it != nil && it.visible() {
			r.copyItem(nt, nil, nil, k, it, it.length-1, 1)
		}
	}
}

// copySize approximates what a copy of it (from offset off) adds to a
// document's size, nested types included.
func (d *Doc) copySize(it *item, depth int) int {
	n := it.content.sizeBytes() + 96
	if it.ref != refType || depth > d.lim.MaxDepth {
		return n
	}
	t := it.ext.typ
	for c := t.start; c != nil; c = c.right {
		if c.visible() {
			n += d.copySize(c, depth+1)
		}
	}
	for _, c := range t.m {
		if c.visible() {
			n += d.copySize(c, depth+1)
		}
	}
	return n
}

// commitRestore ends the restore's transaction and returns its update: the
// structs client wrote from clock before, and the deletes.
func (d *Doc) commitRestore(client, before uint64) []byte {
	var ds deleteSet
	for _, x := range d.tx.deleted {
		ds.clients = append(ds.clients, dsClient{x.client, []dsRange{x.r}})
	}
	ds.normalize()
	d.finish(ApplyResult{})
	e := &encoder{}
	if d.state(client) > before {
		e.varUint(1)
		d.writeClient(e, client, before)
	} else {
		e.varUint(0)
	}
	ds.encodeV1(e)
	return e.b
}
