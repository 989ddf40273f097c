package owner

// DiffBudget bounds the work of one DiffText (steps of Myers' algorithm,
// snakes included) and so its time: about 20 ms. Past it the diff is one
// replacement of the changed middle.
const DiffBudget = 4 << 20

// maxDiffD bounds the edit distance Myers' algorithm searches (and its
// memory: about maxDiffD² int32s of trace, 16 MiB).
const maxDiffD = 2000

// DiffText returns splices, in code points, that turn a into b: applied in
// order, each in the coordinates the ones before it leave (the shape of
// REST edits). The common prefix and suffix are never touched; the middle
// is diffed with Myers' O(ND) algorithm over code points while that stays
// within budget steps (and an edit distance of maxDiffD), else it is one
// splice that replaces the changed middle.
func DiffText(a, b string, budget int) []Splice {
	ra, rb := []rune(a), []rune(b)
	p := 0
	for p < len(ra) && p < len(rb) && ra[p] == rb[p] {
		p++
	}
	s := 0
	for s < len(ra)-p && s < len(rb)-p && ra[len(ra)-1-s] == rb[len(rb)-1-s] {
		s++
	}
	x, y := ra[p:len(ra)-s], rb[p:len(rb)-s]
	if len(x) == 0 && len(y) == 0 {
		return nil
	}
	if len(x) == 0 || len(y) == 0 {
		return []Splice{{Pos: p, Del: len(x), Ins: string(y)}}
	}
	script, ok := myers(x, y, budget)
	if !ok {
		return []Splice{{Pos: p, Del: len(x), Ins: string(y)}}
	}
	var out []Splice
	pos := p
	var cur *Splice
	var ins []rune
	flush := func() {
		if cur != nil {
			cur.Ins = string(ins)
			out = append(out, *cur)
			pos += len(ins)
			cur, ins = nil, ins[:0]
		}
	}
	for _, e := range script {
		switch e.op {
		case opEqual:
			flush()
			pos++
		case opDelete:
			if cur == nil {
				cur = &Splice{Pos: pos}
			}
			cur.Del++
		case opInsert:
			if cur == nil {
				cur = &Splice{Pos: pos}
			}
			ins = append(ins, y[e.j])
		}
	}
	flush()
	return out
}

type diffOp uint8

const (
	opEqual diffOp = iota
	opDelete
	opInsert
)

// step is one element of an edit script: keep a[i], delete a[i], or insert
// b[j].
type step struct {
	op   diffOp
	i, j int
}

// myers returns the shortest edit script from a to b, or false when it
// costs more than budget steps or maxDiffD edits.
func myers(a, b []rune, budget int) ([]step, bool) {
	n, m := len(a), len(b)
	maxD := min(n+m, maxDiffD)
	off := maxD + 1
	v := make([]int32, 2*maxD+3)
	var trace [][]int32 // trace[d]: v[-d..d] before step d
	work := 0
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int32(nil), v[off-d:off+d+1]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = int(v[off+k+1])
			} else {
				x = int(v[off+k-1]) + 1
			}
			y := x - k
			x0 := x
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			work += 1 + x - x0
			v[off+k] = int32(x)
			if x >= n && y >= m {
				return backtrack(trace, n, m, d), true
			}
		}
		if work > budget {
			return nil, false
		}
	}
	return nil, false
}

// backtrack walks the trace from (n, m) back to the start.
func backtrack(trace [][]int32, n, m, dEnd int) []step {
	out := make([]step, 0, n+m)
	x, y := n, m
	for d := dEnd; d >= 0; d-- {
		w := trace[d] // v[-d..d] before step d: index k+d
		k := x - y
		var prevK int
		if d == 0 {
			prevK = 0
		} else if k == -d || (k != d && w[k-1+d] < w[k+1+d]) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := 0
		if d > 0 {
			prevX = int(w[prevK+d])
		}
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x--
			y--
			out = append(out, step{opEqual, x, y})
		}
		if d > 0 {
			if x == prevX {
				y--
				out = append(out, step{opInsert, x, y})
			} else {
				x--
				out = append(out, step{opDelete, x, y})
			}
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
