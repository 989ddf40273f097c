package cluster

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
)

// TestOutboxBound: a subscriber node whose messages cannot be published
// (nats.go blocked) never blocks the pushes; past the byte bound the queue
// is dropped and the overflow reported once; a soft event past the bound
// is only dropped; once publishing resumes everything queued before the
// bound went out in order.
func TestOutboxBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var sent []string
		var overflows []string
		o := newOutbox(1000,
			func(b []byte) error { <-release; sent = append(sent, string(b)); return nil },
			func(reason string) { overflows = append(overflows, reason) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { o.run(ctx); close(done) }()

		msg := func(i int) []byte { return fmt.Appendf(nil, "%099d", i) } // 99 bytes
		// The first message is taken by run and blocks in publish: it
		// still counts against the bound.
		if !o.push(msg(0), false) {
			t.Fatal("push(0) refused on an empty outbox")
		}
		synctest.Wait()
		if got := o.bytes(); got != 99 {
			t.Fatalf("bytes() = %d with one message being published, want 99", got)
		}
		for i := 1; i < 10; i++ {
			if !o.push(msg(i), false) {
				t.Fatalf("push(%d) refused at %d bytes", i, o.bytes())
			}
		}
		if o.push(msg(10), true) {
			t.Error("a soft push past the bound was queued")
		}
		if len(overflows) != 0 {
			t.Fatalf("a soft push past the bound dropped the node: %v", overflows)
		}
		if o.push(msg(11), false) {
			t.Error("a push past the bound was queued")
		}
		if len(overflows) != 1 {
			t.Fatalf("overflows = %v, want one", overflows)
		}
		if got := o.bytes(); got != 99 {
			t.Errorf("bytes() = %d after the overflow, want 99 (the one being published)", got)
		}
		o.notice([]byte("rejoin"))
		close(release)
		synctest.Wait()
		want := []string{string(msg(0)), "rejoin"}
		if fmt.Sprint(sent) != fmt.Sprint(want) {
			t.Errorf("published %q, want %q", sent, want)
		}
		if got := o.bytes(); got != 0 {
			t.Errorf("bytes() = %d once everything went out, want 0", got)
		}
		cancel()
		<-done
	})
}

// TestOutboxTakesOneLargeMessage: an empty outbox takes a message larger
// than its bound (a sync of a large document), else the node's
// subscribers would rejoin for ever; the next one past the bound is
// refused while it is held.
func TestOutboxTakesOneLargeMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		overflows := 0
		o := newOutbox(100, func([]byte) error { <-release; return nil }, func(string) { overflows++ })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { o.run(ctx); close(done) }()
		if !o.push(make([]byte, 500), false) {
			t.Fatal("an empty outbox refused a message larger than its bound")
		}
		if o.push([]byte("x"), false) || overflows != 1 {
			t.Errorf("a message behind one past the bound: taken, or %d overflows (want refused, 1)", overflows)
		}
		close(release)
		synctest.Wait()
		if !o.push([]byte("y"), false) {
			t.Error("the outbox, empty again, refused a small message")
		}
		cancel()
		<-done
	})
}

// TestOutboxPublishFailure: a publish that fails drops the node's
// subscribers (their events are lost).
func TestOutboxPublishFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var overflows []string
		o := newOutbox(1000, func([]byte) error { return fmt.Errorf("nats: connection closed") },
			func(reason string) { overflows = append(overflows, reason) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { o.run(ctx); close(done) }()
		o.push([]byte("a"), false)
		synctest.Wait()
		if len(overflows) != 1 {
			t.Errorf("overflows = %v after a failed publish, want one", overflows)
		}
		cancel()
		<-done
	})
}
