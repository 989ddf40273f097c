package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// unansweredKV is a lease bucket whose first reads go unanswered (they
// wait for their context), as a read reaching the bucket while its
// leading NATS server is replaced.
type unansweredKV struct {
	jetstream.KeyValue
	silent int32
	calls  atomic.Int32
}

func (k *unansweredKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if k.calls.Add(1) <= k.silent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return leaseEntry{}, nil
}

type leaseEntry struct{ jetstream.KeyValueEntry }

func (leaseEntry) Value() []byte    { return []byte("n2") }
func (leaseEntry) Revision() uint64 { return 7 }

// A lease read that goes unanswered is sent again after a TTL, not left to
// wait for the caller's whole deadline.
func TestHolderRetriesUnansweredRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := &unansweredKV{silent: 2}
		l := &Leases{opts: LeaseOptions{TTL: 2 * time.Second}, kv: kv}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		h, rev, err := l.Holder(ctx, "d")
		if err != nil || h != "n2" || rev != 7 {
			t.Fatalf("Holder = %q, %d, %v", h, rev, err)
		}
		if took := time.Since(start); took != 4*time.Second || kv.calls.Load() != 3 {
			t.Errorf("answered after %v and %d reads, want 4s (two unanswered reads of a TTL each) and 3", took, kv.calls.Load())
		}

		// The caller's deadline still ends it.
		kv = &unansweredKV{silent: 100}
		l.kv = kv
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start = time.Now()
		if _, _, err := l.Holder(ctx, "d"); err == nil || time.Since(start) != 5*time.Second {
			t.Errorf("Holder past the caller's deadline = %v after %v, want an error after 5s", err, time.Since(start))
		}
	})
}
