package server_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// TestCorruptDocumentIsRefusedNotReplaced: a document whose stored snapshot
// does not decode is refused to every client, and nothing is written over it
// (a thundering herd of joins: hocuspocus#382).
func TestCorruptDocumentIsRefusedNotReplaced(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	store, err := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := crdt.NewDoc(crdt.Options{Agent: 5})
	_ = src.Text("body").Insert(0, "precious")
	seq, err := store.Append(ctx, "doc", src.TakeUpdate())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Compact(ctx, "doc", []byte{0x94, 0x01, 0x02, 0x03, 0xc4, 0x00}, seq); err != nil {
		t.Fatal(err)
	}
	var before bytes.Buffer
	if err := store.Export(ctx, "doc", &before); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	ts := startServerWith(t, dir, server.Config{})
	c := dial(t, ts.url, 1)
	c.send(&protocol.Join{Doc: "doc", SV: c.doc.StateVector()})
	if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeDocCorrupt {
		t.Fatalf("join of a corrupt document: got %+v", e)
	}
	_ = c.doc.Text("body").Insert(0, "overwrite?")
	c.send(&protocol.Update{Doc: "doc", Batch: 1, Update: c.doc.TakeUpdate()})
	if e, ok := c.read().(*protocol.Error); !ok || e.Code != protocol.CodeDocCorrupt {
		t.Fatalf("update to a corrupt document: got %+v", e)
	}
	var after bytes.Buffer
	if err := ts.store.Export(ctx, "doc", &after); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Fatal("the stored document changed")
	}
	// Other documents are served as usual.
	c.join("fine")
}
