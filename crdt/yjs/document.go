package yjs

import (
	"slices"
)

// Doc is a Yjs document: the struct store of every client, the root types,
// and the structs and deletes still waiting for their causal dependencies.
// It is not safe for concurrent use (one owner goroutine holds it).
type Doc struct {
	lim       Limits
	clients   map[uint64]*structList
	roots     map[string]*ytype
	rootOrder []string
	pending   map[uint64][]wireStruct // per client, sorted by clock
	pendingN  int
	// pendingMissing is Yjs's missing state vector of the pending structs:
	// they are retried only when one of these clocks has arrived.
	pendingMissing map[uint64]uint64
	planMissing    map[uint64]uint64 // set by plan for the Apply that runs it
	planSplit      int               // plan[:planSplit] is the update's own structs, the rest the pending retry
	pendingDS      map[uint64][]dsRange
	pendingDN      int
	docBytes       int
	observed       map[string]bool // Y.Text roots whose changes Apply reports (Observe)

	tx          *txn
	txBuf       txn
	scratch     update  // decode buffer reused by Apply
	setBefore   itemSet // scratch sets of the YATA conflict loop
	setConflict itemSet
}

// txn is the scratch state of one Apply or local edit (Yjs's Transaction).
type txn struct {
	before  []txClient // state of each client touched, before the transaction
	deleted []txDel    // IDs deleted by the transaction (normalized in finish)
	merge   []*item    // right halves of splits: try to merge them back afterwards
	changed []*ytype   // types whose content changed (may repeat)
	remote  bool       // an Apply (Yjs's non-local transaction)
	// deletions made by the formatting cleanup that follows a remote
	// transaction (Yjs runs it as a transaction of its own)
	inCleanup bool
	cleanup   []txDel
}

type txClient struct{ client, before uint64 }

type txDel struct {
	client uint64
	r      dsRange
}

// New returns an empty document.
func New(lim Limits) *Doc {
	return &Doc{
		lim:       lim.withDefaults(),
		clients:   map[uint64]*structList{},
		roots:     map[string]*ytype{},
		pending:   map[uint64][]wireStruct{},
		pendingDS: map[uint64][]dsRange{},
	}
}

// root returns the root type name, creating it (kind unknown) when missing.
func (d *Doc) root(name string) *ytype {
	t := d.roots[name]
	if t == nil {
		t = &ytype{name: name}
		d.roots[name] = t
		d.rootOrder = append(d.rootOrder, name)
	}
	return t
}

func (d *Doc) state(client uint64) uint64 {
	if l := d.clients[client]; l != nil {
		return l.state
	}
	return 0
}

func (d *Doc) list(client uint64) *structList {
	l := d.clients[client]
	if l == nil {
		l = &structList{}
		d.clients[client] = l
	}
	return l
}

// getItem returns the struct containing id (which must exist).
func (d *Doc) getItem(id ID) *item {
	l := d.clients[id.Client]
	return l.at(l.find(id.Clock))
}

// getItemCleanStart returns the struct starting at id, splitting an item if needed.
func (d *Doc) getItemCleanStart(id ID) *item {
	l := d.clients[id.Client]
	p := l.find(id.Clock)
	it := l.at(p)
	if it.id.Clock < id.Clock && !it.isGC() {
		r := d.splitItem(it, int(id.Clock-it.id.Clock))
		l.insertAfter(p, r)
		return r
	}
	return it
}

// getItemCleanEnd returns the struct ending at id, splitting an item if needed.
func (d *Doc) getItemCleanEnd(id ID) *item {
	l := d.clients[id.Client]
	p := l.find(id.Clock)
	it := l.at(p)
	if id.Clock != it.end()-1 && !it.isGC() {
		r := d.splitItem(it, int(id.Clock-it.id.Clock)+1)
		l.insertAfter(p, r)
	}
	return it
}

// splitItem cuts left at diff and returns the new right part (not yet in the store).
func (d *Doc) splitItem(left *item, diff int) *item {
	r := &item{
		id:          ID{left.id.Client, left.id.Clock + uint64(diff)},
		length:      left.length - diff,
		left:        left,
		right:       left.right,
		origin:      ID{left.id.Client, left.id.Clock + uint64(diff) - 1},
		rightOrigin: left.rightOrigin,
		parent:      left.parent,
		parentSub:   left.parentSub,
		flags:       left.flags&(fDeleted|fKeep|fSub|fRightOrigin) | fOrigin,
	}
	r.content = left.content.splice(diff, left.length)
	left.right = r
	if r.right != nil {
		r.right.left = r
	}
	if d.tx != nil {
		d.tx.merge = append(d.tx.merge, r)
	}
	if r.hasSub() && r.right == nil && r.parent != nil {
		r.parent.m[r.parentSub] = r
	}
	left.length = diff
	return r
}

func (d *Doc) beginTx() *txn {
	t := &d.txBuf
	clear(t.merge)
	clear(t.changed)
	t.before, t.deleted, t.merge, t.changed = t.before[:0], t.deleted[:0], t.merge[:0], t.changed[:0]
	t.remote, t.inCleanup, t.cleanup = false, false, t.cleanup[:0]
	d.tx = t
	return t
}

func (t *txn) touch(d *Doc, client uint64) {
	for i := range t.before {
		if t.before[i].client == client {
			return
		}
	}
	t.before = append(t.before, txClient{client, d.state(client)})
}

// existedBefore reports whether id was integrated before the transaction began.
func (t *txn) existedBefore(id ID) bool {
	for _, b := range t.before {
		if b.client == id.Client {
			return id.Clock < b.before
		}
	}
	return true // the client was not touched: everything of it is older
}

func (t *txn) addDelete(id ID, n int) {
	if t.inCleanup {
		t.cleanup = append(t.cleanup, txDel{id.Client, dsRange{id.Clock, uint64(n)}})
	}
	if k := len(t.deleted); k > 0 {
		if l := &t.deleted[k-1]; l.client == id.Client && l.r.clock+l.r.len == id.Clock {
			l.r.len += uint64(n)
			return
		}
	}
	t.deleted = append(t.deleted, txDel{id.Client, dsRange{id.Clock, uint64(n)}})
}

func (t *txn) markChanged(ty *ytype) {
	if ty == nil {
		return
	}
	ty.posItem = nil
	// Yjs's addChangedTypeToTransaction: only types that existed before the
	// transaction and are not deleted count as changed
	if it := ty.item; it != nil && (it.deleted() || !t.existedBefore(it.id)) {
		return
	}
	if len(t.changed) == 0 || t.changed[len(t.changed)-1] != ty {
		t.changed = append(t.changed, ty)
	}
}

// deleteItem marks it deleted (Item.delete), recursing into a type's children.
func (d *Doc) deleteItem(it *item) {
	// an explicit stack: nested types are deleted with their children, and
	// hostile nesting must not grow the goroutine stack
	stack := []*item{it}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.deleted() {
			continue
		}
		p := it.parent
		if it.countable() && !it.hasSub() && p != nil {
			p.length -= it.length
		}
		it.flags |= fDeleted
		d.tx.addDelete(it.id, it.length)
		d.tx.markChanged(p)
		if it.ref == refType {
			// children in Yjs's order (ContentType.delete): the sequence left
			// to right, then the map in insertion order; pushed reversed
			t := it.ext.typ
			n := len(stack)
			for c := t.start; c != nil; c = c.right {
				if !c.deleted() {
					stack = append(stack, c)
				}
			}
			for _, k := range t.keys {
				if c := t.m[k]; c != nil && !c.deleted() {
					stack = append(stack, c)
				}
			}
			slices.Reverse(stack[n:])
		}
	}
}

func sortedKeys(m map[string]*item) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// integrateGC adds a GC struct for [clock, clock+n).
func (d *Doc) integrateGC(client, clock uint64, n int) {
	d.tx.touch(d, client)
	d.list(client).push(&item{id: ID{client, clock}, length: n, flags: fGC | fDeleted})
}

// integrate adds a decoded struct to the document from offset off; its
// dependencies are present (Item.getMissing then Item.integrate).
func (d *Doc) integrate(s *wireStruct, off int) {
	if s.ref == refGC {
		d.integrateGC(s.id.Client, s.id.Clock+uint64(off), s.length-off)
		return
	}
	if off == 0 && (s.ref == refString || s.ref == refAny || s.ref == refJSON) && s.hasOrigin() && d.fastAppend(s) {
		return
	}
	it := &item{id: s.id, length: s.length, content: s.content}
	if s.ref == refString { // decoded strings are views into the input
		it.content.buf = append(make([]byte, 0, len(s.content.buf)), s.content.buf...)
	}
	if s.ref == refJSON || s.ref == refAny {
		ext := *s.content.ext // splits must not touch the decoded struct
		it.content.ext = &ext
	}
	var parent *ytype
	var left, right *item
	if s.hasOrigin() {
		left = d.getItemCleanEnd(s.origin)
		it.origin = left.lastID()
		it.flags |= fOrigin
	}
	if s.hasRightOrigin() {
		right = d.getItemCleanStart(s.rightOrigin)
		it.rightOrigin = right.id
		it.flags |= fRightOrigin
	}
	gc := (left != nil && left.isGC()) || (right != nil && right.isGC())
	if !gc {
		switch s.parentKind {
		case parentNone:
			if left != nil {
				parent, it.parentSub, it.flags = left.parent, left.parentSub, it.flags|left.flags&fSub
			} else if right != nil {
				parent, it.parentSub, it.flags = right.parent, right.parentSub, it.flags|right.flags&fSub
			}
		case parentRoot:
			parent = d.root(s.parentName)
		case parentItem:
			if pi := d.getItem(s.parentID); !pi.isGC() && pi.ref == refType {
				parent = pi.ext.typ
			}
		}
		if s.parentKind != parentNone && s.info&0x20 != 0 {
			it.parentSub, it.flags = s.parentSub, it.flags|fSub
		}
	}
	if off > 0 {
		it.id.Clock += uint64(off)
		left = d.getItemCleanEnd(ID{it.id.Client, it.id.Clock - 1})
		it.origin = left.lastID()
		it.flags |= fOrigin
		r := it.content.splice(off, it.length)
		it.content = r
		it.length -= off
	}
	if parent == nil || (left != nil && left.isGC()) {
		d.integrateGC(it.id.Client, it.id.Clock, it.length)
		return
	}
	if it.hasSub() && parent.m == nil {
		parent.m = map[string]*item{}
	}
	it.parent = parent
	it.left, it.right = left, right
	d.yata(it)
	d.tx.touch(d, it.id.Client)
	if d.appendMerge(it) {
		return
	}
	d.list(it.id.Client).push(it)
	d.docBytes += it.content.sizeBytes() + 96
	switch it.ref {
	case refDeleted:
		d.tx.addDelete(it.id, it.length)
		it.flags |= fDeleted
	case refType:
		t := it.ext.typ
		t.item = it
		t.depth = parent.depth + 1
	case refFormat:
		parent.hasFormatting = true
	}
	d.tx.markChanged(parent)
	if (parent.item != nil && parent.item.deleted()) || (it.hasSub() && it.right != nil) {
		d.deleteItem(it)
	}
}

// itemSet is a small set of items: a slice searched linearly, with a map
// once it grows (conflict loops are short except under many concurrent inserts).
type itemSet struct {
	list []*item
	m    map[*item]struct{}
}

func (s *itemSet) reset() {
	clear(s.list)
	s.list = s.list[:0]
	s.m = nil
}

func (s *itemSet) add(it *item) {
	if s.m != nil {
		s.m[it] = struct{}{}
		return
	}
	s.list = append(s.list, it)
	if len(s.list) > 32 {
		s.m = make(map[*item]struct{}, 64)
		for _, x := range s.list {
			s.m[x] = struct{}{}
		}
	}
}

func (s *itemSet) has(it *item) bool {
	if s.m != nil {
		_, ok := s.m[it]
		return ok
	}
	for _, x := range s.list {
		if x == it {
			return true
		}
	}
	return false
}

// fastAppend integrates s by extending its client's last item when s
// continues it exactly (typing): its origin is that item's last clock, its
// right origin that item's right origin, and nothing was inserted between
// them, so the YATA loop would place it right after and the end of the
// transaction would merge the two. No item is allocated.
func (d *Doc) fastAppend(s *wireStruct) bool {
	l := d.clients[s.id.Client]
	if l == nil || l.count == 0 || l.state != s.id.Clock {
		return false
	}
	b := l.blocks[len(l.blocks)-1]
	left := b[len(b)-1]
	p := left.parent
	if left.flags&(fDeleted|fGC|fSub) != 0 || left.ref != s.ref || s.origin != left.lastID() || p == nil ||
		(p.item != nil && p.item.deleted()) {
		return false
	}
	if s.hasRightOrigin() {
		if left.flags&fRightOrigin == 0 || left.rightOrigin != s.rightOrigin || left.right == nil || left.right.id != s.rightOrigin {
			return false
		}
	} else if left.flags&fRightOrigin != 0 || left.right != nil {
		return false
	}
	d.tx.touch(d, s.id.Client)
	left.content.mergeWith(&s.content)
	left.length += s.length
	p.length += s.length
	l.state = left.end()
	d.docBytes += s.content.sizeBytes()
	d.tx.markChanged(p)
	return true
}

// appendMerge folds a just-linked item into its left neighbour when that is
// the previous struct of the same client and Yjs would merge the two at the
// end of the transaction anyway (the common case of typing): no new struct.
func (d *Doc) appendMerge(it *item) bool {
	left := it.left
	if left == nil || left.id.Client != it.id.Client || left.end() != it.id.Clock ||
		left.flags&(fDeleted|fGC) != 0 || it.flags&fDeleted != 0 || left.ref != it.ref ||
		(it.ref != refString && it.ref != refAny && it.ref != refJSON) ||
		it.flags&fOrigin == 0 || it.origin != left.lastID() ||
		!sameOrigin(left.flags&fRightOrigin != 0, left.rightOrigin, it.flags&fRightOrigin != 0, it.rightOrigin) ||
		left.parent != it.parent || left.hasSub() || it.hasSub() ||
		(it.parent.item != nil && it.parent.item.deleted()) {
		return false
	}
	left.content.mergeWith(&it.content)
	left.length += it.length
	left.right = it.right
	if it.right != nil {
		it.right.left = left
	}
	l := d.clients[it.id.Client]
	l.state = left.end()
	d.docBytes += it.content.sizeBytes()
	d.tx.markChanged(it.parent)
	return true
}

// yata finds it's place among concurrent inserts and links it in (the
// conflict resolution of Yjs's Item.integrate).
func (d *Doc) yata(it *item) {
	parent := it.parent
	left, right := it.left, it.right
	if (left == nil && (right == nil || right.left != nil)) || (left != nil && left.right != right) {
		var o *item
		if left != nil {
			o = left.right
		} else if it.hasSub() {
			o = parent.m[it.parentSub]
			for o != nil && o.left != nil {
				o = o.left
			}
		} else {
			o = parent.start
		}
		before := &d.setBefore // itemsBeforeOrigin
		conflicting := &d.setConflict
		before.reset()
		conflicting.reset()
		for o != nil && o != right {
			before.add(o)
			conflicting.add(o)
			if sameOrigin(it.flags&fOrigin != 0, it.origin, o.flags&fOrigin != 0, o.origin) {
				if o.id.Client < it.id.Client {
					left = o
					conflicting.reset()
				} else if sameOrigin(it.flags&fRightOrigin != 0, it.rightOrigin, o.flags&fRightOrigin != 0, o.rightOrigin) {
					break
				}
			} else if o.flags&fOrigin != 0 && d.has(o.origin) && before.has(d.getItem(o.origin)) {
				if !conflicting.has(d.getItem(o.origin)) {
					left = o
					conflicting.reset()
				}
			} else {
				break
			}
			o = o.right
		}
		it.left = left
	}
	if it.left != nil {
		it.right = it.left.right
		it.left.right = it
	} else {
		var r *item
		if it.hasSub() {
			r = parent.m[it.parentSub]
			for r != nil && r.left != nil {
				r = r.left
			}
		} else {
			r = parent.start
			parent.start = it
		}
		it.right = r
	}
	if it.right != nil {
		it.right.left = it
	} else if it.hasSub() {
		if _, ok := parent.m[it.parentSub]; !ok {
			parent.keys = append(parent.keys, it.parentSub)
		}
		parent.m[it.parentSub] = it
		if it.left != nil {
			d.deleteItem(it.left)
		}
	}
	if !it.hasSub() && it.countable() && !it.deleted() {
		parent.length += it.length
	}
}

func (d *Doc) has(id ID) bool { return id.Clock < d.state(id.Client) }

func sameOrigin(ha bool, a ID, hb bool, b ID) bool {
	return ha == hb && (!ha || a == b)
}
