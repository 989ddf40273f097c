package server

import (
	"fmt"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// BenchmarkBroadcast measures the owner's side of one fan-out: encode the
// update frame once and enqueue it to N sessions (in memory, no sockets).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			srv := &Server{cfg: Config{QueueBytes: 1 << 30}.withDefaults()}
			o := &owner{id: "d", srv: srv, ownerState: ownerState{subs: make(map[*session]bool)}}
			subs := make([]*session, n)
			for i := range subs {
				subs[i] = newSession(srv, nil, "s")
				subs[i].writing = true // no writer goroutine: the benchmark drains the queue
				o.subs[subs[i]] = true
			}
			src := crdt.NewDoc(crdt.Options{Agent: 1})
			_ = src.Text("t").Insert(0, "x")
			update := src.TakeUpdate()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				o.fanOut(protocol.Encode(&protocol.Update{Doc: "d", Update: update}), nil)
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
