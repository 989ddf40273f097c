package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed/natstest"
)

// TestStaleFence: a stale Open's fence (a lower epoch landing after the
// current writer's) does not stop the current writer, and a fence of a
// higher epoch does.
func TestStaleFence(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, nc, Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(ctx) }()
	const doc = "d"
	if _, err := s.Open(ctx, doc, 5); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	put := func(u string) error {
		p, err := s.Submit(doc, []byte(u))
		if err != nil {
			return err
		}
		_, err = p.Result()
		return err
	}
	if err := put("u1"); err != nil {
		t.Fatal(err)
	}
	fence := func(epoch uint64) {
		b := appendRecord(nil, &record{kind: recFence, epoch: epoch, writer: randomID()})
		if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: s.Subject(doc), Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	fence(3)
	if err := put("u2"); err != nil {
		t.Fatalf("write after a stale fence: %v", err)
	}
	st, err := s.Load(ctx, doc)
	if err != nil || len(st.Tail) != 2 {
		t.Fatalf("Load = %+v, %v; want u1, u2", st, err)
	}
	if _, err := s.Open(ctx, doc, 4); !errors.Is(err, ErrFenced) {
		t.Errorf("Open at a lower epoch = %v, want ErrFenced", err)
	}
	// A newer writer's fence, then a stale one after it: the stale one
	// must not let the deposed writer step over the newer one.
	fence(9)
	fence(2)
	if err := put("u3"); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after a newer fence = %v, want ErrFenced", err)
	}
	if err := put("u4"); !errors.Is(err, ErrFenced) {
		t.Fatalf("write of a fenced writer = %v, want ErrFenced", err)
	}
	if _, err := s.Open(ctx, doc, 9); err != nil {
		t.Fatalf("Open at the fence's epoch: %v", err)
	}
	if err := put("u5"); err != nil {
		t.Fatalf("write of the reopened writer: %v", err)
	}
	st, err = s.Load(ctx, doc)
	if err != nil || len(st.Tail) != 3 || string(st.Tail[2].Data) != "u5" {
		t.Fatalf("Load = %+v, %v; want u1, u2, u5", st, err)
	}
}

// TestLoadDuringCompaction: a compaction that purges between a read's two
// requests (the last record, then the records) with its snapshot record
// past the last record seen: the read goes on to the snapshot record
// instead of returning the tail without the snapshot that covers the
// purged records. It failed before (the owner-on-cluster test saw it).
func TestLoadDuringCompaction(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, nc, Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(ctx) }()
	if _, err := s.Open(ctx, "d", 1); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, u := range []string{"u1", "u2", "u3"} {
		p, err := s.Submit("d", []byte(u))
		if err != nil {
			t.Fatal(err)
		}
		seq, err := p.Result()
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	reader, err := New(ctx, nc, Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reader.Close(ctx) }()
	once := false
	reader.testHookRead = func() {
		if once {
			return
		}
		once = true
		// The owner compacted after u2 while u3 was being written.
		if err := s.Compact(ctx, "d", []byte("u1u2"), seqs[1]); err != nil {
			t.Error(err)
		}
	}
	st, err := reader.Load(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Snapshot) != "u1u2" || len(st.Tail) != 1 || string(st.Tail[0].Data) != "u3" {
		t.Errorf("Load = snapshot %q, %d updates; want u1u2 then u3", st.Snapshot, len(st.Tail))
	}
}
