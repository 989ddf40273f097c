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
