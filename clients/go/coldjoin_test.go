package collab

import (
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// syncPieces feeds snap to the client as the pieces of a cold join.
func syncPieces(t *testing.T, c *Client, d *docState, snap []byte, pieces int) error {
	t.Helper()
	step := (len(snap) + pieces - 1) / pieces
	for i := 0; i*step < len(snap); i++ {
		part := snap[i*step : min((i+1)*step, len(snap))]
		final := (i+1)*step >= len(snap)
		if err := c.syncSnapshot(d, &protocol.Sync{Doc: d.id, Chunk: i, Final: final, Update: part, Snapshot: true}); err != nil {
			return err
		}
	}
	return nil
}

func TestColdJoinSnapshotPieces(t *testing.T) {
	src := crdt.NewDoc(crdt.Options{Agent: 3})
	_ = src.Text("body").Insert(0, "hello, snapshot")
	_ = src.Text("body").Delete(0, 1)
	snap := src.EncodeSnapshot()

	// An empty replica becomes the snapshot.
	c, d := testDoc(t, "")
	c.agent = 7
	if err := syncPieces(t, c, d, snap, 3); err != nil {
		t.Fatal(err)
	}
	if got := d.doc.Text("body").String(); got != "ello, snapshot" {
		t.Fatalf("empty replica after the snapshot: %q", got)
	}
	if d.doc.Agent() != 7 {
		t.Fatalf("the loaded replica has agent %d, want the client's 7", d.doc.Agent())
	}
	if err := d.doc.Text("body").Insert(0, "H"); err != nil { // builds the structure
		t.Fatal(err)
	}
	if err := src.ApplyUpdate(d.doc.TakeUpdate()); err != nil || src.Text("body").String() != "Hello, snapshot" {
		t.Fatalf("edit after the snapshot: %v %q", err, src.Text("body").String())
	}

	// A replica with local edits made while joining merges the snapshot.
	c, d = testDoc(t, "mine ")
	c.agent = 7
	if err := syncPieces(t, c, d, snap, 1); err != nil {
		t.Fatal(err)
	}
	want := crdt.NewDoc(crdt.Options{Agent: 7})
	_ = want.Text("body").Insert(0, "mine ")
	orig, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := want.ApplyUpdate(orig.EncodeDiff(nil)); err != nil {
		t.Fatal(err)
	}
	if got := d.doc.Text("body").String(); got != want.Text("body").String() {
		t.Fatalf("merged replica: %q, want %q", got, want.Text("body").String())
	}

	// A snapshot that does not load is an error (the caller rejoins).
	c, d = testDoc(t, "")
	bad := append([]byte{}, snap...)
	bad[len(bad)-1] ^= 0xff
	if err := syncPieces(t, c, d, bad[:len(bad)-3], 1); err == nil {
		t.Fatal("a truncated snapshot loaded")
	}
	if d.doc.Version() != 0 {
		t.Fatal("a refused snapshot changed the replica")
	}
}
