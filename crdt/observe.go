package crdt

// Change is one visible change to a Text, as a splice in code points: at Pos
// (in the text as it was just before this change) Del code points were
// removed, then Ins was inserted. A change has either Del or Ins, not both.
type Change struct {
	Root string
	Pos  int
	Del  int
	Ins  string
}

// Observe registers f to be called for every visible change the document
// goes through, local or remote, in the order they happen, as they happen
// (during Insert, Delete and ApplyUpdate; ops released from the pending
// buffer included). Applying the changes in order to a copy of a text gives
// the text. Ops that change nothing visible (a delete of deleted items, an
// insert of deleted items from a snapshot's tombstones) give no change.
// f must not call the Doc. A nil f stops observing. Loading a snapshot gives
// no changes: observe after the load.
func (d *Doc) Observe(f func(Change)) { d.observe = f }

// visIndex is the visible index of item it (present in x), or where it would
// be if deleted.
func (x *Text) visIndex(it ref) int {
	l, i, o := x.t.find(it)
	_, pos := x.t.start(l)
	for j := 0; j < i; j++ {
		pos += l.runs[j].vis()
	}
	if !l.runs[i].deleted {
		pos += int(o)
	}
	return pos
}
