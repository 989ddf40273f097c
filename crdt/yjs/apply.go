package yjs

import (
	"slices"
)

// ApplyResult says what an Apply did.
type ApplyResult struct {
	// Changed is true when the document's state vector or delete set moved
	// (something new was integrated or deleted).
	Changed bool
	// Integrated counts the structs integrated, Pending the structs still
	// waiting for missing dependencies afterwards (PendingDeletes likewise
	// for delete ranges). Released counts the structs integrated from the
	// pending buffer (of earlier updates, or of this one once the buffer's
	// structs made them ready): a server must send those to its other
	// replicas too, which never got the update they came in.
	Integrated, Pending, PendingDeletes, Released int
	// Roots names the root types whose content changed, in the order they
	// were first created in the document. The slice may be shared: do not modify it.
	Roots []string
	// Cleanup, when not nil, is an update the document made itself after
	// the applied one: the deletion of format marks the applied update made
	// redundant (Yjs's cleanupYTextAfterTransaction, which a Yjs server runs
	// and broadcasts). Fan it out and store it like any update.
	Cleanup []byte
	// Changes holds the change to each observed Y.Text root (Doc.Observe)
	// the transaction changed.
	Changes []TextChange
}

// planned is one struct the planner found ready, with the offset at which
// it starts integrating (the part below the client's state is known).
type planned struct {
	s   *wireStruct
	off int
}

// Apply decodes a Yjs update (v1) and integrates it. A malformed update, or
// one that would exceed a limit, returns an error and leaves the document
// unchanged. Structs whose dependencies are missing wait in the pending
// buffer and integrate when a later update brings the dependencies.
func (d *Doc) Apply(update []byte) (ApplyResult, error) {
	u := &d.scratch
	defer u.release()
	if err := decodeUpdateV1Into(u, update, &d.lim, d.roots); err != nil {
		return ApplyResult{}, err
	}
	return d.applyUpdate(u)
}

func (d *Doc) applyUpdate(u *update) (ApplyResult, error) {
	var res ApplyResult
	// Fast path: no pending structs, one client whose structs all fit on top of the state.
	if d.pendingN == 0 && d.pendingDN == 0 && len(u.clients) == 0 {
		if err := d.checkDeletes(u, nil); err != nil {
			return res, err
		}
		d.beginTx().remote = true
		d.applyDeletes(u.ds.clients, &res)
		return d.finish(res), nil
	}
	if d.pendingN == 0 && d.pendingDN == 0 && len(u.clients) == 1 && d.simpleReady(&u.clients[0]) {
		cs := &u.clients[0]
		nc := 1
		if d.clients[cs.client] != nil {
			nc = 0
		}
		if err := d.checkGrowth(cs.structs, nc); err != nil {
			return res, err
		}
		if err := d.checkDeletes(u, nil); err != nil {
			return res, err
		}
		d.beginTx().remote = true
		st := d.state(cs.client)
		for i := range cs.structs {
			s := &cs.structs[i]
			if s.ref == refSkip {
				continue
			}
			end := s.id.Clock + uint64(s.length)
			if end <= st {
				continue
			}
			d.integrate(s, int(st-s.id.Clock))
			st = end
			res.Integrated++
		}
		d.applyDeletes(u.ds.clients, &res)
		return d.finish(res), nil
	}
	plan, rest, restN, err := d.plan(u)
	if err != nil {
		return res, err
	}
	if err := d.checkDeletes(u, plan); err != nil {
		return res, err
	}
	d.beginTx().remote = true
	// Yjs's order (readUpdateV2): the update's structs, its delete set,
	// the pending delete set, then the retried pending structs and the
	// pending delete set once more. The order decides the order of clients
	// in the transaction's delete set, which the formatting cleanup follows.
	split := d.planSplit
	for _, p := range plan[:split] {
		d.integrate(p.s, p.off)
		res.Integrated++
	}
	d.pending, d.pendingN, d.pendingMissing = rest, restN, d.planMissing
	old := d.takePendingDeletes()
	d.applyDeletes(u.ds.clients, &res)
	d.applyDeletes(old, &res)
	if split < len(plan) {
		for _, p := range plan[split:] {
			d.integrate(p.s, p.off)
			res.Integrated++
		}
		res.Released = len(plan) - split
		d.applyDeletes(d.takePendingDeletes(), &res)
	}
	return d.finish(res), nil
}

// takePendingDeletes empties the pending delete set and returns it as Yjs
// stores it (an encoded delete set: clients highest first).
func (d *Doc) takePendingDeletes() []dsClient {
	var ds deleteSet
	for c, r := range d.pendingDS {
		ds.clients = append(ds.clients, dsClient{c, r})
	}
	ds.normalize()
	d.pendingDS, d.pendingDN = map[uint64][]dsRange{}, 0
	return ds.clients
}

// simpleReady reports whether every item of cs starts at or below the
// client's state and refers only to IDs the document has (or earlier ones of cs).
func (d *Doc) simpleReady(cs *clientStructs) bool {
	st := d.state(cs.client)
	for i := range cs.structs {
		s := &cs.structs[i]
		if s.ref == refSkip {
			return false
		}
		if s.id.Clock > st {
			return false
		}
		if s.isItem() {
			if s.hasOrigin() && s.origin.Client != cs.client && !d.has(s.origin) {
				return false
			}
			if s.hasRightOrigin() && s.rightOrigin.Client != cs.client && !d.has(s.rightOrigin) {
				return false
			}
			if s.parentKind == parentItem && s.parentID.Client != cs.client && !d.has(s.parentID) {
				return false
			}
		}
		if e := s.id.Clock + uint64(s.length); e > st {
			st = e
		}
	}
	return true
}

// checkGrowth bounds the document size and client count before anything changes.
func (d *Doc) checkGrowth(structs []wireStruct, newClients int) error {
	n := 0
	for i := range structs {
		n += structs[i].content.sizeBytes() + 96
	}
	if d.docBytes+n > d.lim.MaxDocBytes {
		return ErrTooLarge
	}
	if len(d.clients)+newClients > d.lim.MaxClients {
		return ErrTooLarge
	}
	return nil
}

// checkDeletes bounds the pending delete ranges the update would leave.
func (d *Doc) checkDeletes(u *update, plan []planned) error {
	after := func(c uint64) uint64 {
		st := d.state(c)
		for _, p := range plan {
			if p.s.id.Client == c {
				if e := p.s.id.Clock + uint64(p.s.length); e > st {
					st = e
				}
			}
		}
		return st
	}
	n := 0
	for _, c := range u.ds.clients {
		st := uint64(0)
		if len(plan) == 0 {
			st = d.state(c.client)
		} else {
			st = after(c.client)
		}
		for _, r := range c.ranges {
			if r.len > 0 && r.clock+r.len > st {
				n++
			}
		}
	}
	if d.pendingDN+n > d.lim.MaxPendingDeletes {
		return ErrPendingFull
	}
	return nil
}

// applyDeletes deletes the ranges below each client's state and keeps the
// rest pending (readAndApplyDeleteSet).
func (d *Doc) applyDeletes(cs []dsClient, res *ApplyResult) {
	for _, c := range cs {
		st := d.state(c.client)
		l := d.clients[c.client]
		for _, r := range c.ranges {
			if r.len == 0 {
				continue
			}
			end := r.clock + r.len
			if r.clock >= st {
				d.addPendingDelete(c.client, r)
				continue
			}
			if st < end {
				d.addPendingDelete(c.client, dsRange{st, end - st})
				end = st
			}
			p := l.find(r.clock)
			it := l.at(p)
			if !it.deleted() && it.id.Clock < r.clock {
				nr := d.splitItem(it, int(r.clock-it.id.Clock))
				_, p = l.insertAfter(p, nr)
			}
			for ok := true; ok; p, ok = l.next(p) {
				it = l.at(p)
				if it.id.Clock >= end {
					break
				}
				if !it.deleted() {
					if end < it.end() {
						p, _ = l.insertAfter(p, d.splitItem(it, int(end-it.id.Clock)))
					}
					d.deleteItem(it)
				}
			}
		}
	}
}

func (d *Doc) addPendingDelete(client uint64, r dsRange) {
	d.pendingDS[client] = append(d.pendingDS[client], r)
	d.pendingDN++
}

// finish ends the transaction: garbage-collect deleted content, merge
// neighbouring structs, and fill in the result.
func (d *Doc) finish(res ApplyResult) ApplyResult {
	tx := d.tx
	order := delClientOrder(tx.deleted)
	tx.deleted = normalizeDels(tx.deleted)
	if len(d.observed) > 0 && len(tx.changed) > 0 {
		res.Changes = d.observeChanges(tx)
	}
	if tx.remote {
		if n := len(tx.cleanup); d.formattingCleanup(order) && len(tx.cleanup) > n {
			tx.deleted = normalizeDels(tx.deleted)
			u := &update{}
			for _, x := range tx.cleanup {
				u.ds.clients = append(u.ds.clients, dsClient{x.client, []dsRange{x.r}})
			}
			u.ds.normalize()
			res.Cleanup = u.encodeV1()
		}
	}
	d.gcDeleted()
	// merge: deleted ranges, new structs, split halves
	for _, x := range tx.deleted {
		d.mergeRange(x.client, x.r.clock, x.r.clock+x.r.len)
	}
	for _, b := range tx.before {
		d.mergeRange(b.client, b.before, d.state(b.client))
	}
	for i := len(tx.merge) - 1; i >= 0; i-- {
		it := tx.merge[i]
		d.mergeRange(it.id.Client, it.id.Clock, it.id.Clock+1)
	}
	res.Changed = len(tx.before) > 0 || len(tx.deleted) > 0
	if len(tx.changed) > 0 {
		var buf [8]*ytype
		roots := buf[:0]
		for _, t := range tx.changed {
			for t.item != nil && t.item.parent != nil {
				t = t.item.parent
			}
			if !slices.Contains(roots, t) {
				roots = append(roots, t)
			}
		}
		if len(roots) == 1 && roots[0].item == nil {
			if roots[0].self == nil {
				roots[0].self = []string{roots[0].name}
			}
			res.Roots = roots[0].self
		} else {
			for _, name := range d.rootOrder {
				if slices.Contains(roots, d.roots[name]) {
					res.Roots = append(res.Roots, name)
				}
			}
		}
	}
	res.Pending = d.pendingN
	res.PendingDeletes = d.pendingDN
	if d.pendingDN > 0 {
		for c, r := range d.pendingDS {
			d.pendingDS[c] = mergeRanges(r)
		}
		d.pendingDN = 0
		for _, r := range d.pendingDS {
			d.pendingDN += len(r)
		}
		res.PendingDeletes = d.pendingDN
	}
	d.tx = nil
	return res
}

// delClientOrder lists the clients of deleted ranges in the order they were
// first deleted (the insertion order of Yjs's DeleteSet map).
func delClientOrder(dels []txDel) []uint64 {
	var out []uint64
	for _, x := range dels {
		if !slices.Contains(out, x.client) {
			out = append(out, x.client)
		}
	}
	return out
}

// normalizeDels sorts deleted ID ranges by client and clock and merges them.
func normalizeDels(dels []txDel) []txDel {
	if len(dels) < 2 {
		return dels
	}
	slices.SortFunc(dels, func(a, b txDel) int {
		switch {
		case a.client != b.client:
			if a.client < b.client {
				return -1
			}
			return 1
		case a.r.clock < b.r.clock:
			return -1
		case a.r.clock > b.r.clock:
			return 1
		}
		return 0
	})
	out := dels[:1]
	for _, x := range dels[1:] {
		l := &out[len(out)-1]
		if l.client == x.client && l.r.clock+l.r.len >= x.r.clock {
			if e := x.r.clock + x.r.len; e > l.r.clock+l.r.len {
				l.r.len = e - l.r.clock
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// gcDeleted replaces the content of items deleted in this transaction with
// ContentDeleted, and the children of deleted types with GC structs (tryGcDeleteSet).
func (d *Doc) gcDeleted() {
	for _, x := range d.tx.deleted {
		l, r := d.clients[x.client], x.r
		{
			end := r.clock + r.len
			for p, ok := l.find(r.clock), true; ok; p, ok = l.next(p) {
				it := l.at(p)
				if it.id.Clock >= end {
					break
				}
				if !it.isGC() && it.deleted() && it.flags&fKeep == 0 {
					d.gcItem(it, false)
				}
			}
		}
	}
}

func (d *Doc) gcItem(it *item, parentGCd bool) {
	type job struct {
		it        *item
		parentGCd bool
	}
	stack := []job{{it, parentGCd}} // explicit: nesting depth is not bounded
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		it := j.it
		if it.ref == refType {
			t := it.ext.typ
			for c := t.start; c != nil; c = c.right {
				stack = append(stack, job{c, true})
			}
			t.start, t.posItem = nil, nil
			for _, c := range t.m {
				for ; c != nil; c = c.left {
					stack = append(stack, job{c, true})
				}
			}
			t.m = nil
		}
		d.docBytes -= it.content.sizeBytes()
		if j.parentGCd {
			l := d.clients[it.id.Client]
			p := l.find(it.id.Clock)
			l.blocks[p.b][p.i] = &item{id: it.id, length: it.length, flags: fGC | fDeleted}
			continue
		}
		it.content = content{ref: refDeleted}
	}
}

// mergeRange merges the structs of client c around [from, to) with their
// left neighbours where Yjs would (tryToMergeWithLefts).
func (d *Doc) mergeRange(c, from, to uint64) {
	l := d.clients[c]
	if l == nil || l.count < 2 || from >= l.state {
		return
	}
	last := to - 1
	if last >= l.state {
		last = l.state - 1
	}
	p := l.find(last)
	if n, ok := l.next(p); ok {
		p = n
	}
	for {
		it := l.at(p)
		if it.id.Clock < from {
			return
		}
		q, ok := l.prev(p)
		if !ok {
			return
		}
		if tryMerge(l.at(q), it) {
			l.remove(p)
		}
		p = q
	}
}

// tryMerge appends right to left when Yjs's mergeWith allows it.
func tryMerge(left, right *item) bool {
	if left.deleted() != right.deleted() || left.isGC() != right.isGC() {
		return false
	}
	if left.isGC() {
		left.length += right.length
		return true
	}
	if right.flags&fOrigin == 0 || right.origin != left.lastID() || left.right != right ||
		!sameOrigin(left.flags&fRightOrigin != 0, left.rightOrigin, right.flags&fRightOrigin != 0, right.rightOrigin) ||
		left.id.Client != right.id.Client || left.end() != right.id.Clock ||
		left.ref != right.ref || !left.content.mergeWith(&right.content) {
		return false
	}
	if right.flags&fKeep != 0 {
		left.flags |= fKeep
	}
	if p := right.parent; p != nil {
		if p.posItem == right {
			p.posItem = left
			if left.visible() && left.countable() {
				p.posIndex -= left.length
			}
		}
		if p.pendingPos == right {
			p.pendingPos = left
			if left.visible() && left.countable() {
				p.pendingIndex -= left.length
			}
		}
	}
	left.right = right.right
	if left.right != nil {
		left.right.left = left
	}
	left.length += right.length
	if right.hasSub() && right.parent != nil && right.parent.m[right.parentSub] == right {
		right.parent.m[right.parentSub] = left
	}
	return true
}

// ApplyAdmitted is Apply with a check between decoding and integrating:
// admit gets the clients the update brings new structs of (clocks past the
// document's state for that client), in the update's order, and a non-nil
// error from it refuses the update whole, the document unchanged. A server
// uses it to bind client ids to their authors.
func (d *Doc) ApplyAdmitted(update []byte, admit func(clients []uint64) error) (ApplyResult, error) {
	u := &d.scratch
	defer u.release()
	if err := decodeUpdateV1Into(u, update, &d.lim, d.roots); err != nil {
		return ApplyResult{}, err
	}
	var fresh []uint64
	for i := range u.clients {
		cs := &u.clients[i]
		if len(cs.structs) == 0 {
			continue
		}
		last := cs.structs[len(cs.structs)-1]
		var state uint64
		if l := d.clients[cs.client]; l != nil {
			state = l.state
		}
		if last.id.Clock+uint64(last.length) > state {
			fresh = append(fresh, cs.client)
		}
	}
	if err := admit(fresh); err != nil {
		return ApplyResult{}, err
	}
	return d.applyUpdate(u)
}
