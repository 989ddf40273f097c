package yjs

// Load returns a document holding an encoded state (a v1 update, as
// EncodeState or Yjs's encodeStateAsUpdate write it).
func Load(state []byte, lim Limits) (*Doc, error) {
	d := New(lim)
	if _, err := d.Apply(state); err != nil {
		return nil, err
	}
	return d, nil
}

// Stats describes a document's size.
type Stats struct {
	Clients        int // clients with structs
	Structs        int // structs in the store (items and GC structs, after merging)
	ContentBytes   int // approximate bytes of content held (the MaxDocBytes measure)
	Pending        int // structs waiting for missing dependencies
	PendingDeletes int // delete ranges waiting for their structs
}

// Stats reports the document's size.
func (d *Doc) Stats() Stats {
	s := Stats{Pending: d.pendingN, ContentBytes: d.docBytes}
	for _, l := range d.clients {
		if l.state > 0 {
			s.Clients++
		}
		s.Structs += l.count
	}
	for _, r := range d.pendingDS {
		s.PendingDeletes += len(r)
	}
	return s
}

// Roots lists the names of the document's root types, in creation order.
func (d *Doc) Roots() []string { return append([]string(nil), d.rootOrder...) }
