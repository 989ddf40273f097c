package crdt

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/collabd/collabd/internal/mp"
)

// Wire format versions (the first element of every encoded value).
const (
	updateVersion   = 1
	svVersion       = 1
	snapshotVersion = 1
)

const (
	kindInsert = 0
	kindDelete = 1
)

// DecodeError reports bytes that are not a valid encoding. Nothing of an input
// that fails to decode is applied.
type DecodeError struct {
	What   string // "update", "state vector", "snapshot", "relative position"
	Offset int    // byte offset where decoding stopped
	Reason string
	Err    error // underlying cause, if any
}

func (e *DecodeError) Error() string {
	s := fmt.Sprintf("crdt: bad %s at byte %d: %s", e.What, e.Offset, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

// decoder wraps mp.Reader and turns its errors into a *DecodeError.
type decoder struct {
	r    mp.Reader
	what string
	err  string // first semantic error met while reading fields (sticky)
}

func (d *decoder) fail(reason string, err error) error {
	off := d.r.Offset()
	var me *mp.Error
	if errors.As(err, &me) {
		off = me.Offset
	}
	return &DecodeError{What: d.what, Offset: off, Reason: reason, Err: err}
}

func (d *decoder) array(what string, want int) (int, error) {
	n, err := d.r.ArrayLen()
	if err != nil {
		return 0, d.fail(what, err)
	}
	if want >= 0 && n != want {
		return 0, d.fail(fmt.Sprintf("%s: %d elements, want %d", what, n, want), nil)
	}
	return n, nil
}

func (d *decoder) uint(what string, max uint64) (uint64, error) {
	v, err := d.r.Uint()
	if err != nil {
		return 0, d.fail(what, err)
	}
	if v > max {
		return 0, d.fail(fmt.Sprintf("%s %d exceeds %d", what, v, max), nil)
	}
	return v, nil
}

// decodeUpdate decodes b into u, reusing u's slices.
func decodeUpdate(b []byte, u *update, lim Limits) error {
	u.agents, u.roots, u.ops = u.agents[:0], u.roots[:0], u.ops[:0]
	d := decoder{what: "update"}
	d.r.Reset(b)
	if _, err := d.array("update", 4); err != nil {
		return err
	}
	if _, err := d.uint("version", updateVersion); err != nil {
		return err
	}
	na, err := d.array("agents", -1)
	if err != nil {
		return err
	}
	if na > lim.MaxAgents {
		return d.fail(fmt.Sprintf("%d agents exceed the limit %d", na, lim.MaxAgents), nil)
	}
	for range na {
		a, err := d.uint("agent", math.MaxUint64)
		if err != nil {
			return err
		}
		if a == 0 {
			return d.fail("agent 0 is reserved", nil)
		}
		u.agents = append(u.agents, AgentID(a))
	}
	nr, err := d.array("roots", -1)
	if err != nil {
		return err
	}
	if nr > lim.MaxRoots {
		return d.fail(fmt.Sprintf("%d roots exceed the limit %d", nr, lim.MaxRoots), nil)
	}
	for range nr {
		s, err := d.r.StringBytes()
		if err != nil {
			return d.fail("root name", err)
		}
		if len(s) > lim.MaxRootName || !utf8.Valid(s) {
			return d.fail("root name too long or not UTF-8", nil)
		}
		u.roots = append(u.roots, s)
	}
	no, err := d.array("ops", -1)
	if err != nil {
		return err
	}
	if no > lim.MaxOps {
		return d.fail(fmt.Sprintf("%d ops exceed the limit %d", no, lim.MaxOps), nil)
	}
	// last[i] is the seq after the previous op of agent i: an agent's ops must
	// come in ascending seq order without overlap.
	var lastBuf [8]uint64
	last := lastBuf[:0]
	if na <= len(lastBuf) {
		last = lastBuf[:na]
	} else {
		last = make([]uint64, na)
	}
	u.ops = slices.Grow(u.ops, min(no, d.r.Remaining()/9)) // an op takes at least 9 bytes: allocation bounded by the input
	for range no {
		var o op
		if err := decodeOp(&d, &o, u, lim); err != nil {
			return err
		}
		ai := agentSlot(u.agents, o.id.Agent)
		if o.id.Seq < last[ai] {
			return d.fail(fmt.Sprintf("op %s out of order for its agent", o.id), nil)
		}
		last[ai] = o.id.Seq + uint64(o.n)
		u.ops = append(u.ops, o)
	}
	if err := d.r.Done(); err != nil {
		return d.fail("after ops", err)
	}
	return nil
}

func agentSlot(agents []AgentID, a AgentID) int {
	for i, x := range agents {
		if x == a {
			return i
		}
	}
	return 0
}

// decodeID reads an (agent index + 1, seq) pair; agent 0 means none.
func decodeID(d *decoder, u *update) ID {
	ai, s := d.r.U(), d.r.U()
	if ai == 0 {
		if s != 0 && d.err == "" {
			d.err = "origin or target: none with a seq"
		}
		return ID{}
	}
	if ai > uint64(len(u.agents)) || s >= math.MaxUint32 {
		if d.err == "" {
			d.err = "origin or target out of range"
		}
		return ID{}
	}
	return ID{Agent: u.agents[ai-1], Seq: s}
}

func decodeOp(d *decoder, o *op, u *update, lim Limits) error {
	n, err := d.r.ArrayLen()
	if err != nil {
		return d.fail("op", err)
	}
	start := d.r.Offset()
	kind := d.r.U()
	want := 9
	if kind == kindDelete {
		want = 8
	}
	if n != want || kind > kindDelete {
		return d.fail(fmt.Sprintf("op of kind %d has %d fields", kind, n), d.r.Err())
	}
	o.del = kind == kindDelete
	root, ai, seq := d.r.U(), d.r.U(), d.r.U()
	if root >= uint64(len(u.roots)) || ai >= uint64(len(u.agents)) || seq >= math.MaxUint32 {
		return d.fail("op root, agent or seq out of range", d.r.Err())
	}
	o.root = uint32(root)
	o.id = ID{Agent: u.agents[ai], Seq: seq}
	if o.del {
		cnt := d.r.U()
		o.target = decodeID(d, u)
		o.rev, err = d.r.Bool()
		if err != nil {
			return d.fail("delete direction", err)
		}
		if cnt > math.MaxUint32 || o.target.IsZero() || o.target.Seq+cnt > math.MaxUint32 {
			return d.fail("delete length or target out of range", d.r.Err())
		}
		o.n = uint32(cnt)
	} else {
		if d.r.PeekString() {
			s, err := d.r.StringBytes()
			if err != nil {
				return d.fail("insert text", err)
			}
			if len(s) > lim.MaxInsertBytes {
				return d.fail(fmt.Sprintf("insert of %d bytes exceeds the limit %d", len(s), lim.MaxInsertBytes), nil)
			}
			o.text, o.tomb = s, false
			if len(s) == 1 && s[0] < utf8.RuneSelf {
				o.n = 1
			} else {
				if !utf8.Valid(s) {
					return d.fail("insert text is not UTF-8", nil)
				}
				o.n = uint32(utf8.RuneCount(s))
			}
		} else {
			cnt := d.r.U()
			if cnt > math.MaxUint32 {
				return d.fail("tombstone length out of range", d.r.Err())
			}
			o.n, o.text, o.tomb = uint32(cnt), nil, true
		}
		o.left = decodeID(d, u)
		o.right = decodeID(d, u)
	}
	if err := d.r.Err(); err != nil {
		return d.fail("op field", err)
	}
	if d.err != "" {
		return &DecodeError{What: d.what, Offset: start, Reason: d.err}
	}
	if o.n == 0 {
		return d.fail("op of length 0", nil)
	}
	if o.id.Seq+uint64(o.n) >= math.MaxUint32 {
		return d.fail("op seq range overflows", nil)
	}
	return nil
}

// encoder builds an update from ops of the document's history.
type encoder struct {
	d      *Doc
	agents []AgentID
	aix    map[uint32]int
	roots  []string
	rix    map[uint32]int
	body   []byte
	nops   int
}

func newEncoder(d *Doc) *encoder {
	return &encoder{d: d, aix: make(map[uint32]int), rix: make(map[uint32]int)}
}

func (e *encoder) agent(a uint32) int {
	if i, ok := e.aix[a]; ok {
		return i
	}
	i := len(e.agents)
	e.agents = append(e.agents, e.d.agents[a].id)
	e.aix[a] = i
	return i
}

func (e *encoder) root(r uint32) int {
	if i, ok := e.rix[r]; ok {
		return i
	}
	i := len(e.roots)
	e.roots = append(e.roots, e.d.roots[r].name)
	e.rix[r] = i
	return i
}

func (e *encoder) id(x ref) {
	if x.isNone() {
		e.body = append(e.body, 0, 0)
		return
	}
	e.body = mp.AppendUint(e.body, uint64(e.agent(x.a)+1))
	e.body = mp.AppendUint(e.body, uint64(x.s))
}

func (e *encoder) insert(root uint32, id ref, n uint32, text []rune, left, right ref) {
	e.nops++
	e.body = append(e.body, 0x99, kindInsert)
	e.body = mp.AppendUint(e.body, uint64(e.root(root)))
	e.body = mp.AppendUint(e.body, uint64(e.agent(id.a)))
	e.body = mp.AppendUint(e.body, uint64(id.s))
	if text == nil {
		e.body = mp.AppendUint(e.body, uint64(n))
	} else {
		size := 0
		for _, c := range text {
			size += utf8.RuneLen(c)
		}
		e.body = mp.AppendStrHeader(e.body, size)
		for _, c := range text {
			e.body = utf8.AppendRune(e.body, c)
		}
	}
	e.id(left)
	e.id(right)
}

func (e *encoder) delete(root uint32, id ref, n uint32, target ref, rev bool) {
	e.nops++
	e.body = append(e.body, 0x98, kindDelete)
	e.body = mp.AppendUint(e.body, uint64(e.root(root)))
	e.body = mp.AppendUint(e.body, uint64(e.agent(id.a)))
	e.body = mp.AppendUint(e.body, uint64(id.s))
	e.body = mp.AppendUint(e.body, uint64(n))
	e.id(target)
	e.body = mp.AppendBool(e.body, rev)
}

func (e *encoder) bytes() []byte {
	out := make([]byte, 0, len(e.body)+16+10*len(e.agents))
	out = append(out, 0x94, updateVersion)
	out = mp.AppendArrayLen(out, len(e.agents))
	for _, a := range e.agents {
		out = mp.AppendUint(out, uint64(a))
	}
	out = mp.AppendArrayLen(out, len(e.roots))
	for _, r := range e.roots {
		out = mp.AppendString(out, r)
	}
	out = mp.AppendArrayLen(out, e.nops)
	return append(out, e.body...)
}

// emitRange encodes the ops (a, from..to-1), all of which the document has.
func (e *encoder) emitRange(a uint32, from, to uint32) {
	hist := e.d.agents[a].hist
	// first span that ends after from
	lo, hi := 0, len(hist)
	for lo < hi {
		m := (lo + hi) / 2
		if hist[m].seq+hist[m].n <= from {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo; i < len(hist) && hist[i].seq < to; i++ {
		h := hist[i]
		s := max(from, h.seq)
		end := min(to, h.seq+h.n)
		if h.del {
			k, m := s-h.seq, end-s
			t := h.target
			if h.rev {
				t.s += h.n - k - m
			} else {
				t.s += k
			}
			e.delete(h.root, ref{a, s}, m, t, h.rev)
			continue
		}
		x := e.d.roots[h.root]
		for s < end {
			l, ri, o := x.t.find(ref{a, s})
			r := &l.runs[ri]
			m := min(end-s, r.n-o)
			left := r.left
			if o > 0 {
				left = ref{a, s - 1}
			}
			var text []rune
			if !r.deleted && r.content != noContent {
				text = x.arena[r.content+o : r.content+o+m]
			}
			e.insert(h.root, ref{a, s}, m, text, left, r.right)
			s += m
		}
	}
}

// TakeUpdate returns the local ops made since the previous call, encoded as
// one update, or nil if there are none. Send it to peers (and the server).
func (d *Doc) TakeUpdate() []byte {
	if d.self == noSelf || d.lazy != nil { // no local op before the structure is built
		return nil
	}
	a := &d.agents[d.self]
	if a.next == d.localFrom {
		return nil
	}
	e := newEncoder(d)
	e.emitRange(d.self, d.localFrom, a.next)
	d.localFrom = a.next
	return e.bytes()
}

// EncodeDiff returns an update with every op the document has that a replica
// with state vector sv lacks, in an order that applies without waiting
// (causal order). A nil or empty sv gives the whole history. It returns nil
// for a loaded document whose structure failed its check (Verify says why).
func (d *Doc) EncodeDiff(sv StateVector) []byte {
	if d.ready() != nil {
		return nil
	}
	e := newEncoder(d)
	for _, sp := range d.order {
		from := sp.s
		if have := sv[d.agents[sp.a].id]; uint64(from) < have {
			from = uint32(min(have, uint64(sp.s+sp.n)))
		}
		if from < sp.s+sp.n {
			e.emitRange(sp.a, from, sp.s+sp.n)
		}
	}
	return e.bytes()
}

// PendingUpdate returns the ops waiting in the pending buffer (their causal
// dependencies have not arrived) as one update, nil if there are none.
// EncodeDiff leaves them out; a merge of this replica into another one
// applies EncodeDiff's update and then this one.
func (d *Doc) PendingUpdate() []byte { return d.encodePending() }

// encodePending encodes the ops waiting in the pending buffer as one update
// (nil if there are none), so a snapshot keeps them.
func (d *Doc) encodePending() []byte {
	if len(d.pending) == 0 {
		return nil
	}
	// The pending buffer is not sorted; an update needs each agent's ops in
	// ascending, non-overlapping seq order.
	ps := slices.Clone(d.pending)
	slices.SortStableFunc(ps, func(a, b pendingOp) int {
		if c := cmp.Compare(a.id.Agent, b.id.Agent); c != 0 {
			return c
		}
		return cmp.Compare(a.id.Seq, b.id.Seq)
	})
	ops := make([]Op, 0, len(ps))
	prevEnd := map[AgentID]uint64{}
	for _, p := range ps {
		if p.id.Seq < prevEnd[p.id.Agent] {
			continue // overlapping duplicates: keep the first
		}
		prevEnd[p.id.Agent] = p.id.Seq + uint64(p.n)
		ops = append(ops, p.public(p.rootName))
	}
	b, err := EncodeOps(ops)
	if err != nil {
		return nil // cannot happen: pending ops passed decoding
	}
	return b
}

// public is the exported form of o.
func (o *op) public(root string) Op {
	p := Op{Root: root, ID: o.id, Len: int(o.n)}
	if o.del {
		p.Kind, p.Target, p.Reverse = OpDelete, o.target, o.rev
	} else {
		p.Kind, p.Text, p.Tombstone, p.Left, p.Right = OpInsert, string(o.text), o.tomb, o.left, o.right
	}
	return p
}
