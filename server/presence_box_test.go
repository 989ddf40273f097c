package server_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// Presence sets pipelined between updates, over a rejoin and in a frame
// whose array header is not the short one (decoded by the general path):
// the read loop reuses its frame buffer, so every update must arrive
// whole and the latest caret must win.
func TestPresencePipelinedWithUpdates(t *testing.T) {
	ts := startServer(t, t.TempDir())
	a, av := dialPresence(t, ts.url, "", 1)
	b, bv := dialPresence(t, ts.url, "", 2)
	a.join("p")
	b.join("p")
	bv.until(t, b, "alice", func() bool { _, ok := bv.peers[av.session]; return ok })
	for i := range uint64(20) {
		a.send(&protocol.PresenceSet{Doc: "p", State: caretAt(100 + i)})
		a.edit("p", i+1, func(tx *crdt.Text) error { return tx.Insert(tx.Len(), "ab") })
		if i == 10 {
			a.send(&protocol.Join{Doc: "p", SV: a.doc.StateVector()}) // a rejoin: a new presence slot
		}
	}
	// The last caret in a 16-bit array header (0xdc 00 06): the same frame
	// for Decode, not the short form the fast path takes.
	f := protocol.Encode(&protocol.PresenceSet{Doc: "p", State: caretAt(7)})
	long := append([]byte{0xdc, 0x00, 0x06}, f[1:]...)
	if err := a.conn.WriteMessage(websocket.BinaryMessage, long); err != nil {
		t.Fatal(err)
	}
	want := a.doc.Text("body").String()
	deadline := time.Now().Add(10 * time.Second)
	for posOf(bv.peers[av.session]) != 7 || b.doc.Text("body").String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("bob has %q and alice's caret at %d; want %q and 7", b.doc.Text("body").String(), posOf(bv.peers[av.session]), want)
		}
		switch m := b.readAny().(type) {
		case *protocol.Presence:
			bv.apply(m)
		case *protocol.Update:
			if err := b.doc.ApplyUpdate(m.Update); err != nil {
				t.Fatalf("bob applying an update: %v", err)
			}
		}
	}
}
