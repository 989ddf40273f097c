package storage_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/collabd/collabd/storage"
)

// Append updates, reopen the store, and load the document back.
func Example() {
	dir, err := os.MkdirTemp("", "collabd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "collabd.db")
	ctx := context.Background()

	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, u := range []string{"hello", " ", "world"} {
		seq, err := s.Append(ctx, "notes", []byte(u)) // returns once durable
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("durable:", seq)
	}
	// Fold the first two updates into a snapshot.
	if err := s.Compact(ctx, "notes", []byte("hello "), 2); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	s, err = storage.Open(path, storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	doc, err := s.Load(ctx, "notes")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot %q covers 1..%d\n", doc.Snapshot, doc.Info.SnapshotSeq)
	for _, e := range doc.Tail {
		fmt.Printf("tail %d: %q\n", e.Seq, e.Data)
	}
	// Output:
	// durable: 1
	// durable: 2
	// durable: 3
	// snapshot "hello " covers 1..2
	// tail 3: "world"
}

// A document owner submits without blocking and learns about durability
// from Pending.Done, next to its other inputs.
func ExampleStore_Submit() {
	dir, err := os.MkdirTemp("", "collabd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	var pending []*storage.Pending
	for _, u := range []string{"a", "b", "c"} {
		p, err := s.Submit(ctx, "doc", []byte(u))
		if err != nil {
			log.Fatal(err)
		}
		pending = append(pending, p) // broadcast "applied" here
	}
	for _, p := range pending {
		<-p.Done() // in an owner: a case in its select loop
		seq, err := p.Result()
		fmt.Println("durable ack", seq, err)
	}
	// Output:
	// durable ack 1 <nil>
	// durable ack 2 <nil>
	// durable ack 3 <nil>
}
