package yjs

// mergeStreams follows Yjs's mergeUpdatesV2 over the structs of two updates
// (each listed client by client, highest client first, clocks ascending, as
// Yjs writes them). Yjs merges its pending structs with what a new update
// left this way; which delivery of a clock range wins decides what a Yjs
// document holds while structs wait, so the merge is reproduced step by step,
// down to the order its sort leaves two structs that start at the same
// clock (its comparator answers -1 both ways for a GC and an item; V8's
// sort then puts the second before the first).
func mergeStreams(a, b []wireStruct) []wireStruct { return mergeN([][]wireStruct{a, b}) }

// mergeN is mergeUpdatesV2's struct merge over any number of updates.
func mergeN(streams [][]wireStruct) []wireStruct {
	type reader struct {
		s []wireStruct
		i int
	}
	skipSkips := func(r *reader) {
		for r.i < len(r.s) && r.s[r.i].ref == refSkip {
			r.i++
		}
	}
	curr := func(r *reader) *wireStruct {
		if r.i < len(r.s) {
			return &r.s[r.i]
		}
		return nil
	}
	next := func(r *reader) *wireStruct {
		r.i++
		skipSkips(r)
		return curr(r)
	}
	decs := make([]*reader, 0, len(streams))
	for _, st := range streams {
		r := &reader{s: st}
		skipSkips(r)
		decs = append(decs, r)
	}
	end := func(s *wireStruct) uint64 { return s.id.Clock + uint64(s.length) }
	cmp := func(x, y *wireStruct) int {
		if x.id.Client == y.id.Client {
			switch {
			case x.id.Clock == y.id.Clock:
				if (x.ref == refGC) == (y.ref == refGC) {
					return 0
				}
				return -1
			case x.id.Clock < y.id.Clock:
				return -1
			}
			return 1
		}
		if y.id.Client > x.id.Client {
			return 1
		}
		return -1
	}
	var out []wireStruct
	var cw wireStruct
	has := false
	for {
		live := decs[:0]
		for _, d := range decs {
			if curr(d) != nil {
				live = append(live, d)
			}
		}
		decs = live
		v8Sort(decs, func(x, y *reader) int { return cmp(curr(x), curr(y)) })
		if len(decs) == 0 {
			break
		}
		cd := decs[0]
		first := curr(cd).id.Client
		if has {
			c := curr(cd)
			iterated := false
			for c != nil && end(c) <= end(&cw) && c.id.Client >= cw.id.Client {
				c = next(cd)
				iterated = true
			}
			if c == nil || c.id.Client != first || (iterated && c.id.Clock > end(&cw)) {
				continue
			}
			if first != cw.id.Client {
				out = append(out, cw)
				cw = *c
				next(cd)
			} else if end(&cw) < c.id.Clock {
				if cw.ref == refSkip {
					cw.length = int(end(c) - cw.id.Clock)
				} else {
					out = append(out, cw)
					gap := c.id.Clock - end(&cw)
					cw = wireStruct{ref: refSkip, info: refSkip, id: ID{first, end(&cw)}, length: int(gap)}
				}
			} else {
				cs := *c
				if diff := end(&cw) - c.id.Clock; diff > 0 {
					if cw.ref == refSkip {
						cw.length -= int(diff)
					} else {
						cs = cutStruct(cs, int(diff))
					}
				}
				if cw.ref == refGC && cs.ref == refGC { // GC.mergeWith
					cw.length += cs.length
				} else {
					out = append(out, cw)
					cw = cs
					next(cd)
				}
			}
		} else {
			cw = *curr(cd)
			has = true
			next(cd)
		}
		for n := curr(cd); n != nil && n.id.Client == first && n.id.Clock == end(&cw) && n.ref != refSkip; n = next(cd) {
			out = append(out, cw)
			cw = *n
		}
	}
	if has {
		out = append(out, cw)
	}
	return out
}

// streamOf lists per-client structs as one update would: highest client first.
func streamOf(m map[uint64][]wireStruct) []wireStruct {
	cs := make([]uint64, 0, len(m))
	n := 0
	for c, q := range m {
		cs = append(cs, c)
		n += len(q)
	}
	sortDesc(cs)
	out := make([]wireStruct, 0, n)
	for _, c := range cs {
		out = append(out, m[c]...)
	}
	return out
}

func sortDesc(cs []uint64) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j] > cs[j-1]; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// byClient splits a struct stream into per-client lists.
func byClient(s []wireStruct) map[uint64][]wireStruct {
	m := map[uint64][]wireStruct{}
	for _, x := range s {
		m[x.id.Client] = append(m[x.id.Client], x)
	}
	return m
}

// v8Sort sorts a short slice in place as V8's Array.prototype.sort does
// (TimSort: the first run, reversed when descending, then binary
// insertion). Yjs's mergeUpdates comparator is not consistent for a GC and
// an item at the same clock, so only V8's exact steps give Yjs's order.
func v8Sort[T any](a []T, cmp func(x, y T) int) {
	n := len(a)
	if n < 2 {
		return
	}
	run := 2
	if cmp(a[1], a[0]) < 0 {
		for run < n && cmp(a[run], a[run-1]) < 0 {
			run++
		}
		for i, j := 0, run-1; i < j; i, j = i+1, j-1 {
			a[i], a[j] = a[j], a[i]
		}
	} else {
		for run < n && cmp(a[run], a[run-1]) >= 0 {
			run++
		}
	}
	for i := run; i < n; i++ {
		pivot := a[i]
		lo, hi := 0, i
		for lo < hi {
			mid := lo + (hi-lo)/2
			if cmp(pivot, a[mid]) < 0 {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		copy(a[lo+1:i+1], a[lo:i])
		a[lo] = pivot
	}
}

// MergeUpdates merges v1 updates into one without a document, as Yjs's
// mergeUpdates does: structs of the same clocks are kept once, gaps become
// Skip structs, delete sets are united. The result applies like the
// updates applied one after the other.
func MergeUpdates(updates [][]byte, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	if len(updates) == 1 {
		if _, err := decodeUpdateV1(updates[0], &lim); err != nil {
			return nil, err
		}
		return append([]byte(nil), updates[0]...), nil
	}
	streams := make([][]wireStruct, 0, len(updates))
	var ds deleteSet
	total := 0
	for _, b := range updates {
		u, err := decodeUpdateV1(b, &lim)
		if err != nil {
			return nil, err
		}
		var st []wireStruct
		for _, cs := range u.clients {
			st = append(st, cs.structs...)
		}
		if total += len(st); total > lim.MaxStructs {
			return nil, ErrTooLarge
		}
		streams = append(streams, st)
		ds.clients = append(ds.clients, u.ds.clients...)
	}
	out := &update{clients: groupStream(mergeN(streams))}
	ds.normalize()
	out.ds = ds
	out.normalizeInfo()
	return out.encodeV1(), nil
}

// DiffUpdate returns what of a v1 update a peer at state vector sv lacks,
// without a document (Yjs's diffUpdate). The delete set is kept whole.
func DiffUpdate(update, sv []byte, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	u, err := decodeUpdateV1(update, &lim)
	if err != nil {
		return nil, err
	}
	m, err := DecodeStateVector(sv, lim)
	if err != nil {
		return nil, err
	}
	var st []wireStruct
	for _, cs := range u.clients {
		st = append(st, cs.structs...)
	}
	u.clients = groupStream(diffStream(st, m))
	u.normalizeInfo()
	return u.encodeV1(), nil
}

// groupStream groups a struct stream into client runs as Yjs's lazy writer
// writes them (a new run whenever the client changes).
func groupStream(s []wireStruct) []clientStructs {
	var out []clientStructs
	for _, x := range s {
		if n := len(out); n > 0 && out[n-1].client == x.id.Client {
			out[n-1].structs = append(out[n-1].structs, x)
			continue
		}
		out = append(out, clientStructs{client: x.id.Client, structs: []wireStruct{x}})
	}
	return out
}
