package yjs

import "sort"

// TextChange is the change one transaction made to an observed Y.Text root.
type TextChange struct {
	Root string
	// Delta is the JSON of Yjs's YTextEvent.delta for the transaction:
	// [{"retain":n}, {"retain":n,"attributes":{…}}, {"insert":"…",
	// "attributes":{…}}, {"insert":{embed}}, {"delete":n}], lengths in
	// UTF-16 code units, trailing plain retains dropped — what a Yjs
	// observer of the text would see, and what a Quill-style editor applies
	// to its copy of the previous text.
	Delta []byte
}

// Observe asks every later Apply to report the change it makes to the
// Y.Text root name in ApplyResult.Changes, as a Yjs observer of the text
// would see it (before the formatting cleanup that follows). Server edits
// (InsertText, DeleteText) report nothing: their caller knows the change.
// Observing costs a walk of the text per Apply that changes it.
//
// Attribute values are compared by their JSON: Yjs compares object values
// one level deep (equalFlat) and nested objects by identity, so an
// attribute whose value nests an object may be reported as changed by Yjs
// where it is reported unchanged here.
func (d *Doc) Observe(name string) {
	if d.observed == nil {
		d.observed = map[string]bool{}
	}
	d.observed[name] = true
}

// observeChanges computes the TextChange of every observed root the
// transaction changed. It runs before the transaction's deleted content is
// collected, as Yjs's observers run before its garbage collection.
func (d *Doc) observeChanges(tx *txn) []TextChange {
	var out []TextChange
	for _, t := range tx.changed {
		if t.item != nil || !d.observed[t.name] || d.roots[t.name] != t {
			continue
		}
		dup := false
		for _, c := range out {
			dup = dup || c.Root == t.name
		}
		if !dup {
			out = append(out, TextChange{Root: t.name, Delta: d.textChange(tx, t)})
		}
	}
	return out
}

// deletedIn reports whether id was deleted by the transaction (tx.deleted
// is normalized: sorted by client and clock, merged).
func (tx *txn) deletedIn(id ID) bool {
	ds := tx.deleted
	i := sort.Search(len(ds), func(i int) bool {
		x := ds[i]
		return x.client > id.Client || (x.client == id.Client && x.r.clock+x.r.len > id.Clock)
	})
	return i < len(ds) && ds[i].client == id.Client && ds[i].r.clock <= id.Clock
}

// beforeState is the client's state before the transaction.
func (tx *txn) beforeState(client uint64) (uint64, bool) {
	for _, b := range tx.before {
		if b.client == client {
			return b.before, true
		}
	}
	return 0, false
}

// deltaWriter accumulates the ops of a change delta as Yjs's
// YTextEvent.delta does (one pending action, flushed by addOp).
type deltaWriter struct {
	b         []byte
	n         int    // ops written
	action    byte   // 0, 'i'nsert, 'd'elete, 'r'etain
	insert    []byte // pending string insert
	retain    int
	del       int
	cur       []attr // currentAttributes (null values dropped)
	changed   []attr // the attributes object of retains ("null" values kept)
	lastPlain int    // len(b) before the trailing run of plain retains, -1 if the last op is not one
}

func (w *deltaWriter) open() {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
}

func (w *deltaWriter) addOp() {
	switch w.action {
	case 'd':
		if w.del > 0 {
			w.lastPlain = -1
			w.open()
			w.b = append(w.b, `{"delete":`...)
			w.b = appendInt(w.b, w.del)
			w.b = append(w.b, '}')
		}
		w.del = 0
	case 'i':
		if len(w.insert) > 0 {
			w.lastPlain = -1
			w.open()
			w.b = append(w.b, `{"insert":`...)
			w.b = appendJSONString(w.b, string(w.insert))
			if len(w.cur) > 0 {
				w.b = appendAttrs(w.b, w.cur)
			}
			w.b = append(w.b, '}')
		}
		w.insert = w.insert[:0]
	case 'r':
		if w.retain > 0 {
			start := len(w.b)
			w.open()
			w.b = append(w.b, `{"retain":`...)
			w.b = appendInt(w.b, w.retain)
			if len(w.changed) > 0 {
				w.b = appendAttrs(w.b, w.changed)
				w.lastPlain = -1
			} else if w.lastPlain < 0 {
				w.lastPlain = start
			}
			w.b = append(w.b, '}')
		}
		w.retain = 0
	}
	w.action = 0
}

func (w *deltaWriter) to(a byte) {
	if w.action != a {
		w.addOp()
		w.action = a
	}
}

func appendInt(b []byte, n int) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

// attrGet returns the value of key in attrs, "null" when it is not there.
func attrGet(attrs []attr, key string) string {
	for _, a := range attrs {
		if a.key == key {
			return a.val
		}
	}
	return "null"
}

// attrPut sets key (a "null" value is kept, unlike setAttr).
func attrPut(attrs []attr, key, val string) []attr {
	for i := range attrs {
		if attrs[i].key == key {
			attrs[i].val = val
			return attrs
		}
	}
	return append(attrs, attr{key: key, val: val})
}

func attrDel(attrs []attr, key string) []attr {
	for i := range attrs {
		if attrs[i].key == key {
			return append(attrs[:i], attrs[i+1:]...)
		}
	}
	return attrs
}

// textChange writes the delta of t for the transaction (YTextEvent.delta).
func (d *Doc) textChange(tx *txn, t *ytype) []byte {
	w := &deltaWriter{b: []byte{'['}, lastPlain: -1}
	var old []attr // oldAttributes ("null" values kept)
	for it := t.start; it != nil; it = it.right {
		if it.isGC() {
			continue
		}
		deletes := it.deleted() && tx.deletedIn(it.id)
		switch it.ref {
		case refEmbed, refType:
			adds := !tx.existedBefore(it.id)
			switch {
			case adds:
				if !deletes {
					w.addOp()
					w.action = 'i'
					w.addEmbed(d, it)
				}
			case deletes:
				w.to('d')
				w.del++
			case !it.deleted():
				w.to('r')
				w.retain++
			}
		case refString:
			// an item folded into its left neighbour while integrating
			// (appendMerge) may hold old and new text: split at the state
			nOld := it.length
			if b, ok := tx.beforeState(it.id.Client); ok && it.end() > b {
				nOld = max(0, int(int64(b)-int64(it.id.Clock)))
			}
			switch {
			case deletes:
				if nOld > 0 {
					w.to('d')
					w.del += nOld
				}
			case !it.deleted():
				if nOld > 0 {
					w.to('r')
					w.retain += nOld
				}
				if nOld < it.length {
					w.to('i')
					_, added := utf16Split(it.buf, nOld, it.length)
					w.insert = append(w.insert, added...)
				}
			}
		case refFormat:
			key, val := it.ext.str, compactJSON(it.ext.str2)
			adds := !tx.existedBefore(it.id)
			// Yjs deletes a mark it finds redundant while computing the
			// delta (a transaction of its own); the delta goes on as if
			// the mark were gone. This engine reports the same delta and
			// leaves the document alone.
			redundant := false
			switch {
			case adds:
				if deletes {
					break
				}
				if attrGet(w.cur, key) != val {
					if w.action == 'r' {
						w.addOp()
					}
					if val == attrGet(old, key) {
						w.changed = attrDel(w.changed, key)
					} else {
						w.changed = attrPut(w.changed, key, val)
					}
				} else if val != "null" {
					redundant = true
				}
			case deletes:
				old = attrPut(old, key, val)
				if cur := attrGet(w.cur, key); cur != val {
					if w.action == 'r' {
						w.addOp()
					}
					w.changed = attrPut(w.changed, key, cur)
				}
			case !it.deleted():
				old = attrPut(old, key, val)
				for _, a := range w.changed {
					if a.key != key {
						continue
					}
					if a.val != val {
						if w.action == 'r' {
							w.addOp()
						}
						if val == "null" {
							w.changed = attrDel(w.changed, key)
						} else {
							w.changed = attrPut(w.changed, key, val)
						}
					} else if a.val != "null" {
						redundant = true
					}
					break
				}
			}
			if !it.deleted() && !redundant {
				if w.action == 'i' {
					w.addOp()
				}
				w.cur = setAttr(w.cur, key, val)
			}
		}
	}
	w.addOp()
	if w.lastPlain >= 0 { // trailing plain retains are dropped
		w.b = w.b[:w.lastPlain]
	}
	return append(w.b, ']')
}

// addEmbed writes an embed or an embedded type as one insert op.
func (w *deltaWriter) addEmbed(d *Doc, it *item) {
	w.lastPlain = -1
	w.open()
	w.b = append(w.b, `{"insert":`...)
	if it.ref == refEmbed {
		w.b = appendRawJSON(w.b, it.ext.str, modeJSON)
	} else {
		w.b = d.appendType(w.b, it.ext.typ, TypeUnknown, modeJSON, 1)
	}
	if len(w.cur) > 0 {
		w.b = appendAttrs(w.b, w.cur)
	}
	w.b = append(w.b, '}')
	w.action = 0
}
