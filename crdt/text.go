package crdt

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text is a named root of a Doc: a sequence of Unicode code points edited
// concurrently. Positions count code points. A Text belongs to its Doc and, like
// the Doc, must be used from one goroutine at a time.
type Text struct {
	doc   *Doc
	name  string
	idx   int
	t     *tree
	arena []rune // inserted code points; runs point into it

	cache  string // the visible text, while cached is true
	cached bool

	// While t is nil (a root of a lazily loaded snapshot, lazy.go), its
	// visible and total item counts; cache holds its text.
	lazyVis, lazyTot int
}

// ErrPosition is returned for a position or length outside the text,
// including negative values and values whose sum would overflow an int.
var ErrPosition = errors.New("crdt: position out of range")

// ErrOutOfRange is ErrPosition under the name the checks use elsewhere.
var ErrOutOfRange = ErrPosition

// CheckRange reports whether [pos, pos+n) lies within a sequence of length
// size, without computing pos+n (which overflows for hostile values): it
// returns nil or an error wrapping ErrPosition. Negative values are refused.
func CheckRange(pos, n, size int) error {
	if pos < 0 || n < 0 || size < 0 || pos > size || n > size-pos {
		return fmt.Errorf("%w: range %d+%d in length %d", ErrPosition, pos, n, size)
	}
	return nil
}

// Name is the root name of the text in its document.
func (x *Text) Name() string { return x.name }

// Len is the number of visible code points.
func (x *Text) Len() int {
	if x.t == nil {
		return x.lazyVis
	}
	return x.t.root.vis
}

// hasItems reports whether the text holds any item (tombstones included).
func (x *Text) hasItems() bool {
	if x.t == nil {
		return x.lazyTot > 0
	}
	return x.t.root.tot > 0
}

// String returns the visible text. The result is cached until the next change.
func (x *Text) String() string {
	if x.cached || x.t == nil {
		return x.cache
	}
	var b strings.Builder
	b.Grow(x.t.root.vis)
	for l := x.t.first; l != nil; l = l.next {
		for i := 0; i < l.n; i++ {
			r := &l.runs[i]
			if r.deleted {
				continue
			}
			for _, c := range x.arena[r.content : r.content+r.n] {
				b.WriteRune(c)
			}
		}
	}
	x.cache, x.cached = b.String(), true
	return x.cache
}

// Runes returns the visible text as code points.
func (x *Text) Runes() []rune {
	if x.t == nil {
		return []rune(x.cache)
	}
	out := make([]rune, 0, x.t.root.vis)
	for l := x.t.first; l != nil; l = l.next {
		for i := 0; i < l.n; i++ {
			if r := &l.runs[i]; !r.deleted {
				out = append(out, x.arena[r.content:r.content+r.n]...)
			}
		}
	}
	return out
}

// Insert inserts s before the code point at pos (0 <= pos <= Len()).
func (x *Text) Insert(pos int, s string) error {
	if pos < 0 || pos > x.Len() {
		return fmt.Errorf("%w: insert at %d in text of length %d", ErrPosition, pos, x.Len())
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("crdt: insert of invalid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return nil
	}
	d := x.doc
	if err := d.ready(); err != nil {
		return err
	}
	if err := d.checkReserve(n, n); err != nil {
		return err
	}
	if err := d.admitLocal(x, len(s), 1); err != nil {
		return err
	}
	id := d.reserve()
	off := uint32(len(x.arena))
	for _, c := range s {
		x.arena = append(x.arena, c)
	}
	x.insertLocal(pos, id, uint32(n), off)
	d.recordInsert(x.idx, id, uint32(n))
	if d.observe != nil {
		d.observe(Change{Root: x.name, Pos: pos, Ins: s})
	}
	return nil
}

// insertLocal places a new run of n items at visible position pos.
func (x *Text) insertLocal(pos int, id ref, n, off uint32) {
	x.cached = false
	t := x.t
	nr := run{id: id, n: n, content: off, left: none}
	if pos == 0 {
		nr.right = t.firstItem()
		t.insertRun(t.first, 0, nr)
		return
	}
	l, i, o := t.findVis(pos - 1)
	r := &l.runs[i]
	nr.left = ref{r.id.a, r.id.s + o}
	nr.right = nextItem(l, i, o)
	if o == r.n-1 && r.id.a == id.a && r.id.s+r.n == id.s && !r.deleted &&
		r.content+r.n == off && r.right == nr.right {
		r.n += n
		t.setIndex(id, n, l.id)
		t.bump(l, int(n), int(n))
		return
	}
	if o+1 < r.n {
		_, _, l, i = t.splitRun(l, i, o+1)
		t.insertRun(l, i, nr)
		return
	}
	t.insertRun(l, i+1, nr)
}

// Delete removes n code points starting at pos. A negative pos or n, or a
// range that does not lie within the text (checked without overflow, so
// pos = math.MaxInt is refused like any other), returns an error wrapping
// ErrPosition and changes nothing.
func (x *Text) Delete(pos, n int) error {
	if err := CheckRange(pos, n, x.Len()); err != nil {
		return fmt.Errorf("%w: delete %d at %d in text of length %d", ErrPosition, n, pos, x.Len())
	}
	if n == 0 {
		return nil
	}
	d := x.doc
	if err := d.ready(); err != nil {
		return err
	}
	if err := d.checkReserve(n, 0); err != nil {
		return err
	}
	if err := d.admitLocal(x, 0, x.visibleRuns(pos, n)); err != nil {
		return err
	}
	id := d.reserve()
	t := x.t
	for n > 0 {
		l, i, o := t.findVis(pos)
		r := &l.runs[i]
		start := ref{r.id.a, r.id.s + o}
		k := min(uint32(n), r.n-o)
		x.deleteRange(start, k)
		d.recordDelete(x.idx, id, k, start, false)
		id.s += k
		n -= int(k)
	}
	return nil
}

// deleteRange marks the items start..start+k-1 (all present) as deleted.
func (x *Text) deleteRange(start ref, k uint32) {
	x.cached = false
	t := x.t
	for k > 0 {
		l, i, o := t.find(start)
		r := &l.runs[i]
		m := min(k, r.n-o)
		if !r.deleted {
			if obs := x.doc.observe; obs != nil {
				obs(Change{Root: x.name, Pos: x.visIndex(start), Del: int(m)})
			}
			if o > 0 {
				_, _, l, i = t.splitRun(l, i, o)
				r = &l.runs[i]
			}
			if m < r.n {
				l, i, _, _ = t.splitRun(l, i, m)
				r = &l.runs[i]
			}
			r.deleted = true
			t.bump(l, -int(m), 0)
			t.mergeAround(l, i)
		}
		start.s += m
		k -= m
	}
}

// integrate places a remote insert run (FugueMax, in the YATA-style origin
// formulation of reference-crdts' "YjsMod"; see doc.go).
func (x *Text) integrate(nr run, agent AgentID) {
	x.cached = false
	t := x.t
	var l *node
	var i int
	var o uint32
	var next ref
	if nr.left.isNone() {
		next = t.firstItem()
	} else {
		l, i, o = t.find(nr.left)
		next = nextItem(l, i, o)
	}
	if next == nr.right {
		// No concurrent insert between the origins: place right after left.
		if nr.left.isNone() {
			t.insertRun(t.first, 0, nr)
			return
		}
		r := &l.runs[i]
		if o == r.n-1 && r.id.a == nr.id.a && r.id.s+r.n == nr.id.s && r.right == nr.right &&
			r.deleted == nr.deleted && mergeableContent(r, nr.content) {
			r.n += nr.n
			t.setIndex(nr.id, nr.n, l.id)
			t.bump(l, nr.vis(), int(nr.n))
			return
		}
		x.insertAtTot(t.posTot(l, i, o)+1, nr)
		return
	}
	x.insertAtTot(x.scan(nr, agent, l, i, o), nr)
}

func mergeableContent(r *run, off uint32) bool {
	if r.content == noContent || off == noContent {
		return r.content == off
	}
	return r.content+r.n == off
}

// scan finds the total index where nr goes when concurrent items lie between
// its origins. (l, i, o) is the location of nr.left (unused when it is none).
func (x *Text) scan(nr run, agent AgentID, l *node, i int, o uint32) int {
	t := x.t
	d := x.doc
	leftPos := -1
	if !nr.left.isNone() {
		leftPos = t.posTot(l, i, o)
		// start at the item after left
		if o+1 < l.runs[i].n {
			o++
		} else {
			i, o = i+1, 0
		}
	} else {
		l, i, o = t.first, 0, 0
	}
	total := t.root.tot
	rightPos := total
	if !nr.right.isNone() {
		rightPos = t.posOf(nr.right)
	}
	dest, pos := leftPos+1, leftPos+1
	scanning := false
	for {
		for l != nil && i >= l.n {
			l, i, o = l.next, 0, 0
		}
		if !scanning {
			dest = pos
		}
		if l == nil || pos == rightPos {
			break
		}
		r := &l.runs[i]
		seg := int(r.n - o)
		oleft := pos - 1
		if o == 0 {
			oleft = t.posOf(r.left)
		}
		if oleft < leftPos {
			break
		}
		if oleft == leftPos {
			oright := total
			if !r.right.isNone() {
				oright = t.posOf(r.right)
			}
			switch {
			case oright < rightPos:
				scanning = true
			case oright == rightPos:
				other := ref{r.id.a, r.id.s + o}
				oa := d.agents[other.a].id
				if agent < oa || (agent == oa && nr.id.s < other.s) {
					return dest
				}
				scanning = false
			default:
				scanning = false
			}
		}
		if rightPos > pos && rightPos < pos+seg {
			if !scanning {
				dest = rightPos
			}
			break
		}
		pos += seg
		i, o = i+1, 0
	}
	return dest
}

// insertAtTot inserts nr so that its first item gets total index p.
func (x *Text) insertAtTot(p int, nr run) {
	t := x.t
	if p == 0 {
		t.insertRun(t.first, 0, nr)
		return
	}
	l, i, o := t.findTot(p - 1)
	if r := &l.runs[i]; o+1 < r.n {
		_, _, l, i = t.splitRun(l, i, o+1)
		t.insertRun(l, i, nr)
		return
	}
	t.insertRun(l, i+1, nr)
}
