package server

import (
	"fmt"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server/owner"
)

// BenchmarkBroadcast measures the server's side of one fan-out: the owner
// delivers one update event to N sessions, which encode it once (the
// event's memo) and enqueue the same frame (in memory, no sockets).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			srv := &Server{cfg: Config{QueueBytes: 1 << 30}.withDefaults()}
			subs := make([]*session, n)
			for i := range subs {
				subs[i] = newSession(srv, nil, "s")
				subs[i].writing = true // no writer goroutine: the benchmark drains the queue
			}
			src := crdt.NewDoc(crdt.Options{Agent: 1})
			_ = src.Text("t").Insert(0, "x")
			update := src.TakeUpdate()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev := &owner.UpdateEvent{Doc: "d", Updates: [][]byte{update}, From: 0, Version: 1}
				for _, s := range subs {
					s.Deliver(ev)
				}
				if i%64 == 63 { // what the write loops would do: drain
					for _, s := range subs {
						s.queue, s.queued = s.queue[:0], 0
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
		})
	}
}
