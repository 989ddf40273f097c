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
	// for delete ranges).
	Integrated, Pending, PendingDeletes int
	// Roots names the root types whose content changed, in the order they
	// were first created in the document. The slice may be shared: do not modify it.
	Roots []string
	// Cleanup, when not nil, is an update the document made itself after
	// the applied one: the deletion of format marks the applied update made
	// redundant (Yjs's cleanupYTextAfterTransaction, which a Yjs server runs
	// and broadcasts). Fan it out and store it like any update.
	Cleanup []byte
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
	for _, p := range plan {
		d.integrate(p.s, p.off)
		res.Integrated++
	}
	d.pending, d.pendingN, d.pendingMissing = rest, restN, d.planMissing
	// Deletes: pending ones first (they may now apply), then the update's.
	pds := d.pendingDS
	d.pendingDS, d.pendingDN = map[uint64][]dsRange{}, 0
	var old []dsClient
	for c, r := range pds {
		old = append(old, dsClient{c, r})
	}
	d.applyDeletes(old, &res)
	d.applyDeletes(u.ds.clients, &res)
	return d.finish(res), nil
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

// plan decides, without changing the document, which structs of u and of
// the pending buffer integrate and in what order; the rest stays pending.
func (d *Doc) plan(u *update) ([]planned, map[uint64][]wireStruct, int, error) {
	p := &planner{d: d, state: map[uint64]uint64{}}
	// Phase 1: the update's own structs (Yjs's integrateStructs). A fresh
	// array per client: cs.structs is the decode scratch, reused by the next Apply.
	refs := make(map[uint64][]wireStruct, len(u.clients))
	for i := range u.clients {
		cs := &u.clients[i]
		// a later block of the same client replaces an earlier one, as in
		// Yjs's Map. (The decode scratch is not reused before this Apply
		// ends, and what stays pending is copied out of it.)
		refs[cs.client] = cs.structs
	}
	rest, missing := p.integrateStructs(refs)
	// Phase 2 (readUpdateV2): what the update left joins the pending
	// structs, the older pending first (mergeUpdates); the merge is retried
	// only when a clock recorded as missing has arrived.
	if len(d.pending) > 0 {
		retry := false
		for c, k := range d.pendingMissing {
			if k < p.st(c) {
				retry = true
			}
		}
		merged := d.pending
		if len(rest) > 0 {
			merged = byClient(mergeStreams(streamOf(d.pending), streamOf(rest)))
		}
		for c, k := range d.pendingMissing {
			if m, ok := missing[c]; !ok || k < m {
				missing[c] = k
			}
		}
		rest = merged
		if retry {
			for c, q := range merged {
				merged[c] = append([]wireStruct(nil), q...)
			}
			rest, missing = p.integrateStructs(merged)
		}
	}
	n := 0
	for c, q := range rest {
		// what the document has by now and nothing blocks goes (Yjs would
		// skip it on its next retry)
		q = slices.DeleteFunc(q, func(s wireStruct) bool {
			if s.ref == refSkip {
				return false
			}
			_, blocked := missingDep(&s, p.has)
			return !blocked && s.id.Clock+uint64(s.length) <= p.st(c)
		})
		if len(q) == 0 {
			delete(rest, c)
			continue
		}
		rest[c] = slices.Clip(q)
		n += len(q)
	}
	if n > d.lim.MaxPendingStructs {
		return nil, nil, 0, ErrPendingFull
	}
	newClients := 0
	for c := range p.state {
		if d.clients[c] == nil && p.state[c] > 0 {
			newClients++
		}
	}
	grow := 0
	for _, x := range p.plan {
		grow += x.s.content.sizeBytes() + 96
	}
	if d.docBytes+grow > d.lim.MaxDocBytes || len(d.clients)+newClients > d.lim.MaxClients {
		return nil, nil, 0, ErrTooLarge
	}
	d.planMissing = missing
	return p.plan, rest, n, nil
}

// release drops the scratch's references into the caller's bytes (decoded
// strings are views), keeping the slices for the next decode.
func (u *update) release() {
	for i := range u.clients {
		clear(u.clients[i].structs)
	}
}

// ownStructs copies structs out of a decoded update, string contents
// included (they are views into the caller's bytes), to keep them pending.
func ownStructs(q []wireStruct) []wireStruct {
	out := append([]wireStruct(nil), q...)
	for i := range out {
		if out[i].ref == refString {
			out[i].content.buf = append([]byte(nil), out[i].content.buf...)
		}
	}
	return out
}

func sortByClock(q []wireStruct) []wireStruct {
	slices.SortStableFunc(q, func(a, b wireStruct) int {
		switch {
		case a.id.Clock < b.id.Clock:
			return -1
		case a.id.Clock > b.id.Clock:
			return 1
		}
		return 0
	})
	return q
}

// planner simulates integration on the state vector alone.
type planner struct {
	d     *Doc
	state map[uint64]uint64 // simulated client states
	plan  []planned
}

func (p *planner) st(c uint64) uint64 {
	if v, ok := p.state[c]; ok {
		return v
	}
	v := p.d.state(c)
	p.state[c] = v
	return v
}

func (p *planner) has(id ID) bool { return id.Clock < p.st(id.Client) }

// integrateStructs follows Yjs's integrateStructs step by step (on the
// simulated state): highest client first; a struct whose dependency is
// missing sends the walk to that client's structs, and when those are used
// up the whole chain waiting on the stack goes to the rest, with the clock
// Yjs records as missing. The order matters: it decides what stays pending
// and when Yjs retries it.
func (p *planner) integrateStructs(refs map[uint64][]wireStruct) (map[uint64][]wireStruct, map[uint64]uint64) {
	type target struct {
		refs []wireStruct
		i    int
	}
	targets := make(map[uint64]*target, len(refs))
	ids := make([]uint64, 0, len(refs))
	for c, r := range refs {
		targets[c] = &target{refs: r}
		ids = append(ids, c)
	}
	slices.Sort(ids)
	rest := map[uint64][]wireStruct{}
	missing := map[uint64]uint64{}
	addMissing := func(c, k uint64) {
		if m, ok := missing[c]; !ok || k < m {
			missing[c] = k
		}
	}
	next := func() *target {
		for len(ids) > 0 {
			if t := targets[ids[len(ids)-1]]; t != nil && t.i < len(t.refs) {
				return t
			}
			ids = ids[:len(ids)-1]
		}
		return nil
	}
	cur := next()
	if cur == nil {
		return rest, missing
	}
	var stack []*wireStruct
	addStackToRest := func() {
		for _, s := range stack {
			c := s.id.Client
			if t := targets[c]; t != nil {
				t.i--
				rest[c] = ownStructs(t.refs[t.i:])
				delete(targets, c)
				t.refs, t.i = nil, 0
			} else {
				rest[c] = ownStructs([]wireStruct{*s})
			}
			ids = slices.DeleteFunc(ids, func(x uint64) bool { return x == c })
		}
		stack = stack[:0]
	}
	head := &cur.refs[cur.i]
	cur.i++
	for {
		if head.ref != refSkip {
			c := head.id.Client
			local := p.st(c)
			if head.id.Clock > local {
				stack = append(stack, head)
				addMissing(c, head.id.Clock-1)
				addStackToRest()
			} else if m, blocked := missingDep(head, p.has); blocked {
				stack = append(stack, head)
				if t := targets[m.Client]; t == nil || t.i == len(t.refs) {
					addMissing(m.Client, p.st(m.Client))
					addStackToRest()
				} else {
					head = &t.refs[t.i]
					t.i++
					continue
				}
			} else if off := local - head.id.Clock; off < uint64(head.length) {
				p.plan = append(p.plan, planned{head, int(off)})
				p.state[c] = head.id.Clock + uint64(head.length)
			}
		}
		if n := len(stack); n > 0 {
			head = stack[n-1]
			stack = stack[:n-1]
		} else if cur != nil && cur.i < len(cur.refs) {
			head = &cur.refs[cur.i]
			cur.i++
		} else if cur = next(); cur == nil {
			break
		} else {
			head = &cur.refs[cur.i]
			cur.i++
		}
	}
	return rest, missing
}

// cutStruct drops the first diff clocks of s (Yjs's sliceStruct).
func cutStruct(s wireStruct, diff int) wireStruct {
	r := s
	r.id.Clock += uint64(diff)
	r.length -= diff
	if s.isItem() {
		c := s.content
		if c.ext != nil && (c.ref == refJSON || c.ref == refAny) {
			ext := *c.ext
			c.ext = &ext
		}
		r.content = c.splice(diff, s.length)
		r.origin = ID{s.id.Client, r.id.Clock - 1}
		r.info = s.info&^0x20 | 0x80
		r.parentKind, r.parentName, r.parentSub = parentNone, "", ""
	}
	return r
}

// missingDep returns an ID s refers to that the (simulated) state lacks.
func missingDep(s *wireStruct, has func(ID) bool) (ID, bool) {
	if !s.isItem() {
		return ID{}, false
	}
	switch {
	case s.hasOrigin() && !has(s.origin):
		return s.origin, true
	case s.hasRightOrigin() && !has(s.rightOrigin):
		return s.rightOrigin, true
	case s.parentKind == parentItem && !has(s.parentID):
		return s.parentID, true
	}
	return ID{}, false
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
	tx.deleted = normalizeDels(tx.deleted)
	if tx.remote {
		if n := len(tx.cleanup); d.formattingCleanup() && len(tx.cleanup) > n {
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

// formattingCleanup is what a Yjs document does after a remote transaction
// that touched a Y.Text / Y.XmlText with formatting
// (cleanupYTextAfterTransaction): format marks made redundant are deleted,
// in a transaction of the document's own whose update Yjs broadcasts. It
// reports whether it ran.
func (d *Doc) formattingCleanup() bool {
	tx := d.tx
	run := false
	for _, t := range tx.changed {
		if (t.kind == TypeText || t.kind == TypeXmlText) && t.hasFormatting && (t.item == nil || !t.item.deleted()) {
			run = true
		}
	}
	if !run {
		return false
	}
	var need []*ytype
	addNeed := func(t *ytype) {
		if !slices.Contains(need, t) {
			need = append(need, t)
		}
	}
	for _, b := range tx.before {
		l := d.clients[b.client]
		if l == nil || b.before >= l.state {
			continue
		}
		for p, ok := l.find(b.before), true; ok; p, ok = l.next(p) {
			if it := l.at(p); !it.isGC() && !it.deleted() && it.ref == refFormat {
				addNeed(it.parent)
			}
		}
	}
	tx.inCleanup = true
	dels := append([]txDel(nil), tx.deleted...)
	for _, x := range dels {
		l := d.clients[x.client]
		end := x.r.clock + x.r.len
		for p, ok := l.find(x.r.clock), true; ok; p, ok = l.next(p) {
			it := l.at(p)
			if it.id.Clock >= end {
				break
			}
			if it.isGC() || it.parent == nil || !it.parent.hasFormatting || slices.Contains(need, it.parent) {
				continue
			}
			if it.ref == refFormat {
				addNeed(it.parent)
			} else {
				d.cleanupContextlessGap(it)
			}
		}
	}
	for _, t := range need {
		d.cleanupTextFormatting(t)
	}
	tx.inCleanup = false
	return true
}

// cleanupContextlessGap deletes repeated format marks around a deleted
// item (cleanupContextlessFormattingGap).
func (d *Doc) cleanupContextlessGap(it *item) {
	for it != nil && it.right != nil && (it.right.deleted() || !it.right.countable()) {
		it = it.right
	}
	var seen []string
	for it != nil && (it.deleted() || !it.countable()) {
		if !it.deleted() && it.ref == refFormat {
			if slices.Contains(seen, it.ext.str) {
				d.deleteItem(it)
			} else {
				seen = append(seen, it.ext.str)
			}
		}
		it = it.left
	}
}

// cleanupTextFormatting runs cleanupFormattingGap over every gap of t (cleanupYTextFormatting).
func (d *Doc) cleanupTextFormatting(t *ytype) {
	start, end := t.start, t.start
	var startAttrs, cur []attr
	for ; end != nil; end = end.right {
		if end.deleted() {
			continue
		}
		if end.ref == refFormat {
			cur = setAttrFrom(cur, end)
			continue
		}
		cur = d.cleanupFormattingGap(start, end, startAttrs, cur)
		startAttrs = append([]attr(nil), cur...)
		start = end
	}
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
	if it.ref == refType {
		t := it.ext.typ
		for c := t.start; c != nil; c = c.right {
			d.gcItem(c, true)
		}
		t.start, t.posItem = nil, nil
		for _, c := range t.m {
			for ; c != nil; c = c.left {
				d.gcItem(c, true)
			}
		}
		t.m = nil
	}
	d.docBytes -= it.content.sizeBytes()
	if parentGCd {
		l := d.clients[it.id.Client]
		p := l.find(it.id.Clock)
		l.blocks[p.b][p.i] = &item{id: it.id, length: it.length, flags: fGC | fDeleted}
		return
	}
	it.content = content{ref: refDeleted}
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
