package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// BenchmarkFanOutLoopback: one writer, N readers over real loopback
// WebSockets; each op is timed from send until the last reader has it.
// Reports p50/p99 of that latency and of the writer's durable ack.
//
//	go test -run='^$' -bench=FanOutLoopback -benchtime=300x ./server
func BenchmarkFanOutLoopback(b *testing.B) {
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) {
			url := benchServer(b)

			got := make(chan time.Time, n*4)
			var wg sync.WaitGroup
			for i := range n {
				conn := benchDial(b, url, crdt.AgentID(100+i))
				wg.Add(1)
				go func() { // owned by the benchmark: ends when the connection closes
					defer wg.Done()
					for {
						_, data, err := conn.ReadMessage()
						if err != nil {
							return
						}
						if m, err := protocol.Decode(data, protocol.DecodeLimits{}); err == nil {
							if _, ok := m.(*protocol.Update); ok {
								got <- time.Now()
							}
						}
					}
				}()
				defer conn.Close()
			}
			w := benchDial(b, url, 1)
			defer w.Close()
			acks := make(chan time.Time, 16)
			go func() {
				for {
					_, data, err := w.ReadMessage()
					if err != nil {
						return
					}
					if m, err := protocol.Decode(data, protocol.DecodeLimits{}); err == nil {
						if a, ok := m.(*protocol.Ack); ok && a.Status == protocol.AckDurable {
							acks <- time.Now()
						}
					}
				}
			}()
			doc := crdt.NewDoc(crdt.Options{Agent: 1})
			var fan, first, each, durable []time.Duration
			for i := 0; b.Loop(); i++ {
				_ = doc.Text("t").Insert(0, "x")
				start := time.Now()
				_ = w.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Update{Doc: "bench", Batch: uint64(i + 1), Update: doc.TakeUpdate()}))
				var last time.Time
				for k := range n {
					last = <-got
					if k == 0 {
						first = append(first, last.Sub(start))
					}
					each = append(each, last.Sub(start))
				}
				fan = append(fan, last.Sub(start))
				durable = append(durable, (<-acks).Sub(start))
			}
			// fanout: until the last reader has the update; first: the
			// first reader; each: every reader's own latency (p50 over all).
			b.ReportMetric(pct(fan, 50), "fanout-p50-ms")
			b.ReportMetric(pct(fan, 99), "fanout-p99-ms")
			b.ReportMetric(pct(first, 50), "first-p50-ms")
			b.ReportMetric(pct(each, 50), "each-p50-ms")
			b.ReportMetric(pct(durable, 50), "durable-p50-ms")
			b.ReportMetric(pct(durable, 99), "durable-p99-ms")
		})
	}
}

func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)]) / 1e6
}

func benchDial(b *testing.B, url string, agent crdt.AgentID) *websocket.Conn {
	b.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	send := func(m protocol.Message) {
		if err := conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
			b.Fatal(err)
		}
	}
	send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{agent}})
	send(&protocol.Join{Doc: "bench", SV: crdt.StateVector{}})
	for { // welcome, then sync until final
		_, data, err := conn.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		m, err := protocol.Decode(data, protocol.DecodeLimits{})
		if err != nil {
			b.Fatal(err)
		}
		if s, ok := m.(*protocol.Sync); ok && s.Final {
			return conn
		}
	}
}

// BenchmarkDurableAcks: W writers on W documents each send one update per
// round at the same moment; each durable ack is timed from its send. Group
// commit should keep p99 close to one fsync pair.
//
//	go test -run='^$' -bench=DurableAcks -benchtime=100x ./server
func BenchmarkDurableAcks(b *testing.B) {
	const writers = 100
	url := benchServer(b)
	type ack struct {
		w  int
		at time.Time
	}
	acks := make(chan ack, writers*2)
	conns := make([]*websocket.Conn, writers)
	docs := make([]*crdt.Doc, writers)
	for i := range conns {
		conns[i] = benchDial(b, url, crdt.AgentID(1+i)) // joins "bench"; writers use their own documents below
		docs[i] = crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(1 + i)})
		c := conns[i]
		_ = c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Join{Doc: fmt.Sprintf("w%d", i), SV: crdt.StateVector{}}))
		go func() { // ends when the connection closes
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				if m, err := protocol.Decode(data, protocol.DecodeLimits{}); err == nil {
					if a, ok := m.(*protocol.Ack); ok && a.Status == protocol.AckDurable {
						acks <- ack{w: i, at: time.Now()}
					}
				}
			}
		}()
		defer c.Close()
	}
	var lat []time.Duration
	start := make([]time.Time, writers)
	for b.Loop() {
		for i, c := range conns {
			_ = docs[i].Text("t").Insert(0, "x")
			start[i] = time.Now()
			_ = c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Update{Doc: fmt.Sprintf("w%d", i), Batch: 1, Update: docs[i].TakeUpdate()}))
		}
		for range writers {
			a := <-acks
			lat = append(lat, a.at.Sub(start[a.w]))
		}
	}
	b.ReportMetric(pct(lat, 50), "durable-p50-ms")
	b.ReportMetric(pct(lat, 99), "durable-p99-ms")
}

// benchServer runs a server (no op rate limit) over a temporary store for
// the benchmark and returns its WebSocket URL; everything stops at cleanup.
func benchServer(b *testing.B) string {
	b.Helper()
	store, err := storage.Open(filepath.Join(b.TempDir(), "c.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, OpRate: 1e9, OpBurst: 1 << 24, MaxConnsPerIP: 1024})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		_ = store.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"
}
