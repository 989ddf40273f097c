package owner

import (
	"bytes"
	"fmt"

	"github.com/collabd/collabd/protocol"
)

// Kind is what a document is: collabd's native text CRDT or a Yjs
// document. It is fixed when the document is created (its first stored
// record) and every session, import and view of the document must be of
// its kind.
type Kind uint8

// Document kinds.
const (
	KindNative Kind = iota
	KindYjs
)

func (k Kind) String() string {
	switch k {
	case KindNative:
		return "native"
	case KindYjs:
		return "yjs"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind reads a kind's name ("" is native).
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "", "native":
		return KindNative, true
	case "yjs":
		return KindYjs, true
	}
	return 0, false
}

// yjsRecord starts every stored record (log entry or snapshot) of a Yjs
// document. 0xC1 is the one byte msgpack never uses and every native
// record is a msgpack array (0x9X or 0xDC/0xDD), so no native record is
// mistaken for a Yjs one; the kind travels with the data through every
// store (bbolt, JetStream, backups) without new metadata.
var yjsRecord = []byte{0xC1, 'y', 0x01}

// record is data as stored for a document of kind k.
func record(k Kind, data []byte) []byte {
	if k == KindNative {
		return data
	}
	out := make([]byte, 0, len(yjsRecord)+len(data))
	return append(append(out, yjsRecord...), data...)
}

// RecordKind splits a stored record into its kind and the engine's bytes.
// A record that starts with 0xC1 but is not a known kind's prefix is an
// error (a newer format or corruption), never read as native.
func RecordKind(rec []byte) (Kind, []byte, error) {
	if len(rec) == 0 || rec[0] != 0xC1 {
		return KindNative, rec, nil
	}
	if bytes.HasPrefix(rec, yjsRecord) {
		return KindYjs, rec[len(yjsRecord):], nil
	}
	return 0, nil, fmt.Errorf("%w: unknown record kind prefix % x", ErrCorrupt, rec[:min(len(rec), 3)])
}

// storedKind is the kind of a stored document: its snapshot's, else its
// first log entry's; every record must agree.
func storedKind(s *Stored) (Kind, error) {
	kind, first := KindNative, true
	check := func(rec []byte, what string) ([]byte, error) {
		k, data, err := RecordKind(rec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if first {
			kind, first = k, false
		} else if k != kind {
			return nil, fmt.Errorf("%w: %s is a %s record in a %s document", ErrCorrupt, what, k, kind)
		}
		return data, nil
	}
	var err error
	if s.Snapshot != nil {
		if s.Snapshot, err = check(s.Snapshot, "snapshot"); err != nil {
			return 0, err
		}
	}
	for i := range s.Tail {
		if s.Tail[i].Data, err = check(s.Tail[i].Data, fmt.Sprintf("log entry %d", s.Tail[i].Seq)); err != nil {
			return 0, err
		}
	}
	return kind, nil
}

// wrongKind is the refusal of a session, import or view of the other kind.
func wrongKind(doc string, have, want Kind) *Refused {
	return &Refused{Code: protocol.CodeWrongKind, Message: fmt.Sprintf("document %q is a %s document; it cannot be opened as %s", doc, have, want)}
}

// ensureKind makes an unwritten document nobody has joined of kind want
// (the first door, import or create decides), or refuses a request of the
// other kind.
func (o *Owner) ensureKind(want Kind) *Refused {
	if o.kind == want {
		return nil
	}
	if o.exists || o.doc.Version() != 0 || o.doc.Pending() != 0 || o.hasPeers() {
		return wrongKind(o.id, o.kind, want)
	}
	doc, err := o.cfg.NewEngine(want, nil)
	if err != nil {
		return &Refused{Code: protocol.CodeInternal, Message: "new document: " + err.Error()}
	}
	o.doc, o.kind = doc, want
	o.coldJoin.chunks, o.coldJoin.version, o.coldJoin.bytes = nil, 0, 0
	return nil
}

// hasPeers reports whether a session has joined the document.
func (o *Owner) hasPeers() bool {
	for _, st := range o.subs {
		if st.peer {
			return true
		}
	}
	return false
}

// create stores a new document of kind m.Kind: one empty update, so that
// its kind is in storage before anyone writes.
func (o *Owner) create(m Create) {
	if o.exists || o.doc.Version() != 0 || o.doc.Pending() != 0 {
		answer(m.Reply, error(ErrExists))
		return
	}
	if err := o.ensureKind(m.Kind); err != nil {
		answer(m.Reply, fmt.Errorf("%w: %s", ErrExists, err.Message))
		return
	}
	empty, err := o.doc.Diff(o.doc.StateVector()) // nothing: the empty update in the engine's encoding
	if err != nil {
		answer(m.Reply, err)
		return
	}
	o.store([][]byte{empty}, commit{version: o.doc.Version(), reply: func(err error) { answer(m.Reply, err) }})
}
