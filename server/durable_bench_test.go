package server_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// BenchmarkDurableAcksPaced: 100 writers on 100 documents, each sending one
// update every 50 ms (a fast typist whose client batches keystrokes at
// 20 Hz), with random phases, so 2,000 updates/s reach the group commit
// unsynchronised. Reports the p50/p99 of send → durable ack. b.N is the
// number of updates per writer.
//
//	go test -run='^$' -bench=DurableAcksPaced -benchtime=100x ./server
func BenchmarkDurableAcksPaced(b *testing.B) {
	const (
		writers  = 100
		interval = 50 * time.Millisecond
	)
	url := benchServer(b)

	n := b.N
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	conns := make([]*websocket.Conn, writers)
	for i := range conns {
		conns[i] = benchDial(b, url, crdt.AgentID(1+i))
	}
	b.ResetTimer()
	for i, c := range conns {
		doc := fmt.Sprintf("p%d", i)
		_ = c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Join{Doc: doc, SV: crdt.StateVector{}}))
		sent := make([]time.Time, n+1) // by batch id; written before the send, read after the ack
		var sentMu sync.Mutex
		wg.Add(2)
		go func() { // reader: ends after the last durable ack or when the connection closes
			defer wg.Done()
			for got := 0; got < n; {
				_, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				m, err := protocol.Decode(data, protocol.DecodeLimits{})
				if a, ok := m.(*protocol.Ack); err == nil && ok && a.Doc == doc && a.Status == protocol.AckDurable {
					sentMu.Lock()
					d := time.Since(sent[a.Batch])
					sentMu.Unlock()
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					got++
				}
			}
		}()
		go func() { // writer: n updates, one per interval, random phase
			defer wg.Done()
			d := crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(1 + i)})
			t := time.NewTimer(rand.N(interval))
			defer t.Stop()
			for batch := 1; batch <= n; batch++ {
				<-t.C
				t.Reset(interval)
				_ = d.Text("t").Insert(0, "x")
				sentMu.Lock()
				sent[batch] = time.Now()
				sentMu.Unlock()
				if err := c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Update{Doc: doc, Batch: uint64(batch), Update: d.TakeUpdate()})); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	for _, c := range conns {
		_ = c.Close()
	}
	b.ReportMetric(pct(lat, 50), "durable-p50-ms")
	b.ReportMetric(pct(lat, 99), "durable-p99-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "acks/s")
}
