package cluster

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed/natstest"
)

// benchOutbox publishes 1 KiB events to a subject a second connection
// drains: directly on the owner's goroutine (how owners published before
// the outbox), or through an outbox (the owner only pushes).
func benchOutbox(b *testing.B, outboxed bool) {
	c := natstest.Single(b)
	pub, sub := c.Connect(), c.Connect()
	var got atomic.Int64
	s, err := sub.Subscribe("bench.ev", func(*nats.Msg) { got.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	_ = s.SetPendingLimits(-1, -1)
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 1<<10)
	var overflows atomic.Int64
	publish := func(m []byte) error { return pub.Publish("bench.ev", m) }
	send := publish
	if outboxed {
		o := newOutbox(32<<20, publish, func(string) { overflows.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { o.run(ctx); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		send = func(m []byte) error { o.push(m, false); return nil }
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = send(msg)
	}
	b.ReportMetric(float64(overflows.Load()), "overflows")
}

func BenchmarkOwnerPublishDirect(b *testing.B) { benchOutbox(b, false) }
func BenchmarkOwnerPublishOutbox(b *testing.B) { benchOutbox(b, true) }
