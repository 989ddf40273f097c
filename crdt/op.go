package crdt

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
	for i, o := range u.ops {
		p := Op{Root: string(u.roots[o.root]), ID: o.id, Len: int(o.n)}
		if o.del {
			p.Kind, p.Target, p.Reverse = OpDelete, o.target, o.rev
		} else {
			p.Kind, p.Text, p.Tombstone, p.Left, p.Right = OpInsert, string(o.text), o.tomb, o.left, o.right
		}
		ops[i] = p
	}
	return ops, nil
}
