package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/storage/jetstream"
)

// A document's life on one embedded node: open it as its writer, append,
// compact, and load it back.
func Example() {
	dir, err := os.MkdirTemp("", "collabd-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ns, err := natsembed.Start(natsembed.Config{StoreDir: dir})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer func() { _ = ns.Shutdown(ctx) }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	s, err := jetstream.New(ctx, nc, jetstream.Options{Replicas: 1})
	if err != nil {
		panic(err)
	}
	defer func() { _ = s.Close(ctx) }()

	_, err = s.Open(ctx, "notes/today", 1) // epoch 1: the lease's revision in a cluster
	fmt.Println("open:", err)
	var last uint64
	for _, u := range []string{"hello", " world"} {
		p, err := s.Submit("notes/today", []byte(u))
		if err != nil {
			panic(err)
		}
		if last, err = p.Result(); err != nil { // acked by JetStream
			panic(err)
		}
	}
	if err := s.Compact(ctx, "notes/today", []byte("hello world"), last); err != nil {
		panic(err)
	}
	p, _ := s.Submit("notes/today", []byte("!"))
	_, _ = p.Result()

	st, err := s.Load(ctx, "notes/today")
	fmt.Printf("snapshot %q, then %d update(s): %q, %v\n", st.Snapshot, len(st.Tail), st.Tail[0].Data, err)
	fmt.Println("subject:", s.Subject("notes/today"))
	// Output:
	// open: notes/today: jetstream: document not found
	// snapshot "hello world", then 1 update(s): "!", <nil>
	// subject: collabd.ops.bm90ZXMvdG9kYXk
}
