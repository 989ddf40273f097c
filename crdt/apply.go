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

// interval is a run of ops of one agent that this update makes known.
type interval struct {
	seq, n uint32
	root   string
	del    bool
}

// overlay tracks, while an update is checked, the ops of the update that will
// be applied, so later ops of the same update may depend on them.
type overlay struct {
	next map[AgentID]uint32
	ivs  map[AgentID][]interval
}

func (ov *overlay) reset() {
	if ov.next == nil {
		ov.next = make(map[AgentID]uint32)
		ov.ivs = make(map[AgentID][]interval)
	}
	clear(ov.next)
	clear(ov.ivs)
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
	return d.applyDecoded(u)
}

func (d *Doc) nextOf(a AgentID) uint32 {
	if i, ok := d.agentIx[a]; ok {
		return d.agents[i].next
	}
	return 0
}

// check decides whether o can be applied now. It may trim a duplicated prefix.
func (d *Doc) check(o *op, root string, ov *overlay) readiness {
	known := func(a AgentID) uint32 {
		if ov != nil {
			if v, ok := ov.next[a]; ok {
				return v
			}
		}
		return d.nextOf(a)
	}
	n0 := known(o.id.Agent)
	if o.id.Seq+uint64(o.n) <= uint64(n0) {
		return opDuplicate
	}
	if o.id.Seq > uint64(n0) {
		return opWaiting
	}
	if k := uint32(uint64(n0) - o.id.Seq); k > 0 {
		trim(o, k)
	}
	// isItems reports whether items (a, s..s+n-1) are inserts of root: 1 yes,
	// 0 not yet known, -1 known but not items of root.
	isItems := func(x ID, n uint32) int {
		if x.IsZero() {
			return 1
		}
		if x.Seq+uint64(n) > uint64(known(x.Agent)) {
			return 0
		}
		applied := d.nextOf(x.Agent)
		for s := x.Seq; s < x.Seq+uint64(n); {
			if s < uint64(applied) {
				ri, ok := d.rootIx[root]
				if !ok {
					return -1
				}
				t := d.roots[ri].t
				ai := d.agentIx[x.Agent]
				if !t.has(ref{ai, uint32(s)}) {
					return -1
				}
				s++
				continue
			}
			iv, ok := findInterval(ov, x.Agent, uint32(s))
			if !ok || iv.del || iv.root != root {
				return -1
			}
			s = uint64(iv.seq + iv.n)
		}
		return 1
	}
	var st int
	if o.del {
		st = isItems(o.target, o.n)
	} else {
		st = min(isItems(o.left, 1), isItems(o.right, 1))
		if st == 1 && !o.left.IsZero() && !o.right.IsZero() && o.left == o.right {
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

func findInterval(ov *overlay, a AgentID, s uint32) (interval, bool) {
	if ov == nil {
		return interval{}, false
	}
	ivs := ov.ivs[a]
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].seq+ivs[i].n > s })
	if i < len(ivs) && ivs[i].seq <= s {
		return ivs[i], true
	}
	return interval{}, false
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
	ov := &overlay{}
	ov.reset()
	status := make([]readiness, len(u.ops))
	waiting, newItems, newAgents := 0, 0, 0
	seen := map[AgentID]bool{}
	for k := range u.ops {
		o := &u.ops[k]
		root := string(u.roots[o.root])
		st := d.check(o, root, ov)
		status[k] = st
		switch st {
		case opInvalid:
			return fmt.Errorf("%w: op %d (%s) references ids that are not text items of %q", ErrInvalidOp, k, o.id, root)
		case opWaiting:
			waiting++
		case opReady:
			ov.next[o.id.Agent] = uint32(o.id.Seq) + o.n
			ov.ivs[o.id.Agent] = append(ov.ivs[o.id.Agent], interval{seq: uint32(o.id.Seq), n: o.n, root: root, del: o.del})
			if !o.del {
				newItems += int(o.n)
			}
		}
		if _, ok := d.agentIx[o.id.Agent]; !ok && !seen[o.id.Agent] {
			seen[o.id.Agent] = true
			newAgents++
		}
	}
	if len(d.pending)+waiting > d.lim.MaxPending {
		return fmt.Errorf("%w: %d waiting, %d more", ErrPendingFull, len(d.pending), waiting)
	}
	if d.items+newItems > d.lim.MaxItems || len(d.agents)+newAgents > d.lim.MaxAgents {
		return fmt.Errorf("%w: %d items, %d agents", ErrTooLarge, d.items+newItems, len(d.agents)+newAgents)
	}
	for _, r := range u.roots {
		if _, ok := d.rootIx[string(r)]; !ok && len(d.roots) >= d.lim.MaxRoots {
			return fmt.Errorf("%w: more than %d roots", ErrTooLarge, d.lim.MaxRoots)
		}
	}
	applied := false
	for k := range u.ops {
		o := &u.ops[k]
		switch status[k] {
		case opReady:
			d.applyOp(o, string(u.roots[o.root]))
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
			switch d.check(&p.op, p.rootName, nil) {
			case opReady:
				if d.items+int(p.n) > d.lim.MaxItems && !p.del {
					continue // dropped: over the document limit
				}
				d.applyOp(&p.op, p.rootName)
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

func (d *Doc) toRef(x ID) ref {
	if x.IsZero() {
		return none
	}
	return ref{d.agentIx[x.Agent], uint32(x.Seq)}
}

// applyOp applies a ready op.
func (d *Doc) applyOp(o *op, rootName string) {
	x := d.Text(rootName)
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
}
