// Package natstest starts embedded NATS JetStream servers on loopback for
// tests: one node, or an N-node cluster in the test's process, each node
// with its own t.TempDir store, all stopped by t.Cleanup.
package natstest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed"
)

// Cluster is a set of running embedded nodes.
type Cluster struct {
	t     testing.TB
	Nodes []*natsembed.Server // nil once killed
	cfgs  []natsembed.Config
}

// Single starts one node (JetStream, not clustered).
func Single(t testing.TB) *Cluster { t.Helper(); return SingleWith(t, nil) }

// SingleWith is Single with its config changed by configure (if not nil)
// before the node starts.
func SingleWith(t testing.TB, configure func(*natsembed.Config)) *Cluster {
	t.Helper()
	cfg := natsembed.Config{Name: "n1", StoreDir: t.TempDir()} // before the shutdown cleanup
	if configure != nil {
		configure(&cfg)
	}
	s, err := natsembed.Start(cfg)
	if err != nil {
		t.Fatalf("natstest: start: %v", err)
	}
	c := &Cluster{t: t, Nodes: []*natsembed.Server{s}, cfgs: []natsembed.Config{cfg}}
	t.Cleanup(c.shutdown)
	return c
}

// Start starts an n-node JetStream cluster on loopback. The route ports are
// reserved by listening on port 0 and closing; every node lists every
// route, so the JetStream meta group knows its size from the start.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, nil)
}

// StartWith is Start with each node's Config passed through configure
// (node index, its config) before it starts: TLS, secrets.
func StartWith(t testing.TB, n int, configure func(int, *natsembed.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	t.Cleanup(c.shutdown)
	// A reserved port can be taken by another process between its reservation
	// and the node's listen (test binaries run in parallel): the node then
	// never becomes ready. The cluster is started again on fresh ports.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := c.start(n, configure)
		if err == nil {
			return c
		}
		c.shutdown()
		c.Nodes, c.cfgs = nil, nil
		if attempt == attempts {
			t.Fatalf("natstest: %v (attempt %d of %d)", err, attempt, attempts)
		}
		t.Logf("natstest: %v; starting the cluster again on fresh ports", err)
	}
}

// start starts the n nodes of StartWith once.
func (c *Cluster) start(n int, configure func(int, *natsembed.Config)) error {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("reserve port: %w", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close() // reserved only to learn a free port
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range n {
		cfg := natsembed.Config{
			Name:          fmt.Sprintf("n%d", i+1),
			StoreDir:      c.t.TempDir(), // before the shutdown cleanup, which runs first
			ClusterName:   "test",
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:        routes,
			ReadyTimeout:  20 * time.Second, // a loaded 2-core machine, other test binaries beside
		}
		if configure != nil {
			configure(i, &cfg)
		}
		s, err := natsembed.Start(cfg)
		if err != nil {
			return fmt.Errorf("start node %d: %w", i+1, err)
		}
		c.Nodes = append(c.Nodes, s)
		c.cfgs = append(c.cfgs, cfg)
	}
	return nil
}

// URLs lists the running nodes' client URLs, comma-separated (what
// nats.Connect takes).
func (c *Cluster) URLs() string {
	var s string
	for _, n := range c.Nodes {
		if n == nil {
			continue
		}
		if s != "" {
			s += ","
		}
		s += n.ClientURL()
	}
	return s
}

// Connect connects to the running nodes (closed by t.Cleanup). The client
// reconnects forever, fast, so that killing a node only moves it.
func (c *Cluster) Connect(opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(c.URLs(), opts...)
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// ConnectTo connects to node i only.
func (c *Cluster) ConnectTo(i int, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.Nodes[i].ClientURL(), opts...)
	if err != nil {
		c.t.Fatalf("natstest: connect to node %d: %v", i+1, err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Kill stops node i (nats-server's Shutdown, in-process: the node closes
// its connections at once, though a stream leader may first hand its
// leadership over; a SIGKILL needs a subprocess, the chaos tool's job).
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if c.Nodes[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Nodes[i].Shutdown(ctx); err != nil {
		c.t.Errorf("natstest: kill node %d: %v", i+1, err)
	}
	c.Nodes[i] = nil
}

// Restart starts a killed node i again on its store and route port.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i] != nil {
		c.t.Fatalf("natstest: node %d is running", i+1)
	}
	s, err := natsembed.Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("natstest: restart node %d: %v", i+1, err)
	}
	c.Nodes[i] = s
}

func (c *Cluster) shutdown() {
	for i := range c.Nodes {
		c.Kill(i)
	}
}
