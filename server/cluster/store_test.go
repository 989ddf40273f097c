package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage/jetstream"
)

// node is one collabd node's cluster side: its leases and its store.
type node struct {
	leases *cluster.Leases
	js     *jetstream.Store
	store  *cluster.Store
}

func newNode(t *testing.T, nc *nats.Conn, opts cluster.LeaseOptions) node {
	t.Helper()
	l := newLeases(t, nc, opts)
	js, err := jetstream.New(ctxT(t, 30*time.Second), nc, jetstream.Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.Close(context.Background()) })
	return node{l, js, cluster.NewStore(js, l)}
}

func durable(t *testing.T, p owner.Pending) error {
	t.Helper()
	select {
	case <-p.Done():
		_, err := p.Result()
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("write not completed within 20s")
		return nil
	}
}

// TestTwoOwners: an owner whose lease expires (it stopped renewing: a
// paused process) and the node that takes the document over. Exactly one
// of them can write at any time: the old owner's writes after the takeover
// are refused, never stored, and it cannot load the document again; every
// write acked to either is in the log.
func TestTwoOwners(t *testing.T) {
	c := natstest.Single(t)
	renew := make(chan time.Time)
	a := newNode(t, c.Connect(), cluster.LeaseOptions{Node: "a", TTL: time.Second, Renew: renew})
	b := newNode(t, c.Connect(), cluster.LeaseOptions{Node: "b", TTL: time.Second})
	ctx := ctxT(t, 30*time.Second)
	const doc = "shared/doc"

	if _, err := a.store.Load(ctx, doc); !errors.Is(err, cluster.ErrNotOwner) {
		t.Fatalf("Load without the lease = %v, want ErrNotOwner", err)
	}
	la, err := a.leases.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Load(ctx, doc); !errors.Is(err, owner.ErrNotFound) {
		t.Fatalf("Load of a new document = %v, want owner.ErrNotFound", err)
	}
	p, err := a.store.Submit(doc, []byte("a1"))
	if err != nil || durable(t, p) != nil {
		t.Fatalf("a1: %v", err)
	}

	// a pauses (no renewals); its lease expires and b takes over.
	if err := b.leases.AwaitFree(ctx, doc); err != nil {
		t.Fatal(err)
	}
	lb, err := b.leases.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Epoch <= la.Epoch {
		t.Fatalf("epochs %d then %d", la.Epoch, lb.Epoch)
	}
	st, err := b.store.Load(ctx, doc)
	if err != nil || len(st.Tail) != 1 || string(st.Tail[0].Data) != "a1" {
		t.Fatalf("b loads %+v, %v; want a1", st, err)
	}
	if p, err = b.store.Submit(doc, []byte("b1")); err != nil || durable(t, p) != nil {
		t.Fatalf("b1: %v", err)
	}

	// a resumes, before noticing the loss: its write is refused.
	p, err = a.store.Submit(doc, []byte("a2"))
	if err == nil {
		err = durable(t, p)
	}
	if !errors.Is(err, jetstream.ErrFenced) {
		t.Fatalf("the deposed owner's write = %v, want ErrFenced", err)
	}
	renew <- time.Now()
	waitClosed(t, la.Lost(), "deposed owner's lease")
	if _, err := a.store.Load(ctx, doc); !errors.Is(err, cluster.ErrNotOwner) {
		t.Errorf("the deposed owner reloads: %v, want ErrNotOwner", err)
	}
	if _, err := a.leases.Acquire(ctx, doc); !errors.Is(err, cluster.ErrHeld) {
		t.Errorf("the deposed owner acquires: %v, want ErrHeld", err)
	}

	log, err := b.js.Load(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range log.Tail {
		got = append(got, string(e.Data))
	}
	if strings.Join(got, ",") != "a1,b1" {
		t.Errorf("log = %v, want a1,b1", got)
	}

	// b compacts and deletes through the adapter; deleting twice is done.
	if err := b.store.Compact(ctx, doc, []byte("snap"), log.LastSeq); err != nil {
		t.Fatal(err)
	}
	if p, err = b.store.Delete(doc); err != nil || durable(t, p) != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.store.Load(ctx, doc); !errors.Is(err, owner.ErrDeleted) {
		t.Errorf("Load after Delete = %v, want owner.ErrDeleted", err)
	}
}
