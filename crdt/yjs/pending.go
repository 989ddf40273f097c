package yjs

import (
	"slices"
)

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
	d.planSplit = len(p.plan)
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
		r.info = s.info | 0x80 // the key, if known, stays (sliceStruct keeps parentSub)
		r.parentKind, r.parentName = parentNone, ""
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
