package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// clusterNode is one collabd node of an in-process cluster: its own NATS
// connection, leases, membership, replicated store and server.
type clusterNode struct {
	t       *testing.T
	id      string
	nc      *nats.Conn
	leases  *cluster.Leases
	members *cluster.Members
	logs    *jetstream.Store
	store   *storage.Store
	srv     *server.Server
	http    *httptest.Server
	url     string
	stopped bool
}

const testLeaseTTL = time.Second

func startClusterNode(t *testing.T, c *natstest.Cluster, id string) *clusterNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := &clusterNode{t: t, id: id, nc: c.Connect()}
	var err error
	if n.logs, err = jetstream.New(ctx, n.nc, jetstream.Options{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if n.leases, err = cluster.NewLeases(ctx, n.nc, cluster.LeaseOptions{Node: id, TTL: testLeaseTTL, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if n.members, err = cluster.Join(ctx, n.nc, cluster.MemberOptions{Node: id, TTL: testLeaseTTL, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if n.store, err = storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{}); err != nil {
		t.Fatal(err)
	}
	n.srv, err = server.New(server.Config{Store: n.store, IdleUnload: time.Minute, Logger: testLogger(t, id),
		Cluster: &server.ClusterConfig{Conn: n.nc, Leases: n.leases, Members: n.members, Logs: n.logs}})
	if err != nil {
		t.Fatal(err)
	}
	n.http = httptest.NewServer(n.srv.Handler())
	n.url = "ws" + strings.TrimPrefix(n.http.URL, "http") + "/v1/ws"
	t.Cleanup(n.stop)
	return n
}

// stop is a graceful stop (SIGTERM): leave, hand the documents over.
func (n *clusterNode) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("%s: shutdown: %v", n.id, err)
	}
	n.http.Close()
	_ = n.leases.Close(ctx)
	_ = n.members.Leave(ctx)
	_ = n.logs.Close(ctx)
	n.nc.Close()
	_ = n.store.Close()
}

// crash plays a node that dies (SIGKILL): its NATS connection and its
// clients' connections drop at once; nothing is released, its leases and
// membership expire after the TTL. Its goroutines are stopped afterwards
// (a shutdown that can no longer reach anything).
func (n *clusterNode) crash() {
	n.stopped = true
	n.nc.Close()
	n.http.CloseClientConnections()
	n.http.Close()
	n.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx) // its store is unreachable: what it says does not matter
		_ = n.store.Close()
	})
}

func startCluster(t *testing.T) []*clusterNode {
	t.Helper()
	c := natstest.Start(t, 3)
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = startClusterNode(t, c, fmt.Sprintf("c%d", i+1))
	}
	// Every node sees every other before placement is used.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			live, changed := n.members.Live()
			if len(live) == 3 {
				break
			}
			select {
			case <-changed:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s sees %v", n.id, live)
			}
		}
	}
	return nodes
}

// holder is the node holding doc's lease ("" if none).
func holder(t *testing.T, n *clusterNode, doc string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, _, err := n.leases.Holder(ctx, doc)
	if err != nil {
		return ""
	}
	return h
}

// text waits until c's replica of doc has every piece, reading what the
// server sends (updates applied; acks ignored).
func (c *client) waitText(doc string, pieces []string) string {
	c.t.Helper()
	for {
		s := c.doc.Text("body").String()
		if allIn(s, pieces) {
			return s
		}
		switch m := c.read().(type) {
		case *protocol.Update:
			if err := c.doc.ApplyUpdate(m.Update); err != nil {
				c.t.Fatal(err)
			}
		case *protocol.Ack:
		case *protocol.Error:
			c.t.Fatalf("error while waiting for %v: %v", pieces, m)
		}
	}
}

// awaitDurable reads until batch is acked durable, applying the updates
// that come meanwhile.
func (c *client) awaitDurable(batch uint64) {
	c.t.Helper()
	for {
		switch m := c.read().(type) {
		case *protocol.Update:
			if err := c.doc.ApplyUpdate(m.Update); err != nil {
				c.t.Fatal(err)
			}
		case *protocol.Ack:
			if m.Batch == batch && m.Status == protocol.AckDurable {
				return
			}
			if m.Status == protocol.AckRejected {
				c.t.Fatalf("batch %d rejected", m.Batch)
			}
		case *protocol.Error:
			c.t.Fatalf("error %v", m)
		}
	}
}

func allIn(s string, pieces []string) bool {
	for _, p := range pieces {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestClusterConverge: three collabd nodes on a 3-node JetStream
// cluster; clients on different nodes edit one document (two of them are
// forwarded to the owner node) and converge, every edit acked durable.
func TestClusterConverge(t *testing.T) {
	nodes := startCluster(t)
	const doc = "shared"
	clients := make([]*client, 3)
	for i, n := range nodes {
		clients[i] = dial(t, n.url, crdt.AgentID(i+1))
		clients[i].join(doc)
	}
	owner := holder(t, nodes[0], doc)
	if owner == "" {
		t.Fatal("nobody holds the document's lease")
	}
	var pieces []string
	for i, c := range clients {
		p := fmt.Sprintf("<%d>", i)
		pieces = append(pieces, p)
		c.edit(doc, uint64(i+1), func(x *crdt.Text) error { return x.Insert(0, p) })
		c.awaitDurable(uint64(i + 1))
	}
	var texts []string
	for _, c := range clients {
		texts = append(texts, c.waitText(doc, pieces))
	}
	for i, s := range texts {
		if s != texts[0] {
			t.Errorf("client %d has %q, client 0 %q", i, s, texts[0])
		}
	}
	t.Logf("owner %s; text %q", owner, texts[0])
}

// testLogger logs to the test's output, prefixed with the node's id.
func testLogger(t *testing.T, id string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
