package yjs

// mergeStreams follows Yjs's mergeUpdatesV2 over the structs of two updates
// (each listed client by client, highest client first, clocks ascending, as
// Yjs writes them). Yjs merges its pending structs with what a new update
// left this way; which delivery of a clock range wins decides what a Yjs
// document holds while structs wait, so the merge is reproduced step by step,
// down to the order its sort leaves two structs that start at the same
// clock (its comparator answers -1 both ways for a GC and an item; V8's
// sort then puts the second before the first).
func mergeStreams(a, b []wireStruct) []wireStruct {
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
	ra, rb := &reader{s: a}, &reader{s: b}
	skipSkips(ra)
	skipSkips(rb)
	decs := []*reader{ra, rb}
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
		if len(decs) == 2 && cmp(curr(decs[1]), curr(decs[0])) < 0 {
			decs[0], decs[1] = decs[1], decs[0]
		}
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
