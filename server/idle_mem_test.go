package server_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// BenchmarkIdleSessionStacks opens 300 connections to an in-process
// server, each joining its own document, and reports what stays when they
// go idle: server goroutines per connection (its read loop; a sleeping
// document owner has none) and goroutine stack bytes per connection, after
// the garbage collector has run. The clients are gorilla connections
// without goroutines of their own, so every goroutine and stack counted is
// the server's. Heap is not reported: the clients' share it.
//
// Run one sub-benchmark per process (the stacks of one server's
// connections are still cached when the next measures):
//
//	go test -run='^$' -bench='IdleSessionStacks/joined$' -benchtime=1x ./server
//	go test -run='^$' -bench='IdleSessionStacks/joined\+pong' -benchtime=1x ./server
//	go test -run='^$' -bench='IdleSessionStacks/joined\+wspong' -benchtime=1x ./server
//	go test -run='^$' -bench='IdleSessionStacks/y-websocket' -benchtime=1x ./server
func BenchmarkIdleSessionStacks(b *testing.B) {
	const n = 300
	// pong: then one keepalive answer (a protocol Pong, or a WebSocket
	// control pong: the Yjs doors' keepalive, which gorilla handles inside
	// its read of the next message unless the read loop takes it first).
	// y-websocket: a y-websocket door's connection (its join is the
	// upgrade) that sends its sync step 1 and gets the step 2.
	for _, pong := range []string{"", "pong", "wspong", "y-websocket"} {
		name := "joined"
		switch pong {
		case "":
		case "y-websocket":
			name = pong
		default:
			name += "+" + pong
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				stacks, goroutines := idleStacks(b, n, pong)
				b.ReportMetric(stacks, "stack-B/conn")
				b.ReportMetric(goroutines, "goroutines/conn")
			}
		})
	}
}

func idleStacks(b *testing.B, n int, pong string) (stackPerConn, goroutinesPerConn float64) {
	ts := startServerWith(b, b.TempDir(), server.Config{MaxConnsPerIP: n + 10, IdleUnload: time.Minute})
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	for i := range n {
		if pong == "y-websocket" {
			yWebsocketIdle(b, strings.TrimSuffix(ts.url, "/v1/ws")+fmt.Sprintf("/v1/yjs/d%d", i))
			continue
		}
		c := dial(b, ts.url, crdt.AgentID(i+1))
		c.join(fmt.Sprintf("d%d", i))
		switch pong {
		case "pong":
			c.send(&protocol.Pong{Nonce: 1}) // what every client sends every PingInterval
		case "wspong":
			if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The owners sleep once their join's presence flush has gone out: wait
	// for that (at most 5 s; this is a measurement, not a test).
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > g0+n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms1)
	g1 := runtime.NumGoroutine()
	ts.stop()
	return float64(ms1.StackInuse-ms0.StackInuse) / float64(n), float64(g1-g0) / float64(n)
}

// yWebsocketIdle opens a y-websocket connection to url, sends the sync
// step 1 of an empty document and waits for the server's step 2.
func yWebsocketIdle(b *testing.B, url string) {
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	// message sync (0), step 1 (0), the state vector's bytes: one, an empty vector
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte{0, 0, 1, 0}); err != nil {
		b.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if len(m) >= 2 && m[0] == 0 && m[1] == 1 { // sync step 2
			return
		}
	}
}

// BenchmarkFirstEditAfterIdle times the first edit on a document that has
// been idle: a client joins its document, stays quiet for idle (long
// enough for the owner to have gone to sleep), then sends one update and
// waits for its applied ack. The time is the round trip of that edit over
// loopback, wake included.
//
//	go test -run='^$' -bench=FirstEditAfterIdle -benchtime=200x ./server
func BenchmarkFirstEditAfterIdle(b *testing.B) {
	const idle = 20 * time.Millisecond
	ts := startServerWith(b, b.TempDir(), server.Config{IdleUnload: time.Minute})
	c := dial(b, ts.url, 1)
	c.join("first-edit")
	batch := uint64(0)
	var took []time.Duration
	for b.Loop() {
		time.Sleep(idle) // the scenario: the document idles (the owner sleeps) before the edit
		batch++
		start := time.Now()
		c.edit("first-edit", batch, func(x *crdt.Text) error { return x.Insert(0, "x") })
		for {
			if a, ok := c.read().(*protocol.Ack); ok && a.Batch == batch && a.Status == protocol.AckApplied {
				break
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
