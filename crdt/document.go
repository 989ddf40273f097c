package crdt

import (
	"errors"
	"fmt"
	"math"
)

// Options configure a new Doc. The zero value is valid.
type Options struct {
	// Agent is this replica's identity; zero picks a random one. Two replicas
	// editing concurrently must never share an agent id.
	Agent AgentID
	// Limits bound decoded input; zero fields take defaults.
	Limits Limits
	// Eager makes LoadSnapshot build and check the whole structure before
	// it returns, as Verify does. By default the structure is built on its
	// first use (see Doc.Verify).
	Eager bool
}

// Doc is a collaborative document: a set of named Text roots, the history of
// every op it has seen, and a pending buffer for ops that arrived before their
// causal dependencies. A Doc is not safe for concurrent use: in collabd exactly
// one goroutine (the document owner) touches it.
type Doc struct {
	agent AgentID
	self  uint32
	lim   Limits

	agents  []agentState
	agentIx map[AgentID]uint32
	roots   []*Text
	rootIx  map[string]int
	order   []orderSpan // ops in the order this replica applied them (a causal order)
	items   int         // total items in all texts

	localFrom uint32 // own ops from this seq on were not yet taken by TakeUpdate
	pending   []pendingOp
	lastAgent AgentID // one-entry cache of agentIx
	lastIdx   uint32
	scratch   update  // reused by ApplyUpdate
	ov        overlay // reused by ApplyUpdate
	observe   func(Change)

	// What the snapshot loader counts against Limits (see budget.go).
	active    int  // agents with at least one op
	live      int  // roots with at least one item
	sizeEst   int  // upper bound on the bytes of an uncompressed snapshot body
	sizeExact bool // sizeEst was measured, and no op was admitted since
	loading   bool // LoadSnapshot is replaying the pending buffer

	// A loaded snapshot whose structure is not built yet (lazy.go): lazy is
	// non-nil until it is built, and for good if the build failed, which
	// broken then says.
	lazy   *lazySnap
	broken error
}

type agentState struct {
	id   AgentID
	next uint32     // state vector entry
	hist []histSpan // every op of the agent, by seq, covering [0, next)
}

// histSpan is a run of ops of one agent with consecutive seqs.
type histSpan struct {
	seq    uint32
	n      uint32
	root   uint32
	del    bool
	rev    bool // delete: targets go downwards from target.s+n-1 to target.s
	target ref  // delete: the lowest target id
}

type orderSpan struct {
	a    uint32
	s, n uint32
}

// Errors of applying updates. Decode failures are *DecodeError.
var (
	ErrPendingFull = errors.New("crdt: pending buffer full")
	ErrTooLarge    = errors.New("crdt: document limit exceeded")
	ErrInvalidOp   = errors.New("crdt: invalid op")
)

// NewDoc returns an empty document.
func NewDoc(o Options) *Doc {
	if o.Agent == 0 {
		o.Agent = NewAgentID()
	}
	d := &Doc{
		agent:   o.Agent,
		lim:     o.Limits.withDefaults(),
		agentIx: make(map[AgentID]uint32),
		rootIx:  make(map[string]int),
		sizeEst: emptyBodyBound,
	}
	d.self = d.agentIndex(o.Agent)
	return d
}

// Agent is this replica's agent id.
func (d *Doc) Agent() AgentID { return d.agent }

// Text returns the root text with the given name, creating it if needed.
func (d *Doc) Text(name string) *Text {
	if i, ok := d.rootIx[name]; ok {
		return d.roots[i]
	}
	x := &Text{doc: d, name: name, idx: len(d.roots), t: newTree()}
	d.roots = append(d.roots, x)
	d.rootIx[name] = x.idx
	return x
}

// textOf is Text for a name given as bytes (no allocation when it exists).
func (d *Doc) textOf(name []byte) *Text {
	if i, ok := d.rootIx[string(name)]; ok {
		return d.roots[i]
	}
	return d.Text(string(name))
}

// Roots returns the names of the document's roots in creation order.
func (d *Doc) Roots() []string {
	out := make([]string, len(d.roots))
	for i, x := range d.roots {
		out[i] = x.name
	}
	return out
}

// StateVector returns which ops the document has seen.
func (d *Doc) StateVector() StateVector {
	sv := make(StateVector, len(d.agents))
	for _, a := range d.agents {
		if a.next > 0 {
			sv[a.id] = uint64(a.next)
		}
	}
	return sv
}

// Version is the number of ops the document has seen (StateVector().Version()).
func (d *Doc) Version() uint64 {
	var v uint64
	for _, a := range d.agents {
		v += uint64(a.next)
	}
	return v
}

// Pending is the number of ops waiting for their causal dependencies.
func (d *Doc) Pending() int { return len(d.pending) }

// lookupAgent returns the index of agent a in the agent table.
func (d *Doc) lookupAgent(a AgentID) (uint32, bool) {
	if a == d.lastAgent && a != 0 {
		return d.lastIdx, true
	}
	i, ok := d.agentIx[a]
	if ok {
		d.lastAgent, d.lastIdx = a, i
	}
	return i, ok
}

func (d *Doc) agentIndex(a AgentID) uint32 {
	if i, ok := d.lookupAgent(a); ok {
		return i
	}
	i := uint32(len(d.agents))
	d.agents = append(d.agents, agentState{id: a})
	d.agentIx[a] = i
	return i
}

// noSelf is Doc.self of a loaded document whose own agent has made no op
// yet: the agent is added to the agent table at its first op, so loading
// and saving a document again and again does not grow it.
const noSelf = ^uint32(0)

// selfNext is the next seq of the local agent.
func (d *Doc) selfNext() uint32 {
	if d.self == noSelf {
		return 0
	}
	return d.agents[d.self].next
}

// selfIndex is the index of the local agent, added to the table if needed.
func (d *Doc) selfIndex() uint32 {
	if d.self == noSelf {
		d.self = d.agentIndex(d.agent)
		d.localFrom = d.agents[d.self].next
	}
	return d.self
}

// checkReserve checks that the local agent can take n more seqs for ops that
// add the given number of items (n for an insert, 0 for a delete).
func (d *Doc) checkReserve(n, items int) error {
	if n < 0 || items < 0 || uint64(n) >= math.MaxUint32-uint64(d.selfNext()) || items > d.lim.MaxItems-d.items-d.pendingItems() {
		return fmt.Errorf("%w: %d more ops", ErrTooLarge, n)
	}
	return nil
}

// reserve returns the id of the local agent's next op.
func (d *Doc) reserve() ref {
	i := d.selfIndex()
	return ref{i, d.agents[i].next}
}

func (d *Doc) recordInsert(root int, id ref, n uint32) {
	d.items += int(n)
	if d.roots[root].t.root.tot == int(n) {
		d.live++ // the root's first items
	}
	d.record(histSpan{seq: id.s, n: n, root: uint32(root)}, id.a)
}

func (d *Doc) recordDelete(root int, id ref, n uint32, target ref, rev bool) {
	d.record(histSpan{seq: id.s, n: n, root: uint32(root), del: true, rev: rev, target: target}, id.a)
}

func (d *Doc) record(h histSpan, a uint32) {
	st := &d.agents[a]
	if st.next == 0 {
		d.active++ // the agent's first op
	}
	st.next = h.seq + h.n
	if k := len(st.hist); k > 0 && mergeSpan(&st.hist[k-1], h) {
	} else {
		st.hist = append(st.hist, h)
	}
	if k := len(d.order); k > 0 && d.order[k-1].a == a && d.order[k-1].s+d.order[k-1].n == h.seq {
		d.order[k-1].n += h.n
	} else {
		d.order = append(d.order, orderSpan{a: a, s: h.seq, n: h.n})
	}
}

// mergeSpan extends p by h when h continues it.
func mergeSpan(p *histSpan, h histSpan) bool {
	if p.seq+p.n != h.seq || p.root != h.root || p.del != h.del {
		return false
	}
	if !p.del {
		p.n += h.n
		return true
	}
	if p.target.a != h.target.a {
		return false
	}
	// forward: h's targets follow p's
	if (!p.rev || p.n == 1) && (!h.rev || h.n == 1) && h.target.s == p.target.s+p.n {
		p.rev = false
		p.n += h.n
		return true
	}
	// backward: h's targets precede p's (backspacing)
	if (p.rev || p.n == 1) && (h.rev || h.n == 1) && h.target.s+h.n == p.target.s {
		p.rev = true
		p.target.s = h.target.s
		p.n += h.n
		return true
	}
	return false
}
