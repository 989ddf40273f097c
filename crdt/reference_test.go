package crdt_test

import (
	"fmt"
	"strings"

	"github.com/collabd/collabd/crdt"
)

// This file holds refDoc, a deliberately naive reference implementation of
// the list CRDT that package crdt implements, used as the oracle of the
// differential tests. It shares no code with package
// crdt: it consumes ops decoded with crdt.DecodeUpdate and keeps every root as
// a flat slice of items, one per code point, searched linearly. Integration is
// reference-crdts' integrateYjsMod (FugueMax) transcribed literally; causal
// readiness is modelled as package crdt documents it. It does not refuse
// anything: callers feed it only updates the Doc under test accepted.

// refItem is one inserted code point, deleted or not.
type refItem struct {
	id, left, right crdt.ID // left/right: zero ID means start/end of the text
	ch              rune
	deleted         bool
}

// refText is one root: items in document order.
type refText struct {
	items []refItem
}

// index is the position of the item id, -1 for the zero ID (the start) and
// for an id the text does not hold.
func (x *refText) index(id crdt.ID) int {
	if id.IsZero() {
		return -1
	}
	for i := range x.items {
		if x.items[i].id == id {
			return i
		}
	}
	return -1
}

func (x *refText) has(id crdt.ID) bool { return id.IsZero() || x.index(id) >= 0 }

func (x *refText) String() string {
	var b strings.Builder
	for _, it := range x.items {
		if !it.deleted {
			b.WriteRune(it.ch)
		}
	}
	return b.String()
}

// refLess orders two ids as FugueMax breaks ties: by agent as a uint64, then seq.
func refLess(a, b crdt.ID) bool {
	if a.Agent != b.Agent {
		return uint64(a.Agent) < uint64(b.Agent)
	}
	return a.Seq < b.Seq
}

// integrate is reference-crdts' integrateYjsMod.
func (x *refText) integrate(it refItem) {
	left := x.index(it.left)
	right := len(x.items)
	if !it.right.IsZero() {
		right = x.index(it.right)
	}
	destIdx := left + 1
	scanning := false
	for i := left + 1; ; i++ {
		if !scanning {
			destIdx = i
		}
		if i == len(x.items) || i == right {
			break
		}
		o := x.items[i]
		oleft := x.index(o.left)
		oright := len(x.items)
		if !o.right.IsZero() {
			oright = x.index(o.right)
		}
		if oleft < left {
			break
		}
		if oleft == left {
			if oright < right {
				scanning = true
			} else if oright == right {
				if refLess(it.id, o.id) {
					break
				}
				scanning = false
			} else {
				scanning = false
			}
		}
	}
	x.items = append(x.items, refItem{})
	copy(x.items[destIdx+1:], x.items[destIdx:])
	x.items[destIdx] = it
}

// refDoc is a reference replica: roots, a state vector, and the ops that
// arrived before their causal dependencies.
type refDoc struct {
	texts   map[string]*refText
	next    map[crdt.AgentID]uint64
	pending []crdt.Op
}

func newRefDoc() *refDoc {
	return &refDoc{texts: make(map[string]*refText), next: make(map[crdt.AgentID]uint64)}
}

func (r *refDoc) text(root string) *refText {
	x, ok := r.texts[root]
	if !ok {
		x = &refText{}
		r.texts[root] = x
	}
	return x
}

// String is the visible text of root ("" for a root it has never seen).
func (r *refDoc) String(root string) string {
	if x, ok := r.texts[root]; ok {
		return x.String()
	}
	return ""
}

// stateVector is the set of ops applied (entries of agents with no ops are left out).
func (r *refDoc) stateVector() crdt.StateVector {
	sv := make(crdt.StateVector)
	for a, n := range r.next {
		if n > 0 {
			sv[a] = n
		}
	}
	return sv
}

// Pending is the number of buffered ops.
func (r *refDoc) Pending() int { return len(r.pending) }

// dropPending forgets the buffered ops, mirroring a replica reloaded from a
// snapshot that did not keep its pending buffer.
func (r *refDoc) dropPending() { r.pending = nil }

// apply decodes an update and applies its ops in order, buffering those whose
// dependencies are missing, then applies buffered ops until none is ready.
func (r *refDoc) apply(update []byte) error {
	ops, err := crdt.DecodeUpdate(update, crdt.Limits{})
	if err != nil {
		return err
	}
	for _, o := range ops {
		ready, err := r.tryApply(o)
		if err != nil {
			return err
		}
		if !ready {
			r.pending = append(r.pending, o)
		}
	}
	for progress := true; progress; {
		progress = false
		keep := r.pending[:0]
		for _, o := range r.pending {
			ready, err := r.tryApply(o)
			if err != nil {
				return err
			}
			if ready {
				progress = true
			} else {
				keep = append(keep, o)
			}
		}
		r.pending = keep
	}
	return nil
}

// tryApply applies o if its agent's earlier ops and its origins or targets
// are present, and reports false if it must wait. Ops already applied are
// dropped (reported as applied); an op overlapping them is trimmed.
func (r *refDoc) tryApply(o crdt.Op) (bool, error) {
	next := r.next[o.ID.Agent]
	if o.ID.Seq+uint64(o.Len) <= next {
		return true, nil // duplicate
	}
	if o.ID.Seq > next {
		return false, nil // an earlier op of the agent is missing
	}
	runes := []rune(o.Text)
	if o.Kind == crdt.OpInsert && !o.Tombstone && len(runes) != o.Len {
		return false, fmt.Errorf("op %s: %d code points of text, Len %d", o.ID, len(runes), o.Len)
	}
	if k := next - o.ID.Seq; k > 0 { // trim the ids already applied
		if o.Kind == crdt.OpDelete {
			if !o.Reverse {
				o.Target.Seq += k
			}
		} else {
			if !o.Tombstone {
				runes = runes[k:]
			}
			o.Left = crdt.ID{Agent: o.ID.Agent, Seq: o.ID.Seq + k - 1}
		}
		o.ID.Seq += k
		o.Len -= int(k)
	}
	x := r.text(o.Root)
	switch o.Kind {
	case crdt.OpInsert:
		if !x.has(o.Left) || !x.has(o.Right) {
			return false, nil
		}
		for k := 0; k < o.Len; k++ {
			it := refItem{id: crdt.ID{Agent: o.ID.Agent, Seq: o.ID.Seq + uint64(k)}, left: o.Left, right: o.Right, deleted: o.Tombstone}
			if k > 0 {
				it.left = crdt.ID{Agent: o.ID.Agent, Seq: o.ID.Seq + uint64(k) - 1}
			}
			if !o.Tombstone {
				it.ch = runes[k]
			}
			x.integrate(it)
		}
	case crdt.OpDelete:
		for k := 0; k < o.Len; k++ {
			if !x.has(crdt.ID{Agent: o.Target.Agent, Seq: o.Target.Seq + uint64(k)}) {
				return false, nil
			}
		}
		for k := 0; k < o.Len; k++ {
			x.items[x.index(crdt.ID{Agent: o.Target.Agent, Seq: o.Target.Seq + uint64(k)})].deleted = true
		}
	default:
		return false, fmt.Errorf("op %s: unknown kind %d", o.ID, o.Kind)
	}
	r.next[o.ID.Agent] = o.ID.Seq + uint64(o.Len)
	return true, nil
}
