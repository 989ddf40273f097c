package protocol

import (
	"math"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
)

// MaxChunk is the most update bytes a server puts in one Sync frame, so that
// a big initial sync never holds up pings or other documents' frames for long.
const MaxChunk = 256 << 10

// ChunkUpdate splits an update the server made (crdt Doc.EncodeDiff) into
// Sync chunks of at most MaxChunk bytes: SplitUpdate(update, MaxChunk). An
// update that does not decode cannot be split; it is returned whole, and the
// receiver will refuse it.
func ChunkUpdate(update []byte) [][]byte {
	chunks, err := SplitUpdate(update, MaxChunk)
	if err != nil {
		return [][]byte{update}
	}
	return chunks
}

// splitLimits accept any update: SplitUpdate works on updates the caller made
// itself, and allocates in proportion to the input anyway.
func splitLimits() crdt.Limits {
	return crdt.Limits{MaxOps: math.MaxInt, MaxAgents: math.MaxInt, MaxRoots: math.MaxInt,
		MaxRootName: math.MaxInt, MaxInsertBytes: math.MaxInt}
}

// Upper bounds of encoded sizes (docs/FORMATS.md): an update's header (fixarray,
// version, three array headers), an op without its text, an agent table entry,
// a root table entry without its name.
const (
	maxHeader    = 2 + 3*5
	maxOpFixed   = 2 + 3*5 + 5 + 2*10
	maxAgentCost = 9
	maxRootCost  = 5
)

// SplitUpdate re-encodes the ops of a crdt update as a sequence of updates of
// at most max bytes each (MaxChunk if max <= 0), each one complete and valid
// on its own. The ops keep their order, which is causal in any update crdt
// makes, so applying the pieces in order applies each without waiting and
// leaves a document exactly as applying update would. An insert too long for
// one piece is cut at code point boundaries into inserts of consecutive ids
// (item k of a run has item k-1 as its left origin, so the pieces are the same
// ops). A piece exceeds max only if max is too small for a single op carrying
// one code point (about 100 bytes plus its root name). An update of at most
// max bytes is returned as is, without being decoded; otherwise an update
// that does not decode is an error (a *crdt.DecodeError).
func SplitUpdate(update []byte, max int) ([][]byte, error) {
	if max <= 0 {
		max = MaxChunk
	}
	if len(update) <= max {
		return [][]byte{update}, nil
	}
	ops, err := crdt.DecodeUpdate(update, splitLimits())
	if err != nil {
		return nil, err
	}
	s := splitter{max: max, agents: map[crdt.AgentID]bool{}, roots: map[string]bool{}}
	s.reset()
	for _, o := range ops {
		if err := s.op(o); err != nil {
			return nil, err
		}
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.out, nil
}

// splitter packs ops into pieces, tracking an upper bound of the current
// piece's encoded size.
type splitter struct {
	max    int
	out    [][]byte
	cur    []crdt.Op
	size   int
	agents map[crdt.AgentID]bool // agents in the current piece's table
	roots  map[string]bool       // roots in the current piece's table
}

func (s *splitter) reset() {
	s.cur, s.size = s.cur[:0], maxHeader
	clear(s.agents)
	clear(s.roots)
}

func (s *splitter) flush() error {
	if len(s.cur) == 0 {
		return nil
	}
	b, err := crdt.EncodeOps(s.cur)
	if err != nil {
		return err
	}
	s.out = append(s.out, b)
	s.reset()
	return nil
}

// cost bounds the bytes o adds to the current piece.
func (s *splitter) cost(o crdt.Op) int {
	c := maxOpFixed + len(o.Text)
	if !s.roots[o.Root] {
		c += maxRootCost + len(o.Root)
	}
	ids := [...]crdt.AgentID{o.ID.Agent, o.Left.Agent, o.Right.Agent, o.Target.Agent}
	for i, a := range ids {
		if a != 0 && !s.agents[a] && !contains(ids[:i], a) {
			c += maxAgentCost
		}
	}
	return c
}

func contains(as []crdt.AgentID, a crdt.AgentID) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func (s *splitter) add(o crdt.Op, c int) {
	s.cur = append(s.cur, o)
	s.size += c
	s.roots[o.Root] = true
	for _, a := range [...]crdt.AgentID{o.ID.Agent, o.Left.Agent, o.Right.Agent, o.Target.Agent} {
		if a != 0 {
			s.agents[a] = true
		}
	}
}

func (s *splitter) op(o crdt.Op) error {
	c := s.cost(o)
	if s.size+c <= s.max {
		s.add(o, c)
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	for {
		c = s.cost(o)
		if s.size+c <= s.max || o.Kind != crdt.OpInsert || o.Tombstone || o.Len < 2 {
			s.add(o, c) // fits in an empty piece, or cannot be cut: alone
			return nil
		}
		// Cut the text: as many whole code points as fit, at least one.
		room := s.max - s.size - (c - len(o.Text))
		cut, k := 0, 0
		for cut < len(o.Text) {
			_, w := utf8.DecodeRuneInString(o.Text[cut:])
			if cut+w > room && k > 0 {
				break
			}
			cut += w
			k++
		}
		head := o
		head.Text, head.Len = o.Text[:cut], k
		s.add(head, s.cost(head))
		if err := s.flush(); err != nil {
			return err
		}
		o.Text, o.Len = o.Text[cut:], o.Len-k
		o.Left = crdt.ID{Agent: o.ID.Agent, Seq: o.ID.Seq + uint64(k) - 1}
		o.ID.Seq += uint64(k)
	}
}
