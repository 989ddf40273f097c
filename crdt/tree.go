package crdt

import "slices"

// The sequence of one Text is a B+tree of runs in document order. A run is a
// maximal group of consecutive ids of one agent that were inserted one after the
// other (each item's left origin is the item before it in the run) and share a
// right origin and a deleted state. Inner nodes keep, per subtree, the number of
// visible code points (for position -> run) and the number of items including
// tombstones (for the total order used by integration). A dense per-agent index
// maps every seq to the leaf holding it (id -> run in O(log n)).

const (
	leafCap = 32 // runs per leaf
	nodeCap = 16 // children per inner node

	noContent = ^uint32(0) // run.content for tombstones whose text was dropped
)

type run struct {
	id      ref    // first item
	n       uint32 // items in the run
	content uint32 // offset of the first code point in the text's arena, or noContent
	left    ref    // left origin of the first item (later items: their predecessor)
	right   ref    // right origin of every item
	deleted bool
}

func (r *run) vis() int {
	if r.deleted {
		return 0
	}
	return int(r.n)
}

func (r *run) contains(x ref) bool {
	return r.id.a == x.a && x.s >= r.id.s && x.s-r.id.s < r.n
}

func (r *run) last() ref { return ref{r.id.a, r.id.s + r.n - 1} }

// splitAt cuts r before offset o (0 < o < n) and returns the right part.
func (r *run) splitAt(o uint32) run {
	q := *r
	q.id.s += o
	q.n -= o
	if q.content != noContent {
		q.content += o
	}
	q.left = ref{r.id.a, r.id.s + o - 1}
	r.n = o
	return q
}

type node struct {
	parent *node
	leaf   bool
	n      int // runs (leaf) or kids (inner)
	vis    int // visible code points in the subtree
	tot    int // items (visible and tombstones) in the subtree
	id     uint32
	next   *node // next leaf in document order
	runs   [leafCap]run
	kids   [nodeCap]*node
}

// tree is the run sequence of one Text.
type tree struct {
	root   *node
	first  *node
	leaves []*node    // leaf id -> leaf; index 0 unused
	index  [][]uint32 // agent -> seq -> leaf id (0: not in this text)

	// cache of the last leaf found by visible position and its visible start;
	// valid while every change since happened inside that leaf.
	cLeaf  *node
	cStart int
}

func newTree() *tree {
	t := &tree{leaves: []*node{nil}}
	l := t.newLeaf()
	t.root, t.first = l, l
	return t
}

func (t *tree) newLeaf() *node {
	l := &node{leaf: true, id: uint32(len(t.leaves))}
	t.leaves = append(t.leaves, l)
	return l
}

// bump adds to the totals of l and its ancestors.
func (t *tree) bump(l *node, dv, dt int) {
	if l != t.cLeaf {
		t.cLeaf = nil
	}
	for x := l; x != nil; x = x.parent {
		x.vis += dv
		x.tot += dt
	}
}

func (t *tree) setIndex(x ref, n uint32, leafID uint32) {
	for int(x.a) >= len(t.index) {
		t.index = append(t.index, nil)
	}
	ix := t.index[x.a]
	end := int(x.s) + int(n)
	if end > len(ix) {
		if end > cap(ix) {
			ix = slices.Grow(ix, max(end-len(ix), len(ix)))
		}
		ix = ix[:end]
		t.index[x.a] = ix
	}
	seg := ix[x.s:end]
	for i := range seg {
		seg[i] = leafID
	}
}

// has reports whether item x is in this tree.
func (t *tree) has(x ref) bool {
	return int(x.a) < len(t.index) && int(x.s) < len(t.index[x.a]) && t.index[x.a][x.s] != 0
}

// hasAll reports whether items x..x+n-1 are all in this tree.
func (t *tree) hasAll(x ref, n uint32) bool {
	if int(x.a) >= len(t.index) || uint64(x.s)+uint64(n) > uint64(len(t.index[x.a])) {
		return false
	}
	for _, v := range t.index[x.a][x.s : x.s+n] {
		if v == 0 {
			return false
		}
	}
	return true
}

// find returns the leaf, run index and offset of item x, which must be present.
func (t *tree) find(x ref) (*node, int, uint32) {
	l := t.leaves[t.index[x.a][x.s]]
	for i := 0; i < l.n; i++ {
		r := &l.runs[i]
		if r.contains(x) {
			return l, i, x.s - r.id.s
		}
	}
	panic("crdt: index points at a leaf without the item") // invariant violation
}

// findVis returns the leaf, run index and offset of the k-th visible item (0 <= k < vis).
func (t *tree) findVis(k int) (*node, int, uint32) {
	var l *node
	if c := t.cLeaf; c != nil && k >= t.cStart && k < t.cStart+c.vis {
		l = c
		k -= t.cStart
	} else {
		x, start := t.root, 0
		for !x.leaf {
			i := 0
			for ; i < x.n-1; i++ {
				v := x.kids[i].vis
				if k < v {
					break
				}
				k -= v
				start += v
			}
			x = x.kids[i]
		}
		l = x
		t.cLeaf, t.cStart = l, start
	}
	for i := 0; i < l.n; i++ {
		r := &l.runs[i]
		if r.deleted {
			continue
		}
		if k < int(r.n) {
			return l, i, uint32(k)
		}
		k -= int(r.n)
	}
	panic("crdt: visible count out of step with runs") // invariant violation
}

// findTot returns the leaf, run index and offset of the item at total index k
// (0 <= k < tot).
func (t *tree) findTot(k int) (*node, int, uint32) {
	x := t.root
	for !x.leaf {
		i := 0
		for ; i < x.n-1; i++ {
			v := x.kids[i].tot
			if k < v {
				break
			}
			k -= v
		}
		x = x.kids[i]
	}
	for i := 0; i < x.n; i++ {
		if k < int(x.runs[i].n) {
			return x, i, uint32(k)
		}
		k -= int(x.runs[i].n)
	}
	panic("crdt: total count out of step with runs") // invariant violation
}

func indexOf(p, c *node) int {
	for i := 0; i < p.n; i++ {
		if p.kids[i] == c {
			return i
		}
	}
	panic("crdt: child not under its parent") // invariant violation
}

// start returns the total index and the visible index of the first item of leaf l.
func (t *tree) start(l *node) (tot, vis int) {
	for c := l; c.parent != nil; c = c.parent {
		p := c.parent
		for i := 0; p.kids[i] != c; i++ {
			tot += p.kids[i].tot
			vis += p.kids[i].vis
		}
	}
	return tot, vis
}

// posTot returns the total index of run i, offset o of leaf l.
func (t *tree) posTot(l *node, i int, o uint32) int {
	p, _ := t.start(l)
	for j := 0; j < i; j++ {
		p += int(l.runs[j].n)
	}
	return p + int(o)
}

// posOf returns the total index of item x (present), or -1 for none.
func (t *tree) posOf(x ref) int {
	if x.isNone() {
		return -1
	}
	l, i, o := t.find(x)
	return t.posTot(l, i, o)
}

// nextItem returns the item after run i offset o of leaf l, or none.
func nextItem(l *node, i int, o uint32) ref {
	r := &l.runs[i]
	if o+1 < r.n {
		return ref{r.id.a, r.id.s + o + 1}
	}
	if i+1 < l.n {
		return l.runs[i+1].id
	}
	for l = l.next; l != nil; l = l.next {
		if l.n > 0 {
			return l.runs[0].id
		}
	}
	return none
}

// firstItem returns the first item of the text, or none.
func (t *tree) firstItem() ref {
	for l := t.first; l != nil; l = l.next {
		if l.n > 0 {
			return l.runs[0].id
		}
	}
	return none
}

// insertRun puts r before run i of leaf l and returns where it landed.
func (t *tree) insertRun(l *node, i int, r run) (*node, int) {
	if l.n == leafCap {
		if i == leafCap {
			// Appending past a full leaf (typing forward): start a new leaf
			// rather than leaving two half-full ones behind.
			l2 := t.newLeaf()
			l2.next, l.next = l.next, l2
			t.insertAfter(l, l2)
			t.cLeaf = nil
			l, i = l2, 0
		} else {
			l2 := t.splitLeaf(l)
			if i > l.n {
				i -= l.n
				l = l2
			}
		}
	}
	copy(l.runs[i+1:l.n+1], l.runs[i:l.n])
	l.runs[i] = r
	l.n++
	t.setIndex(r.id, r.n, l.id)
	t.bump(l, r.vis(), int(r.n))
	return l, i
}

// splitRun cuts run i of leaf l before offset o (0 < o < n). It returns where
// the left part and the right part ended up (a leaf split may move them).
func (t *tree) splitRun(l *node, i int, o uint32) (ll *node, li int, rl *node, ri int) {
	r := &l.runs[i]
	q := r.splitAt(o)
	t.bump(l, -q.vis(), -int(q.n))
	rl, ri = t.insertRun(l, i+1, q)
	if ri > 0 {
		return rl, ri - 1, rl, ri
	}
	return l, l.n - 1, rl, ri
}

// canMerge reports whether b continues a so that the two can be one run.
func canMerge(a, b *run) bool {
	return b.id.a == a.id.a && b.id.s == a.id.s+a.n && b.left == a.last() &&
		b.right == a.right && b.deleted == a.deleted && mergeableContent(a, b.content)
}

// mergeAround joins run i of leaf l with its neighbours in the same leaf where
// they continue each other (tombstones left by backspacing, mostly). It
// returns the index the run's first item ends up in.
func (t *tree) mergeAround(l *node, i int) int {
	if i+1 < l.n && canMerge(&l.runs[i], &l.runs[i+1]) {
		l.runs[i].n += l.runs[i+1].n
		copy(l.runs[i+1:l.n], l.runs[i+2:l.n])
		l.n--
		l.runs[l.n] = run{}
	}
	if i > 0 && canMerge(&l.runs[i-1], &l.runs[i]) {
		l.runs[i-1].n += l.runs[i].n
		copy(l.runs[i:l.n], l.runs[i+1:l.n])
		l.n--
		l.runs[l.n] = run{}
		i--
	}
	return i
}

func (t *tree) splitLeaf(l *node) *node {
	l2 := t.newLeaf()
	h := l.n / 2
	l2.n = copy(l2.runs[:], l.runs[h:l.n])
	clear(l.runs[h:l.n])
	l.n = h
	l2.next, l.next = l.next, l2
	for i := 0; i < l2.n; i++ {
		r := &l2.runs[i]
		t.setIndex(r.id, r.n, l2.id)
		l2.vis += r.vis()
		l2.tot += int(r.n)
	}
	l.vis -= l2.vis
	l.tot -= l2.tot
	t.insertAfter(l, l2)
	t.cLeaf = nil
	return l2
}

// insertAfter places nw right after old under old's parent, splitting inner
// nodes as needed, and fixes the totals of every node it touched.
func (t *tree) insertAfter(old, nw *node) {
	p := old.parent
	if p == nil {
		root := &node{n: 2}
		root.kids[0], root.kids[1] = old, nw
		old.parent, nw.parent = root, root
		t.root = root
		recount(root)
		return
	}
	if p.n == nodeCap {
		p2 := &node{}
		h := p.n / 2
		p2.n = copy(p2.kids[:], p.kids[h:p.n])
		clear(p.kids[h:p.n])
		p.n = h
		for i := 0; i < p2.n; i++ {
			p2.kids[i].parent = p2
		}
		recount(p)
		recount(p2)
		t.insertAfter(p, p2)
		if old.parent == p2 {
			p = p2
		}
	}
	i := indexOf(p, old)
	copy(p.kids[i+2:p.n+1], p.kids[i+1:p.n])
	p.kids[i+1] = nw
	p.n++
	nw.parent = p
	for x := p; x != nil; x = x.parent {
		recount(x)
	}
}

func recount(x *node) {
	x.vis, x.tot = 0, 0
	for i := 0; i < x.n; i++ {
		x.vis += x.kids[i].vis
		x.tot += x.kids[i].tot
	}
}
