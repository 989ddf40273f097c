package crdt

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// What a document may hold is bounded by Limits, and LoadSnapshot refuses a
// snapshot that exceeds any of them. So that a document that accepted an op
// can always be saved and loaded again, every write path (local edits and
// ApplyUpdate) admits an op only if the document stays within the same
// limits the loader enforces:
//
//   - MaxRoots: roots that hold items, plus the distinct roots named by ops
//     in the pending buffer (a snapshot keeps only roots with items; a root
//     that was only read does not count);
//   - MaxRootName: bytes of the name of every root that gets an item (and
//     valid UTF-8);
//   - MaxAgents: agents with at least one op, plus the distinct agents of
//     pending ops;
//   - MaxItems: items of all roots;
//   - MaxSnapshot: an upper bound on the bytes of the uncompressed snapshot
//     body, kept as the exact size at the last EncodeSnapshot or load plus
//     what the pending ops may add when they apply (latent), plus a
//     conservative bound per op admitted since (opBound bytes and its text).

// Bounds used by the snapshot size estimate. Each is at least the number of
// bytes the thing can add to an uncompressed snapshot body (see
// EncodeSnapshotWith): an op adds one history span (at most 21 bytes), one
// order span (10), at most three runs and one changed neighbour (4 x 36) and
// a few varint counts that may grow by a byte; its text adds its UTF-8 bytes.
const (
	emptyBodyBound = 16
	opBound        = 256
	agentBound     = 32
	rootBound      = 64 // plus twice the name (root table, pending update)
)

// ErrRootName is returned (wrapped) for a root name a document cannot hold:
// longer than Limits.MaxRootName bytes or not valid UTF-8.
var ErrRootName = errors.New("crdt: bad root name")

// CheckRootName reports whether name can name a root of a document with
// limits l (zero fields: defaults): nil, or an error wrapping ErrRootName.
func CheckRootName(name string, l Limits) error {
	l = l.withDefaults()
	if len(name) > l.MaxRootName {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrRootName, len(name), l.MaxRootName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrRootName)
	}
	return nil
}

// Limits returns the document's limits with defaults filled in.
func (d *Doc) Limits() Limits { return d.lim }

// SizeBound is an upper bound on the bytes of the document's uncompressed
// snapshot body (the value checked against Limits.MaxSnapshot): exact right
// after EncodeSnapshot or LoadSnapshot (plus room for roots named only by
// pending ops), then grown by a conservative bound per admitted op. When an
// op would pass MaxSnapshot by the estimate, the body is measured again
// before the op is refused.
func (d *Doc) SizeBound() int { return d.sizeEst }

// usage counts what the pending buffer holds beyond the live roots and active
// agents: the distinct root names whose root has no item and the distinct
// agents without an applied op. skipRoot and skipAgent are left out.
type usage struct {
	roots  map[string]bool
	agents map[AgentID]bool
}

func (d *Doc) pendingUsage() usage {
	u := usage{roots: map[string]bool{}, agents: map[AgentID]bool{}}
	for i := range d.pending {
		p := &d.pending[i]
		if !d.rootLive(p.rootName) {
			u.roots[p.rootName] = true
		}
		if !d.agentActive(p.id.Agent) {
			u.agents[p.id.Agent] = true
		}
	}
	return u
}

func (d *Doc) rootLive(name string) bool {
	i, ok := d.rootIx[name]
	return ok && d.roots[i].hasItems()
}

func (d *Doc) agentActive(a AgentID) bool {
	i, ok := d.lookupAgent(a)
	return ok && d.agents[i].next > 0
}

// fits checks the counts and the size an admission would reach.
func (d *Doc) fits(roots, agents, size int) error {
	if roots > d.lim.MaxRoots {
		return fmt.Errorf("%w: %d roots (max %d)", ErrTooLarge, roots, d.lim.MaxRoots)
	}
	if agents > d.lim.MaxAgents {
		return fmt.Errorf("%w: %d agents (max %d)", ErrTooLarge, agents, d.lim.MaxAgents)
	}
	if d.loading || (size >= 0 && size <= d.lim.MaxSnapshot-d.sizeEst) {
		return nil
	}
	if !d.sizeExact {
		// The estimate grows by a worst case per op (typing one character
		// at a time adds about 1 byte, not opBound): measure the body and
		// check again. Measuring costs a snapshot encoding without
		// compression; it happens once per (MaxSnapshot - size) / opBound
		// admitted ops, and never twice without an op admitted between.
		d.encodeBody()
		if size >= 0 && size <= d.lim.MaxSnapshot-d.sizeEst {
			return nil
		}
	}
	return fmt.Errorf("%w: snapshot would exceed %d bytes", ErrTooLarge, d.lim.MaxSnapshot)
}

// admitLocal checks a local op on x adding textBytes of text (0: a delete of
// segs visible runs), and on success adds its bound to the size estimate.
func (d *Doc) admitLocal(x *Text, textBytes, segs int) error {
	size := opBound*max(segs, 1) + textBytes
	newRoot, newAgent := x.t.root.tot == 0, d.selfNext() == 0
	if !newRoot && !newAgent && size <= d.lim.MaxSnapshot-d.sizeEst {
		// The common case (typing): only the size estimate changes.
		d.sizeEst += size
		d.sizeExact = false
		return nil
	}
	roots, agents := d.live, d.active
	if newRoot {
		if err := CheckRootName(x.name, d.lim); err != nil {
			return err
		}
		size += rootBound + 2*len(x.name)
	}
	if newAgent {
		size += agentBound
	}
	if newRoot || newAgent {
		u := d.pendingUsage()
		if newRoot {
			delete(u.roots, x.name)
			roots++
		}
		if newAgent {
			delete(u.agents, d.agent)
			agents++
		}
		roots += len(u.roots)
		agents += len(u.agents)
	}
	if err := d.fits(roots, agents, size); err != nil {
		return err
	}
	d.sizeEst += size
	d.sizeExact = false
	return nil
}

// admitUpdate checks the ops of a decoded update that will be applied or
// queued (status opReady or opWaiting), and on success adds their bound to
// the size estimate.
func (d *Doc) admitUpdate(u *update, ov *overlay) error {
	size := 0
	var newRoots map[string]bool
	var newAgents map[AgentID]bool
	for k := range u.ops {
		if st := ov.status[k]; st != opReady && st != opWaiting {
			continue
		}
		o := &u.ops[k]
		size += opBound + len(o.text)
		if ri := ov.rootIx[o.root]; ri < 0 || d.roots[ri].t.root.tot == 0 {
			name := u.roots[o.root]
			if newRoots == nil {
				newRoots = map[string]bool{}
			}
			if !newRoots[string(name)] {
				newRoots[string(name)] = true
				size += rootBound + 2*len(name)
			}
		}
		if !d.agentActive(o.id.Agent) {
			if newAgents == nil {
				newAgents = map[AgentID]bool{}
			}
			if !newAgents[o.id.Agent] {
				newAgents[o.id.Agent] = true
				size += agentBound
			}
		}
	}
	roots, agents := d.live, d.active
	if newRoots != nil || newAgents != nil {
		p := d.pendingUsage()
		for r := range newRoots {
			p.roots[r] = true
		}
		for a := range newAgents {
			p.agents[a] = true
		}
		roots += len(p.roots)
		agents += len(p.agents)
	}
	if err := d.fits(roots, agents, size); err != nil {
		return err
	}
	d.sizeEst += size
	d.sizeExact = false
	return nil
}

// pendingItems is the number of items the inserts waiting in the pending
// buffer will add: they were counted against MaxItems when they were
// accepted, so that none is dropped for want of room when its dependencies
// arrive. (While a snapshot's pending ops are replayed on load they are not
// counted, as before this rule, so an older snapshot still loads.)
func (d *Doc) pendingItems() int {
	if d.loading || len(d.pending) == 0 {
		return 0
	}
	n := 0
	for i := range d.pending {
		if !d.pending[i].del {
			n += int(d.pending[i].n)
		}
	}
	return n
}

// latent bounds what the snapshot body can grow by without another op being
// admitted: the pending ops may all apply when their dependencies arrive
// (each by up to opBound and its text, more than its pending encoding), and
// the roots named only by pending ops are written once they exist (a read of
// the root creates it, and a snapshot keeps an empty root that pending ops
// name). SizeBound includes it, so that an update that drains the pending
// buffer cannot carry the body past MaxSnapshot.
//
// pendBytes is the size of the pending section the body already holds (it
// goes away as the ops apply), so it is not counted twice.
func (d *Doc) latent(pendBytes int) int {
	n := 0
	for i := range d.pending {
		n += opBound + len(d.pending[i].text)
	}
	return d.latentRoots() + max(n-pendBytes, 0)
}

// latentRoots bounds what the roots named only by pending ops add to the
// snapshot once they exist.
func (d *Doc) latentRoots() int {
	n := 0
	var seen map[string]bool
	for i := range d.pending {
		name := d.pending[i].rootName
		if _, ok := d.rootIx[name]; ok || seen[name] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[name] = true
		n += rootBound + 2*len(name)
	}
	return n
}

// visibleRuns is the number of visible runs the range [pos, pos+n) of x
// touches (the segments a local Delete records).
func (x *Text) visibleRuns(pos, n int) int {
	if n <= 1 {
		return n // one code point lies in one run (backspace: no tree walk)
	}
	l, i, o := x.t.findVis(pos)
	segs := 0
	for rem := n; l != nil && rem > 0; {
		if i >= l.n {
			l, i = l.next, 0
			continue
		}
		if r := &l.runs[i]; !r.deleted {
			rem -= int(r.n - o)
			segs++
		}
		i, o = i+1, 0
	}
	return segs
}
