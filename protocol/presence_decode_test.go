package protocol_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// presenceFrames are valid and broken PresenceSet frames (and a few of
// other types) for DecodePresenceSet to agree with Decode on.
func presenceFrames() [][]byte {
	pos := []byte{1, 2, 3}
	out := [][]byte{
		protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{}}),
		protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: pos, Head: pos}}}),
		protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: pos, Head: []byte{9}}}}),
		protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "other", Anchor: pos, Head: pos}, Meta: map[string]string{"a": "b"}}}),
		frame(6, u(32), s("d"), s("body"), bin(nil), bin([]byte{7}), []byte{0xc0}), // a head without an anchor
		frame(6, u(32), s(""), s("body"), bin(nil), bin(nil), []byte{0xc0}),        // empty doc
		frame(6, u(32), s("d\x01"), s("body"), bin(nil), bin(nil), []byte{0xc0}),   // control character
		frame(6, u(32), s("d"), []byte{0xa2, 0xff, 0xfe}, bin(nil), bin(nil), []byte{0xc0}),
		frame(6, u(32), s("d"), s("body"), s("x"), bin(nil), []byte{0xc0}),
		frame(6, u(32), s("d"), s("body"), bin(nil), bin(nil), []byte{0x82, 0xa1, 'k', 0xa0, 0xa1, 'k', 0xa0}), // a key twice
		frame(6, u(32), s("d"), s("body"), bin(nil), bin(nil)),                                                 // truncated
		append(frame(6, u(32), s("d"), s("body"), bin(nil), bin(nil), []byte{0xc0}), 0),                        // trailing
		frame(5, u(32), s("d"), s("body"), bin(nil), bin(nil)),                                                 // 5 fields
		protocol.Encode(&protocol.Leave{Doc: "d"}),
		{0x96},
		nil,
	}
	for _, b := range append([][]byte(nil), out...) {
		for i := 1; i < len(b); i++ {
			out = append(out, b[:i])
		}
	}
	return append(out, killers(64)...)
}

// checkPresenceSet fails unless DecodePresenceSet decodes b as Decode does.
func checkPresenceSet(t *testing.T, b []byte, lim protocol.DecodeLimits) {
	t.Helper()
	want, werr := protocol.Decode(b, lim)
	doc, st, err := protocol.DecodePresenceSet(b, lim, "body")
	ps, isSet := want.(*protocol.PresenceSet)
	switch {
	case werr != nil:
		if err == nil || err.Error() != werr.Error() {
			t.Fatalf("DecodePresenceSet(%x) error %v, want Decode's %v", b, err, werr)
		}
	case !isSet:
		var de *protocol.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("DecodePresenceSet(%x) of a %T: %v, want a DecodeError", b, want, err)
		}
	case err != nil:
		t.Fatalf("DecodePresenceSet(%x) = %v, want %+v", b, err, ps)
	case string(doc) != ps.Doc || !reflect.DeepEqual(st, ps.State) && !sameBytes(st, ps.State):
		t.Fatalf("DecodePresenceSet(%x) = %q %+v, want %q %+v", b, doc, st, ps.Doc, ps.State)
	}
}

// sameBytes compares states by content (empty and nil slices alike).
func sameBytes(a, b presence.State) bool {
	return a.Cursor.Root == b.Cursor.Root && bytes.Equal(a.Cursor.Anchor, b.Cursor.Anchor) &&
		bytes.Equal(a.Cursor.Head, b.Cursor.Head) && reflect.DeepEqual(a.Meta, b.Meta) &&
		(a.Cursor.Anchor == nil) == (b.Cursor.Anchor == nil) && (a.Cursor.Head == nil) == (b.Cursor.Head == nil)
}

func TestDecodePresenceSetAgreesWithDecode(t *testing.T) {
	for _, lim := range []protocol.DecodeLimits{{}, {MaxFrame: 12, MaxDocID: 1}} {
		for _, b := range presenceFrames() {
			checkPresenceSet(t, b, lim)
		}
	}
}

// The state keeps nothing of the frame: a reused read buffer may be
// overwritten after the call.
func TestDecodePresenceSetCopies(t *testing.T) {
	pos := []byte{1, 2, 3}
	b := protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "r", Anchor: pos, Head: []byte{4}}, Meta: map[string]string{"k": "v"}}})
	_, st, err := protocol.DecodePresenceSet(b, protocol.DecodeLimits{}, "")
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if st.Cursor.Root != "r" || !bytes.Equal(st.Cursor.Anchor, pos) || !bytes.Equal(st.Cursor.Head, []byte{4}) || st.Meta["k"] != "v" {
		t.Fatalf("after the frame's bytes were overwritten: %+v", st)
	}
}

// A caret in the root the caller already has costs one allocation (the
// position); Decode makes five.
func TestDecodePresenceSetAllocs(t *testing.T) {
	pos := []byte{1, 2, 3}
	b := protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: pos, Head: pos}}})
	n := testing.AllocsPerRun(100, func() {
		if _, _, err := protocol.DecodePresenceSet(b, protocol.DecodeLimits{}, "body"); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("DecodePresenceSet of a caret: %v allocations, want 1", n)
	}
}

func FuzzDecodePresenceSet(f *testing.F) {
	for _, b := range presenceFrames() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPresenceSet(t, b, protocol.DecodeLimits{})
	})
}

func BenchmarkDecodePresenceSet(b *testing.B) {
	pos := []byte{1, 2, 3, 4, 5, 6}
	frame := protocol.Encode(&protocol.PresenceSet{Doc: "storm", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: pos, Head: pos}}})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := protocol.Decode(frame, protocol.DecodeLimits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodePresenceSet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := protocol.DecodePresenceSet(frame, protocol.DecodeLimits{}, "body"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
