package crdt

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/collabd/collabd/internal/mp"
)

// OpKind says what an Op does.
type OpKind int

// Op kinds. The zero value is invalid.
const (
	OpInsert OpKind = iota + 1
	OpDelete
)

// Op is one decoded op, for inspection and for tools (the document applies
// updates without building Ops). An op stands for Len consecutive ids of one
// agent: ID, ID+1, ..., ID+Len-1.
type Op struct {
	Kind OpKind
	Root string // name of the Text the op edits
	ID   ID     // id of the first inserted code point or deletion
	Len  int    // number of ids (code points inserted or deleted)

	// Inserts: the text, and the ids of the items immediately left and right
	// of the insertion point when it was made (zero ID: start or end of text).
	// Item k > 0 of the run has item k-1 as its left origin.
	Text      string
	Tombstone bool // an insert of already-deleted text, sent without it
	Left      ID
	Right     ID

	// Deletes: the ids deleted are Target..Target+Len-1. Deletion k removes
	// Target+k, or Target+Len-1-k when Reverse (backspacing).
	Target  ID
	Reverse bool
}

// DecodeUpdate decodes an update into its ops without applying it. It checks
// the encoding with the same rules and limits as Doc.ApplyUpdate.
func DecodeUpdate(b []byte, lim Limits) ([]Op, error) {
	var u update
	if err := decodeUpdate(b, &u, lim.withDefaults()); err != nil {
		return nil, err
	}
	ops := make([]Op, len(u.ops))
	for i := range u.ops {
		ops[i] = u.ops[i].public(string(u.roots[u.ops[i].root]))
	}
	return ops, nil
}

// EncodeOps encodes ops, in the given order, as one update (docs/FORMATS.md)
// that Doc.ApplyUpdate and DecodeUpdate accept: EncodeOps(DecodeUpdate(u))
// is an update with the same ops as u. The agent and root tables list agents
// and roots in order of first use. Each agent's ops must come in ascending,
// non-overlapping seq order, as in any update; ops from DecodeUpdate, or a
// subsequence of them in order, satisfy this. An op that cannot be encoded
// (unknown kind, zero agent or length, an insert whose Len is not the code
// point count of its Text, a delete without a target, seqs past 2^32) is an
// error and nothing is returned.
func EncodeOps(ops []Op) ([]byte, error) {
	var agents []AgentID
	var roots []string
	agent := func(a AgentID) int {
		for i, x := range agents { // tables are small; a map costs more
			if x == a {
				return i
			}
		}
		agents = append(agents, a)
		return len(agents) - 1
	}
	root := func(r string) int {
		for i, x := range roots {
			if x == r {
				return i
			}
		}
		roots = append(roots, r)
		return len(roots) - 1
	}
	var body []byte
	id := func(x ID) {
		if x.IsZero() {
			body = append(body, 0, 0)
			return
		}
		body = mp.AppendUint(body, uint64(agent(x.Agent)+1))
		body = mp.AppendUint(body, x.Seq)
	}
	for i, o := range ops {
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("crdt: EncodeOps: op %d (%s): %w", i, o.ID, err)
		}
		if o.Kind == OpDelete {
			body = append(body, 0x98, kindDelete)
		} else {
			body = append(body, 0x99, kindInsert)
		}
		body = mp.AppendUint(body, uint64(root(o.Root)))
		body = mp.AppendUint(body, uint64(agent(o.ID.Agent)))
		body = mp.AppendUint(body, o.ID.Seq)
		if o.Kind == OpDelete {
			body = mp.AppendUint(body, uint64(o.Len))
			id(o.Target)
			body = mp.AppendBool(body, o.Reverse)
			continue
		}
		if o.Tombstone {
			body = mp.AppendUint(body, uint64(o.Len))
		} else {
			body = mp.AppendString(body, o.Text)
		}
		id(o.Left)
		id(o.Right)
	}
	out := make([]byte, 0, len(body)+16+9*len(agents))
	out = append(out, 0x94, updateVersion)
	out = mp.AppendArrayLen(out, len(agents))
	for _, a := range agents {
		out = mp.AppendUint(out, uint64(a))
	}
	out = mp.AppendArrayLen(out, len(roots))
	for _, r := range roots {
		out = mp.AppendString(out, r)
	}
	out = mp.AppendArrayLen(out, len(ops))
	return append(out, body...), nil
}

// check reports why o cannot be encoded, or nil.
func (o Op) check() error {
	// Written without o.ID.Seq+o.Len, which wraps for hostile values.
	if o.ID.IsZero() || o.Len <= 0 || o.ID.Seq >= math.MaxUint32 || uint64(o.Len) >= math.MaxUint32-o.ID.Seq {
		return errors.New("zero agent, length out of range or seq overflow")
	}
	if !utf8.ValidString(o.Root) {
		return errors.New("root name is not UTF-8")
	}
	switch o.Kind {
	case OpInsert:
		if o.Tombstone {
			if o.Text != "" {
				return errors.New("tombstone insert with text")
			}
			break
		}
		if !utf8.ValidString(o.Text) || utf8.RuneCountInString(o.Text) != o.Len {
			return errors.New("insert text is not UTF-8 or not Len code points")
		}
		if (o.Left.IsZero() && o.Left.Seq != 0) || (o.Right.IsZero() && o.Right.Seq != 0) {
			return errors.New("origin none with a seq")
		}
		if o.Left.Seq >= math.MaxUint32 || o.Right.Seq >= math.MaxUint32 {
			return errors.New("origin seq out of range")
		}
	case OpDelete:
		if o.Target.IsZero() || o.Target.Seq >= math.MaxUint32 || uint64(o.Len) > math.MaxUint32-o.Target.Seq {
			return errors.New("delete target missing or out of range")
		}
	default:
		return fmt.Errorf("unknown kind %d", o.Kind)
	}
	return nil
}
