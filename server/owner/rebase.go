package owner

import "unicode/utf8"

// Splice is a position-based edit in code points: at Pos remove Del code
// points, then insert Ins (the Splice semantics of the editing traces).
type Splice struct {
	Pos, Del int
	Ins      string
}

// Prim is a primitive edit: a deletion of N code points at Pos (Ins empty)
// or an insertion of Ins at Pos.
type Prim struct {
	Pos, N int
	Ins    string
}

// Prims turns splices into primitives (a deletion, then an insertion).
func Prims(ss []Splice) []Prim {
	var out []Prim
	for _, s := range ss {
		if s.Del > 0 {
			out = append(out, Prim{Pos: s.Pos, N: s.Del})
		}
		if s.Ins != "" {
			out = append(out, Prim{Pos: s.Pos, Ins: s.Ins})
		}
	}
	return out
}

// rebase moves edits made against an older version of a text over the
// changes that happened since (each a sequence, each element in the
// coordinates left by the ones before it). The result applies to the current
// text. Concurrent text wins ties (an edit inserting where a change inserted
// goes after it), and an edit never deletes text it did not see: a deletion
// spanning a concurrent insertion is split around it.
func rebase(edits, changes []Splice) []Prim {
	out, _ := xformSeq(Prims(edits), Prims(changes), true)
	return out
}

// xformSeq transforms two sequences on the same text against each other:
// a2 applies after b, b2 after a. aYields breaks insertion ties for a.
func xformSeq(a, b []Prim, aYields bool) (a2, b2 []Prim) {
	switch {
	case len(a) == 0 || len(b) == 0:
		return a, b
	case len(a) == 1 && len(b) == 1:
		return xform(a[0], b[0], aYields), xform(b[0], a[0], !aYields)
	case len(a) > 1:
		x1, y1 := xformSeq(a[:1], b, aYields)
		x2, y2 := xformSeq(a[1:], y1, aYields)
		return append(x1, x2...), y2
	default:
		x1, y1 := xformSeq(a, b[:1], aYields)
		x2, y2 := xformSeq(x1, b[1:], aYields)
		return x2, append(y1, y2...)
	}
}

// xform moves primitive a over primitive b (both on the same text).
func xform(a, b Prim, aYields bool) []Prim {
	if b.Ins != "" {
		bl := utf8.RuneCountInString(b.Ins)
		if a.Ins != "" {
			if a.Pos < b.Pos || (a.Pos == b.Pos && !aYields) {
				return []Prim{a}
			}
			return []Prim{{Pos: a.Pos + bl, Ins: a.Ins}}
		}
		end := a.Pos + a.N
		switch {
		case b.Pos <= a.Pos:
			return []Prim{{Pos: a.Pos + bl, N: a.N}}
		case b.Pos >= end:
			return []Prim{a}
		}
		// b inserted inside the deleted range: delete around it.
		first := b.Pos - a.Pos
		return []Prim{{Pos: a.Pos, N: first}, {Pos: a.Pos + bl, N: a.N - first}}
	}
	// b deletes [b.Pos, b.Pos+b.N).
	mapDel := func(x int) int {
		switch {
		case x <= b.Pos:
			return x
		case x <= b.Pos+b.N:
			return b.Pos
		}
		return x - b.N
	}
	if a.Ins != "" {
		return []Prim{{Pos: mapDel(a.Pos), Ins: a.Ins}}
	}
	start, stop := mapDel(a.Pos), mapDel(a.Pos+a.N)
	if stop <= start {
		return nil
	}
	return []Prim{{Pos: start, N: stop - start}}
}

// splicesOf returns the splices of root in changes, in order.
func splicesOf(steps []Step, root string) []Splice {
	var out []Splice
	for _, st := range steps {
		for _, c := range st.Changes {
			if c.Root == root {
				out = append(out, Splice{Pos: c.Pos, Del: c.Del, Ins: c.Ins})
			}
		}
	}
	return out
}
