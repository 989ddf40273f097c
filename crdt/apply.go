package crdt

import (
	"fmt"
	"sort"
	"unicode/utf8"
)

// op is one decoded op. For inserts, text aliases the update's bytes.
type op struct {
	del         bool
	root        uint32 // index into the update's root table
	id          ID
	n           uint32
	text        []byte // insert content (UTF-8); nil for a tombstone
	tomb        bool   // insert of already-deleted content without its text
	left, right ID     // insert origins
	target      ID     // delete: lowest target id
	rev         bool   // delete: targets in descending order
}

// update is a decoded update.
type update struct {
	agents []AgentID
	roots  [][]byte
	ops    []op
}

type pendingOp struct {
	op
	rootName string
}

// interval is a run of ops of one agent that the update being checked makes known.
type interval struct {
	agent  AgentID
	seq, n uint32
	root   int // index in the update's root table
	del    bool
}

// overlay tracks, while an update is checked, the ops of the update that will
// be applied, so later ops of the same update may depend on them. Its buffers
// are reused across updates.
type overlay struct {
	next   []agentNext
	ivs    []interval
	byAg   map[AgentID][]interval // ivs by agent, indexed lazily when a lookup needs it
	built  int                    // ivs[:built] are in byAg
	status []readiness
	rootIx []int // update root -> document root index, or -1

	nextIx map[AgentID]int // index into next, once it is larger than small
}

type agentNext struct {
	a    AgentID
	next uint32
}

func (ov *overlay) reset() {
	ov.next, ov.ivs, ov.status, ov.rootIx = ov.next[:0], ov.ivs[:0], ov.status[:0], ov.rootIx[:0]
	if ov.built > 0 {
		clear(ov.byAg)
	}
	ov.built = 0
}

// small is how many agents an update may touch before the overlay indexes
// them in a map instead of scanning.
const small = 16

func (ov *overlay) slot(a AgentID) int {
	if len(ov.next) > small {
		if i, ok := ov.nextIx[a]; ok {
			return i
		}
		return -1
	}
	for i := range ov.next {
		if ov.next[i].a == a {
			return i
		}
	}
	return -1
}

func (ov *overlay) known(a AgentID) (uint32, bool) {
	if i := ov.slot(a); i >= 0 {
		return ov.next[i].next, true
	}
	return 0, false
}

func (ov *overlay) advance(a AgentID, next uint32) {
	if i := ov.slot(a); i >= 0 {
		ov.next[i].next = next
		return
	}
	ov.next = append(ov.next, agentNext{a, next})
	switch n := len(ov.next); {
	case n == small+1:
		if ov.nextIx == nil {
			ov.nextIx = make(map[AgentID]int)
		}
		clear(ov.nextIx)
		for i, x := range ov.next {
			ov.nextIx[x.a] = i
		}
	case n > small+1:
		ov.nextIx[a] = n - 1
	}
}

func (ov *overlay) find(a AgentID, s uint32) (interval, bool) {
	// Index the intervals added since the last lookup (an agent's intervals
	// arrive in ascending seq order, so each list stays sorted). Incremental:
	// rebuilding on every lookup made a large update quadratic.
	if ov.byAg == nil {
		ov.byAg = make(map[AgentID][]interval)
	}
	for ; ov.built < len(ov.ivs); ov.built++ {
		iv := ov.ivs[ov.built]
		list := ov.byAg[iv.agent]
		if n := len(list); n > 0 {
			// Consecutive ops of one kind in one root (typing) share an interval.
			if last := &list[n-1]; last.seq+last.n == iv.seq && last.root == iv.root && last.del == iv.del {
				last.n += iv.n
				continue
			}
		}
		ov.byAg[iv.agent] = append(list, iv)
	}
	ivs := ov.byAg[a]
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].seq+ivs[i].n > s })
	if i < len(ivs) && ivs[i].seq <= s {
		return ivs[i], true
	}
	return interval{}, false
}

type readiness int

const (
	opReady readiness = iota + 1
	opDuplicate
	opWaiting
	opInvalid
)

// ApplyUpdate decodes an update and applies its ops. Ops already seen are
// ignored; ops whose causal dependencies are missing wait in a bounded pending
// buffer and apply once the dependencies arrive. An update that fails to decode,
// holds an invalid op, or would overflow a limit is rejected whole: the
// document is unchanged.
func (d *Doc) ApplyUpdate(b []byte) error {
	u := &d.scratch
	if err := decodeUpdate(b, u, d.lim); err != nil {
		return err
	}
	if err := d.ready(); err != nil {
		return err
	}
	return d.applyDecoded(u)
}

// ApplyUpdateFrom is ApplyUpdate for an update from a client whose claims
// must be checked first: once the update is decoded, and before anything
// applies, admit is called with the distinct agents of its ops (the ids they
// create, not the ones they refer to), its op count and the total length
// (code points inserted or deleted) of its ops. An error from admit rejects
// the update whole and is returned as it is. One decode serves the check and
// the apply.
func (d *Doc) ApplyUpdateFrom(b []byte, admit func(agents []AgentID, ops, length int) error) error {
	u := &d.scratch
	if err := decodeUpdate(b, u, d.lim); err != nil {
		return err
	}
	if err := d.ready(); err != nil {
		return err
	}
	var usedBuf [8]bool
	used := usedBuf[:0]
	if len(u.agents) <= len(usedBuf) {
		used = usedBuf[:len(u.agents)]
	} else {
		used = make([]bool, len(u.agents))
	}
	length := 0
	for k := range u.ops {
		used[agentSlot(u.agents, u.ops[k].id.Agent)] = true
		length += int(u.ops[k].n)
	}
	agents := make([]AgentID, 0, len(u.agents))
	for i, a := range u.agents {
		if used[i] {
			agents = append(agents, a)
		}
	}
	if err := admit(agents, len(u.ops), length); err != nil {
		return err
	}
	return d.applyDecoded(u)
}

func (d *Doc) nextOf(a AgentID) uint32 {
	if i, ok := d.lookupAgent(a); ok {
		return d.agents[i].next
	}
	return 0
}

// checker decides whether ops can be applied now, given the document and
// (while checking an update) the ops of the update before them.
type checker struct {
	d     *Doc
	ov    *overlay // nil for ops from the pending buffer
	root  int      // document root index, or -1 if the root does not exist yet
	uroot int      // update root index (overlay intervals)
}

func (c *checker) known(a AgentID) uint32 {
	if c.ov != nil {
		if v, ok := c.ov.known(a); ok {
			return v
		}
	}
	return c.d.nextOf(a)
}

// items reports whether items (x.Agent, x.Seq..x.Seq+n-1) are inserts of the
// root: 1 yes, 0 not yet known, -1 known but not items of this root.
func (c *checker) items(x ID, n uint32) int {
	if x.IsZero() {
		return 1
	}
	if x.Seq+uint64(n) > uint64(c.known(x.Agent)) {
		return 0
	}
	d := c.d
	applied := uint64(d.nextOf(x.Agent))
	for s := x.Seq; s < x.Seq+uint64(n); {
		if s < applied {
			ai, _ := d.lookupAgent(x.Agent)
			if c.root < 0 || !d.roots[c.root].t.has(ref{ai, uint32(s)}) {
				return -1
			}
			s++
			continue
		}
		if c.ov == nil {
			return -1
		}
		iv, ok := c.ov.find(x.Agent, uint32(s))
		if !ok || iv.del || iv.root != c.uroot {
			return -1
		}
		s = uint64(iv.seq + iv.n)
	}
	return 1
}

// check decides whether o can be applied now. It may trim a duplicated prefix.
func (c *checker) check(o *op) readiness {
	n0 := c.known(o.id.Agent)
	if o.id.Seq+uint64(o.n) <= uint64(n0) {
		return opDuplicate
	}
	if o.id.Seq > uint64(n0) {
		return opWaiting
	}
	if k := uint32(uint64(n0) - o.id.Seq); k > 0 {
		trim(o, k)
	}
	var st int
	if o.del {
		st = c.items(o.target, o.n)
	} else {
		st = min(c.items(o.left, 1), c.items(o.right, 1))
		if st == 1 && (!o.left.IsZero() && o.left == o.right || !c.adjacentOrigins(o)) {
			st = -1
		}
	}
	switch st {
	case 1:
		return opReady
	case 0:
		return opWaiting
	}
	return opInvalid
}

// adjacentOrigins checks an insert's origins against what its author must
// have seen. FugueMax converges only if the origins were adjacent when the
// insert was made: every item now between them must be concurrent with it.
// The author had certainly seen its own earlier ops and, seqs being dense,
// every op of the origins' agents up to the origins; an item from that causal
// past lying between the origins (or a right origin before the left one)
// proves the op was not made by a correct replica, and it is refused. Honest
// ops always pass. Origins made by earlier ops of the same update are not
// checked here (they are not in the tree yet).
func (c *checker) adjacentOrigins(o *op) bool {
	d := c.d
	if c.root < 0 {
		return true // a new root: any origins come from this update (checked by items)
	}
	t := d.roots[c.root].t
	l, r := d.toRefIfKnown(o.left), d.toRefIfKnown(o.right)
	if (!o.left.IsZero() && !t.has(l)) || (!o.right.IsZero() && !t.has(r)) {
		return true
	}
	author, authorKnown := d.lookupAgent(o.id.Agent)
	inPast := func(x ref) bool { // is any item x, x+1, ... (one agent) in the known causal past?
		switch {
		case authorKnown && x.a == author && x.s < uint32(o.id.Seq):
			return true
		case !l.isNone() && x.a == l.a && x.s <= l.s:
			return true
		case !r.isNone() && x.a == r.a && x.s <= r.s:
			return true
		}
		return false
	}
	var lf *node
	var i int
	var off uint32
	if l.isNone() {
		lf = t.first
	} else {
		lf, i, off = t.find(l)
		off++
	}
	for {
		for lf != nil && (i >= lf.n || off >= lf.runs[i].n) {
			if i < lf.n {
				i, off = i+1, 0
			} else {
				lf, i, off = lf.next, 0, 0
			}
		}
		if lf == nil {
			return r.isNone()
		}
		run := &lf.runs[i]
		start := ref{run.id.a, run.id.s + off}
		if run.contains(r) && r.s >= start.s {
			return r.s == start.s || !inPast(start)
		}
		if inPast(start) {
			return false
		}
		i, off = i+1, 0
	}
}

// trim drops the first k ops of o (already seen).
func trim(o *op, k uint32) {
	if o.del {
		if !o.rev {
			o.target.Seq += uint64(k)
		}
	} else {
		if !o.tomb {
			for range k {
				_, sz := utf8.DecodeRune(o.text)
				o.text = o.text[sz:]
			}
		}
		o.left = ID{Agent: o.id.Agent, Seq: o.id.Seq + uint64(k) - 1}
	}
	o.id.Seq += uint64(k)
	o.n -= k
}

func (d *Doc) applyDecoded(u *update) error {
	ov := &d.ov
	ov.reset()
	for _, name := range u.roots {
		ri, ok := d.rootIx[string(name)]
		if !ok {
			ri = -1
		}
		ov.rootIx = append(ov.rootIx, ri)
	}
	waiting, newItems := 0, 0
	c := checker{d: d, ov: ov}
	for k := range u.ops {
		o := &u.ops[k]
		c.root, c.uroot = ov.rootIx[o.root], int(o.root)
		st := c.check(o)
		ov.status = append(ov.status, st)
		switch st {
		case opInvalid:
			return fmt.Errorf("%w: op %d (%s) references ids that are not text items of %q", ErrInvalidOp, k, o.id, u.roots[o.root])
		case opWaiting:
			waiting++
			if !o.del && !d.loading {
				// Counted now: a waiting insert dropped later for want of
				// room would be an acknowledged op lost.
				newItems += int(o.n)
			}
		case opReady:
			ov.advance(o.id.Agent, uint32(o.id.Seq)+o.n)
			ov.ivs = append(ov.ivs, interval{agent: o.id.Agent, seq: uint32(o.id.Seq), n: o.n, root: int(o.root), del: o.del})
			if !o.del {
				newItems += int(o.n)
			}
		}
	}
	if len(d.pending)+waiting > d.lim.MaxPending {
		return fmt.Errorf("%w: %d waiting, %d more", ErrPendingFull, len(d.pending), waiting)
	}
	if room := d.lim.MaxItems - d.items - d.pendingItems(); newItems > room {
		return fmt.Errorf("%w: %d more items, room for %d (max %d)", ErrTooLarge, newItems, room, d.lim.MaxItems)
	}
	if err := d.admitUpdate(u, ov); err != nil {
		return err
	}
	applied := false
	for k := range u.ops {
		o := &u.ops[k]
		switch ov.status[k] {
		case opReady:
			ri := ov.rootIx[o.root]
			if ri < 0 {
				ri = d.textOf(u.roots[o.root]).idx
				ov.rootIx[o.root] = ri
			}
			d.applyOp(o, d.roots[ri])
			applied = true
		case opWaiting:
			p := pendingOp{op: *o, rootName: string(u.roots[o.root])}
			p.text = append([]byte(nil), o.text...)
			d.pending = append(d.pending, p)
		}
	}
	if applied && len(d.pending) > 0 {
		d.drainPending()
	}
	return nil
}

// drainPending applies waiting ops whose dependencies have arrived.
func (d *Doc) drainPending() {
	for progress := true; progress; {
		progress = false
		keep := d.pending[:0]
		for i := range d.pending {
			p := d.pending[i]
			root, ok := d.rootIx[p.rootName]
			if !ok {
				root = -1
			}
			c := checker{d: d, root: root}
			switch c.check(&p.op) {
			case opReady:
				if !p.del && int(p.n) > d.lim.MaxItems-d.items {
					continue // dropped: over the document limit
				}
				d.applyOp(&p.op, d.Text(p.rootName))
				progress = true
			case opWaiting:
				keep = append(keep, p)
			}
			// duplicates and invalid ops are dropped
		}
		clear(d.pending[len(keep):])
		d.pending = keep
	}
}

// toRefIfKnown is toRef for an id whose agent may be unknown (then none).
func (d *Doc) toRefIfKnown(x ID) ref {
	if x.IsZero() || x.Seq >= uint64(noContent) {
		return none
	}
	ai, ok := d.lookupAgent(x.Agent)
	if !ok {
		return none
	}
	return ref{ai, uint32(x.Seq)}
}

func (d *Doc) toRef(x ID) ref {
	if x.IsZero() {
		return none
	}
	ai, _ := d.lookupAgent(x.Agent)
	return ref{ai, uint32(x.Seq)}
}

// applyOp applies a ready op.
func (d *Doc) applyOp(o *op, x *Text) {
	ai := d.agentIndex(o.id.Agent)
	id := ref{ai, uint32(o.id.Seq)}
	if o.del {
		t := d.toRef(o.target)
		x.deleteRange(t, o.n)
		d.recordDelete(x.idx, id, o.n, t, o.rev)
		return
	}
	nr := run{id: id, n: o.n, content: noContent, left: d.toRef(o.left), right: d.toRef(o.right), deleted: o.tomb}
	if !o.tomb {
		nr.content = uint32(len(x.arena))
		for _, c := range string(o.text) {
			x.arena = append(x.arena, c)
		}
	}
	x.t.cLeaf = nil
	x.integrate(nr, o.id.Agent)
	d.recordInsert(x.idx, id, o.n)
	if d.observe != nil && !o.tomb {
		d.observe(Change{Root: x.name, Pos: x.visIndex(id), Ins: string(o.text)})
	}
}
