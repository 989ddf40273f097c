package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// TestKillDashNine runs `collabd serve` as a subprocess, writes tagged
// batches, SIGKILLs the server at a random moment and restarts it, several
// times. Every batch acked durable must be in the document exactly once
// afterwards (a Jepsen-style set check: lost = 0, duplicated = 0). Batches
// not acked may or may not be there.
func TestKillDashNine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a subprocess")
	}
	bin := buildCollabd(t)
	data := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))
	t.Logf("seed %d", seed)
	acked := map[string]bool{}
	const cycles = 5
	for cycle := range cycles {
		cmd, url := startServe(t, bin, data)
		// Each cycle is a new replica (a restarted editor): new agent.
		agent := crdt.AgentID(1000 + cycle)
		c := dialProto(t, url, agent)
		c.send(&protocol.Join{Doc: "kill", SV: c.doc.StateVector()})
		c.sync()
		killAfter := time.Duration(50+rng.IntN(250)) * time.Millisecond
		kill := time.Now().Add(killAfter)
		for batch := uint64(1); time.Now().Before(kill); batch++ {
			tag := fmt.Sprintf("<%d.%d>", cycle, batch)
			_ = c.doc.Text("t").Insert(c.doc.Text("t").Len(), tag)
			c.send(&protocol.Update{Doc: "kill", Batch: batch, Update: c.doc.TakeUpdate()})
			for _, b := range c.drainDurable() {
				acked[fmt.Sprintf("<%d.%d>", cycle, b)] = true
			}
			if c.rejected > 0 {
				t.Fatalf("seed %d: %d batches rejected: the set check needs every batch applied or lost with the server", seed, c.rejected)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		for m := range c.msgs { // every ack that arrived before the kill; closed when the socket ends
			if a, ok := m.(*protocol.Ack); ok && a.Status == protocol.AckDurable {
				acked[fmt.Sprintf("<%d.%d>", cycle, a.Batch)] = true
			}
		}
	}
	cmd, url := startServe(t, bin, data)
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	c := dialProto(t, url, 1)
	c.send(&protocol.Join{Doc: "kill", SV: c.doc.StateVector()})
	c.sync()
	text := c.doc.Text("t").String()
	lost, dup := 0, 0
	for tag := range acked {
		switch n := strings.Count(text, tag); {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	if len(acked) == 0 {
		t.Fatal("no batch was acked durable; the test checked nothing")
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("seed %d: %d acked batches, %d lost, %d duplicated", seed, len(acked), lost, dup)
	}
	t.Logf("%d batches acked durable across %d kills: lost 0, duplicated 0", len(acked), cycles)
}

func startServe(t *testing.T, bin, data string) (*exec.Cmd, string) {
	t.Helper()
	// No op rate limit: the writers send as fast as they can, and a batch
	// refused for its rate would leave the later ones waiting for its ops.
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "warn", "--op-rate", "1e12", "--op-burst", "1000000000")
	cmd.Env = os.Environ()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n') // "listening on ADDR"
	if err != nil {
		t.Fatalf("server did not start: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return cmd, "ws://" + addr + "/v1/ws"
}

type protoClient struct {
	t    *testing.T
	conn *websocket.Conn
	doc  *crdt.Doc
	msgs chan protocol.Message // filled by the reader goroutine; closed when the connection ends

	rejected int // batches acked rejected (seen by drainDurable)
}

func dialProto(t *testing.T, url string, agent crdt.AgentID) *protoClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &protoClient{t: t, conn: conn, doc: crdt.NewDoc(crdt.Options{Agent: agent}), msgs: make(chan protocol.Message, 1024)}
	go func() { // owned by the test: ends when conn is closed or the server dies
		defer close(c.msgs)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	c.send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{agent}})
	if _, ok := c.read(5 * time.Second).(*protocol.Welcome); !ok {
		t.Fatal("no welcome")
	}
	return c
}

func (c *protoClient) send(m protocol.Message) {
	_ = c.conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)) // a killed server makes writes fail; acks decide
}

// read returns the next message, or nil when nothing arrives within d or the
// connection ended.
func (c *protoClient) read(d time.Duration) protocol.Message {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return nil
		}
		return m
	case <-timer.C:
		return nil
	}
}

func (c *protoClient) sync() {
	for {
		m := c.read(5 * time.Second)
		s, ok := m.(*protocol.Sync)
		if !ok {
			c.t.Fatalf("want sync, got %T", m)
		}
		if err := c.doc.ApplyUpdate(s.Update); err != nil {
			c.t.Fatal(err)
		}
		if s.Final {
			return
		}
	}
}

// drainDurable returns the batches acked durable among the frames received
// so far, without waiting.
func (c *protoClient) drainDurable() []uint64 {
	var out []uint64
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return out
			}
			if a, ok := m.(*protocol.Ack); ok && a.Status == protocol.AckDurable {
				out = append(out, a.Batch)
			} else if ok && a.Status == protocol.AckRejected {
				c.rejected++
			}
		default:
			return out
		}
	}
}

// TestGracefulShutdown: on SIGTERM the server tells clients to go away and
// come back after a jittered hint, flushes, and exits within 10 s; what was
// acked durable is there after a restart.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and signals a subprocess")
	}
	bin := buildCollabd(t)
	data := t.TempDir()
	cmd, url := startServe(t, bin, data)
	c := dialProto(t, url, 7)
	c.send(&protocol.Join{Doc: "g", SV: c.doc.StateVector()})
	c.sync()
	_ = c.doc.Text("t").Insert(0, "kept")
	c.send(&protocol.Update{Doc: "g", Batch: 1, Update: c.doc.TakeUpdate()})
	for durable := false; !durable; {
		m := c.read(5 * time.Second)
		if m == nil {
			t.Fatal("no durable ack")
		}
		a, ok := m.(*protocol.Ack)
		durable = ok && a.Status == protocol.AckDurable
	}
	// An SSE follower is streaming: it must not hold the shutdown up.
	sse, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(url, "ws"), "/v1/ws") + "/v1/docs/g/events")
	if err != nil || sse.StatusCode != 200 {
		t.Fatalf("SSE: %v", err)
	}
	defer sse.Body.Close()
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var goingAway *protocol.Error
	for m := range c.msgs {
		if e, ok := m.(*protocol.Error); ok && e.Code == protocol.CodeGoingAway {
			goingAway = e
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	if goingAway == nil || goingAway.RetryAfterMs < 0 {
		t.Fatalf("no going-away error with a retry hint: %+v", goingAway)
	}
	cmd, url = startServe(t, bin, data)
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	d := dialProto(t, url, 8)
	d.send(&protocol.Join{Doc: "g", SV: d.doc.StateVector()})
	d.sync()
	if got := d.doc.Text("t").String(); got != "kept" {
		t.Fatalf("after restart: %q", got)
	}
}
