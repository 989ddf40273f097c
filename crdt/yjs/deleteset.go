package yjs

import (
	"slices"
)

// dsRange is a run of deleted clocks [clock, clock+len).
type dsRange struct{ clock, len uint64 }

type dsClient struct {
	client uint64
	ranges []dsRange
}

// deleteSet lists deleted ID ranges per client (Yjs's DeleteSet).
type deleteSet struct{ clients []dsClient }

func decodeDeleteSet(d *decoder) deleteSet { return decodeDeleteSetInto(d, deleteSet{}) }

// decodeDeleteSetInto reads a delete set, reusing ds's slices.
func decodeDeleteSetInto(d *decoder, ds deleteSet) deleteSet {
	n := d.length("delete set clients", 2, d.lim.MaxClients)
	if d.err != nil {
		return ds
	}
	if cap(ds.clients) < n {
		ds.clients = make([]dsClient, 0, n)
	}
	ds.clients = ds.clients[:0]
	total := 0
	for i := 0; i < n && d.err == nil; i++ {
		client := d.varUint("delete set client")
		nr := d.length("delete set ranges", 2, d.lim.MaxStructs)
		if total += nr; total > d.lim.MaxStructs {
			d.fail("delete set ranges", ErrTooLarge)
		}
		if d.err != nil {
			break
		}
		var dc dsClient
		if k := len(ds.clients); k < cap(ds.clients) {
			dc = ds.clients[:k+1][k]
		}
		dc.client = client
		if cap(dc.ranges) < nr {
			dc.ranges = make([]dsRange, 0, nr)
		}
		dc.ranges = dc.ranges[:0]
		for j := 0; j < nr && d.err == nil; j++ {
			c := d.varUint("delete clock")
			l := d.varUint("delete length")
			if d.err == nil && l > maxSafe-c {
				d.fail("delete length", ErrMalformed)
			}
			dc.ranges = append(dc.ranges, dsRange{c, l})
		}
		ds.clients = append(ds.clients, dc)
	}
	return ds
}

func (ds *deleteSet) encodeV1(e *encoder) {
	e.varUint(uint64(len(ds.clients)))
	for _, c := range ds.clients {
		e.varUint(c.client)
		e.varUint(uint64(len(c.ranges)))
		for _, r := range c.ranges {
			e.varUint(r.clock)
			e.varUint(r.len)
		}
	}
}

// normalize sorts clients descending (as Yjs writes them) and each client's
// ranges ascending, merging overlapping and adjacent ranges and dropping empty ones.
func (ds *deleteSet) normalize() {
	byClient := map[uint64]int{}
	out := ds.clients[:0]
	for _, c := range ds.clients {
		if i, ok := byClient[c.client]; ok {
			out[i].ranges = append(out[i].ranges, c.ranges...)
			continue
		}
		byClient[c.client] = len(out)
		out = append(out, c)
	}
	ds.clients = out
	for i := range ds.clients {
		ds.clients[i].ranges = mergeRanges(ds.clients[i].ranges)
	}
	ds.clients = slices.DeleteFunc(ds.clients, func(c dsClient) bool { return len(c.ranges) == 0 })
	slices.SortFunc(ds.clients, func(a, b dsClient) int {
		switch {
		case a.client > b.client:
			return -1
		case a.client < b.client:
			return 1
		}
		return 0
	})
}

func mergeRanges(r []dsRange) []dsRange {
	r = slices.DeleteFunc(r, func(x dsRange) bool { return x.len == 0 })
	slices.SortFunc(r, func(a, b dsRange) int {
		switch {
		case a.clock < b.clock:
			return -1
		case a.clock > b.clock:
			return 1
		}
		return 0
	})
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && out[n-1].clock+out[n-1].len >= x.clock {
			if end := x.clock + x.len; end > out[n-1].clock+out[n-1].len {
				out[n-1].len = end - out[n-1].clock
			}
			continue
		}
		out = append(out, x)
	}
	return out
}
