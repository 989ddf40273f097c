package crdt

import (
	"fmt"
	"math"

	"github.com/collabd/collabd/internal/mp"
)

// Assoc says which neighbour a RelPos sticks to.
type Assoc int

// Assoc values. The zero value is AssocAfter.
const (
	// AssocAfter sticks to the code point after the position: text inserted
	// at the position lands before it, pushing the position along (a cursor
	// that moves as its owner types).
	AssocAfter Assoc = 0
	// AssocBefore sticks to the code point before the position: text inserted
	// at the position lands after the cursor.
	AssocBefore Assoc = 1
)

// RelPos is a position in a Text that survives concurrent edits, for cursors,
// selections and comments. It names an item instead of an index: with
// AssocAfter the position is just before Item (zero Item: the end of the
// text); with AssocBefore it is just after Item (zero Item: the start).
type RelPos struct {
	Item  ID
	Assoc Assoc
}

// RelPos returns the relative position of index (0 <= index <= Len()).
func (x *Text) RelPos(index int, assoc Assoc) (RelPos, error) {
	if index < 0 || index > x.Len() {
		return RelPos{}, fmt.Errorf("%w: relative position of %d in text of length %d", ErrPosition, index, x.Len())
	}
	if err := x.doc.ready(); err != nil {
		return RelPos{}, err
	}
	k := index
	if assoc == AssocBefore {
		k--
	}
	if k < 0 || k >= x.Len() {
		return RelPos{Assoc: assoc}, nil
	}
	l, i, o := x.t.findVis(k)
	r := &l.runs[i]
	return RelPos{Item: ID{Agent: x.doc.agents[r.id.a].id, Seq: uint64(r.id.s + o)}, Assoc: assoc}, nil
}

// Resolve returns the current index of p. It reports false when p names an
// item this replica has not seen (yet). A position whose item was deleted
// resolves to where the item was.
func (x *Text) Resolve(p RelPos) (int, bool) {
	if p.Item.IsZero() {
		if p.Assoc == AssocBefore {
			return 0, true
		}
		return x.Len(), true
	}
	ai, ok := x.doc.lookupAgent(p.Item.Agent)
	if !ok || p.Item.Seq >= math.MaxUint32 {
		return 0, false
	}
	it := ref{ai, uint32(p.Item.Seq)}
	if x.doc.ready() != nil || !x.t.has(it) {
		return 0, false
	}
	l, i, o := x.t.find(it)
	_, pos := x.t.start(l)
	for j := 0; j < i; j++ {
		pos += l.runs[j].vis()
	}
	r := &l.runs[i]
	if !r.deleted {
		pos += int(o)
		if p.Assoc == AssocBefore {
			pos++
		}
	}
	return pos, true
}

// EncodeRelPos encodes p as msgpack [version, agent, seq, assoc].
func EncodeRelPos(p RelPos) []byte {
	b := []byte{0x94, 1}
	b = mp.AppendUint(b, uint64(p.Item.Agent))
	b = mp.AppendUint(b, p.Item.Seq)
	return mp.AppendUint(b, uint64(p.Assoc))
}

// DecodeRelPos decodes a relative position made by EncodeRelPos.
func DecodeRelPos(b []byte) (RelPos, error) {
	d := decoder{what: "relative position"}
	d.r.Reset(b)
	if _, err := d.array("relative position", 4); err != nil {
		return RelPos{}, err
	}
	if _, err := d.uint("version", 1); err != nil {
		return RelPos{}, err
	}
	a, err := d.uint("agent", math.MaxUint64)
	if err != nil {
		return RelPos{}, err
	}
	s, err := d.uint("seq", math.MaxUint32-1)
	if err != nil {
		return RelPos{}, err
	}
	as, err := d.uint("assoc", uint64(AssocBefore))
	if err != nil {
		return RelPos{}, err
	}
	if a == 0 && s != 0 {
		return RelPos{}, d.fail("no item but a seq", nil)
	}
	if err := d.r.Done(); err != nil {
		return RelPos{}, d.fail("after relative position", err)
	}
	return RelPos{Item: ID{Agent: AgentID(a), Seq: s}, Assoc: Assoc(as)}, nil
}
