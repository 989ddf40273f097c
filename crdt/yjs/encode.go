package yjs

import (
	"math"
	"slices"
)

// StateVector returns the encoded state vector (client → next clock, in
// descending client order, as Yjs's encodeStateVector writes it).
func (d *Doc) StateVector() []byte {
	e := &encoder{}
	cs := d.sortedClients()
	e.varUint(uint64(len(cs)))
	for _, c := range cs {
		e.varUint(c)
		e.varUint(d.clients[c].state)
	}
	return e.b
}

// StateSum returns the sum of the state vector's clocks (every struct
// integrated, counted in Yjs's units) without encoding it: a version
// number that grows with every insert.
func (d *Doc) StateSum() uint64 {
	var n uint64
	for _, l := range d.clients {
		n += l.state
	}
	return n
}

// sortedClients lists the clients with structs, highest id first.
func (d *Doc) sortedClients() []uint64 {
	cs := make([]uint64, 0, len(d.clients))
	for c, l := range d.clients {
		if l.state > 0 {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b uint64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	return cs
}

// DecodeStateVector reads an encoded state vector (a later entry for the
// same client wins, as in Yjs).
func DecodeStateVector(b []byte, lim Limits) (map[uint64]uint64, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxUpdateBytes {
		return nil, &DecodeError{Field: "state vector", Err: ErrTooLarge}
	}
	d := &decoder{b: b, lim: &lim}
	n := d.length("state vector entries", 2, lim.MaxClients)
	sv := make(map[uint64]uint64, n)
	for i := 0; i < n && d.err == nil; i++ {
		c := d.varUint("client")
		k := d.varUint("clock")
		sv[c] = k
	}
	if d.err != nil {
		return nil, d.err
	}
	return sv, nil
}

// EncodeState returns the whole document as one v1 update (Yjs's
// encodeStateAsUpdate), pending structs and deletes included.
func (d *Doc) EncodeState() []byte {
	return d.encodeDiff(nil)
}

// Diff returns what a peer at state vector sv is missing, as a v1 update
// (encodeStateAsUpdate(doc, sv)). The delete set is always complete.
func (d *Doc) Diff(sv []byte) ([]byte, error) {
	m, err := DecodeStateVector(sv, d.lim)
	if err != nil {
		return nil, err
	}
	return d.encodeDiff(m), nil
}

func (d *Doc) encodeDiff(sv map[uint64]uint64) []byte {
	if len(d.pending) > 0 {
		return d.encodeWithPending(sv)
	}
	e := &encoder{b: make([]byte, 0, 64)}
	type plan struct {
		client uint64
		from   uint64
	}
	var clients []plan
	seen := map[uint64]bool{}
	add := func(c uint64, upTo uint64) {
		if seen[c] {
			return
		}
		from := sv[c]
		if upTo > from {
			seen[c] = true
			clients = append(clients, plan{c, from})
		}
	}
	for c, l := range d.clients {
		add(c, l.state)
	}
	for c, q := range d.pending {
		if len(q) > 0 {
			add(c, q[len(q)-1].id.Clock+uint64(q[len(q)-1].length))
			for _, s := range q {
				add(c, s.id.Clock+uint64(s.length))
			}
		}
	}
	slices.SortFunc(clients, func(a, b plan) int {
		switch {
		case a.client > b.client:
			return -1
		case a.client < b.client:
			return 1
		}
		return 0
	})
	e.varUint(uint64(len(clients)))
	for _, p := range clients {
		d.writeClient(e, p.client, p.from)
	}
	ds := d.deleteSet()
	if len(d.pendingDS) > 0 {
		for c, r := range d.pendingDS {
			ds.clients = append(ds.clients, dsClient{c, slices.Clone(r)})
		}
		ds.normalize()
	}
	ds.encodeV1(e)
	return e.b
}

// writeClient writes the structs of one client from clock from: the
// integrated ones, then pending ones (Skip structs fill the gaps).
func (d *Doc) writeClient(e *encoder, client, from uint64) {
	l := d.clients[client]
	var items []*item
	var firstOff int
	clock := from
	if l != nil && l.state > from {
		p := l.find(from)
		first := l.at(p)
		firstOff = int(from - first.id.Clock)
		clock = l.state
		for ok := true; ok; p, ok = l.next(p) {
			items = append(items, l.at(p))
		}
	}
	// pending structs after clock, deduplicated
	type pw struct {
		s   *wireStruct
		off int
		gap uint64
	}
	var pend []pw
	start := from
	if len(items) == 0 {
		start = 0
	}
	cur := clock
	if len(items) == 0 {
		cur = from
	}
	q := d.pending[client]
	firstPending := true
	for i := range q {
		s := &q[i]
		end := s.id.Clock + uint64(s.length)
		if s.ref == refSkip || end <= cur {
			continue
		}
		if len(items) == 0 && firstPending {
			if s.id.Clock > cur {
				cur = s.id.Clock
			}
			start = cur
			firstPending = false
		}
		var gap uint64
		off := 0
		if s.id.Clock > cur {
			gap = s.id.Clock - cur
		} else {
			off = int(cur - s.id.Clock)
		}
		pend = append(pend, pw{s, off, gap})
		cur = end
	}
	n := len(items)
	for _, p := range pend {
		n++
		if p.gap > 0 {
			n++
		}
	}
	e.varUint(uint64(n))
	e.varUint(client)
	if len(items) > 0 {
		e.varUint(from)
	} else {
		e.varUint(start)
	}
	for i, it := range items {
		off := 0
		if i == 0 {
			off = firstOff
		}
		d.writeItem(e, it, off)
	}
	for _, p := range pend {
		if p.gap > 0 {
			e.uint8(refSkip)
			e.varUint(p.gap)
		}
		writeWireStructV1(e, p.s, p.off)
	}
}

// writeItem writes a stored struct from offset off (Item.write / GC.write).
func (d *Doc) writeItem(e *encoder, it *item, off int) {
	if it.isGC() {
		e.uint8(refGC)
		e.varUint(uint64(it.length - off))
		return
	}
	info := it.ref
	origin := it.origin
	hasOrigin := it.flags&fOrigin != 0
	if off > 0 {
		hasOrigin = true
		origin = ID{it.id.Client, it.id.Clock + uint64(off) - 1}
	}
	if hasOrigin {
		info |= 0x80
	}
	if it.flags&fRightOrigin != 0 {
		info |= 0x40
	}
	if it.hasSub() {
		info |= 0x20
	}
	e.uint8(info)
	if hasOrigin {
		e.varUint(origin.Client)
		e.varUint(origin.Clock)
	}
	if it.flags&fRightOrigin != 0 {
		e.varUint(it.rightOrigin.Client)
		e.varUint(it.rightOrigin.Clock)
	}
	if info&0xC0 == 0 {
		if it.parent.item == nil {
			e.varUint(1)
			e.varString(it.parent.name)
		} else {
			e.varUint(0)
			e.varUint(it.parent.item.id.Client)
			e.varUint(it.parent.item.id.Clock)
		}
		if it.hasSub() {
			e.varString(it.parentSub)
		}
	}
	it.content.write(e, off, it.length)
}

// deleteSet collects the deleted ranges of the store (createDeleteSetFromStructStore).
func (d *Doc) deleteSet() deleteSet {
	var ds deleteSet
	for _, c := range d.sortedClients() {
		l := d.clients[c]
		var rs []dsRange
		for _, b := range l.blocks {
			for _, it := range b {
				if !it.deleted() {
					continue
				}
				if k := len(rs); k > 0 && rs[k-1].clock+rs[k-1].len == it.id.Clock {
					rs[k-1].len += uint64(it.length)
				} else {
					rs = append(rs, dsRange{it.id.Clock, uint64(it.length)})
				}
			}
		}
		if len(rs) > 0 {
			ds.clients = append(ds.clients, dsClient{c, rs})
		}
	}
	return ds
}

// encodeWithPending is encodeStateAsUpdate of a document with pending
// structs, as Yjs makes it: mergeUpdates of the store's update, the pending
// delete set and diffUpdate(pending structs, sv).
func (d *Doc) encodeWithPending(sv map[uint64]uint64) []byte {
	saved := d.pending
	d.pending = nil
	base := d.encodeDiff(sv)
	d.pending = saved
	lim := Limits{MaxUpdateBytes: math.MaxInt, MaxStructs: math.MaxInt, MaxClients: math.MaxInt,
		MaxCollection: math.MaxInt, MaxStringBytes: math.MaxInt, MaxDepth: math.MaxInt}
	u, err := decodeUpdateV1(base, &lim)
	if err != nil {
		panic("yjs: own state does not decode: " + err.Error()) // an encoder bug, never input
	}
	var state []wireStruct
	for _, cs := range u.clients {
		state = append(state, cs.structs...)
	}
	u.clients = groupStream(mergeStreams(state, diffStream(streamOf(d.pending), sv)))
	u.normalizeInfo()
	return u.encodeV1()
}

// diffStream is Yjs's diffUpdate over a struct stream: what a peer at sv lacks.
func diffStream(s []wireStruct, sv map[uint64]uint64) []wireStruct {
	var out []wireStruct
	for i := 0; i < len(s); {
		cur := s[i]
		c := cur.id.Client
		svc := sv[c]
		if cur.ref == refSkip {
			i++
			continue
		}
		if cur.id.Clock+uint64(cur.length) > svc {
			if svc > cur.id.Clock {
				cur = cutStruct(cur, int(svc-cur.id.Clock))
			}
			out = append(out, cur)
			for i++; i < len(s) && s[i].id.Client == c; i++ {
				out = append(out, s[i])
			}
			continue
		}
		for i < len(s) && s[i].id.Client == c && s[i].id.Clock+uint64(s[i].length) <= svc {
			i++
		}
	}
	return out
}
