package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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

// testIdle is how long a document nobody uses stays owned by a test node.
const testIdle = 300 * time.Millisecond

func startClusterNode(t *testing.T, c *natstest.Cluster, id string, ttl time.Duration, pace *pacer) *clusterNode {
	t.Helper()
	return startClusterNodeWith(t, c, id, ttl, pace, nil)
}

// startClusterNodeWith is startClusterNode with the cluster config and the
// server config changed by with (nil: as they are).
func startClusterNodeWith(t *testing.T, c *natstest.Cluster, id string, ttl time.Duration, pace *pacer, with func(*server.Config)) *clusterNode {
	t.Helper()
	var renew, beat <-chan time.Time
	if pace != nil {
		renew, beat = pace.renew, pace.beat
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := &clusterNode{t: t, id: id, nc: c.Connect()}
	var err error
	if n.logs, err = jetstream.New(ctx, n.nc, jetstream.Options{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if n.leases, err = cluster.NewLeases(ctx, n.nc, cluster.LeaseOptions{Node: id, TTL: ttl, Replicas: 3, Renew: renew}); err != nil {
		t.Fatal(err)
	}
	if n.members, err = cluster.Join(ctx, n.nc, cluster.MemberOptions{Node: id, TTL: ttl, Replicas: 3, Beat: beat}); err != nil {
		t.Fatal(err)
	}
	if n.store, err = storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: n.store, IdleUnload: testIdle, Logger: testLogger(t, id),
		Cluster: &server.ClusterConfig{Conn: n.nc, Leases: n.leases, Members: n.members, Logs: n.logs}}
	if with != nil {
		with(&cfg)
	}
	n.srv, err = server.New(cfg)
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

// startCluster starts three nodes, c1..c3, whose leases and membership
// last ttl; c1's renewals and heartbeats come from pace when it is set.
func startCluster(t *testing.T, ttl time.Duration, pace *pacer) []*clusterNode {
	t.Helper()
	c := natstest.Start(t, 3)
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		var p *pacer
		if i == 0 {
			p = pace
		}
		nodes[i] = startClusterNode(t, c, fmt.Sprintf("c%d", i+1), ttl, p)
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
// forwarded to the owner node) and converge, every edit acked durable; an
// SSE follower on a node that does not own the document sees every change;
// the HTTP API's edits, reads and long polls on any node reach the owner.
func TestClusterConverge(t *testing.T) {
	nodes := startCluster(t, time.Second, nil)
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
	// An SSE follower on a node that does not own the document.
	var followAt *clusterNode
	for _, n := range nodes {
		if n.id != owner {
			followAt = n
		}
	}
	feed := openSSE(t, followAt.http.URL+"/v1/docs/"+doc+"/events", nil)
	var ft followerText
	ft.apply(t, feed.next(true))
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
	for string(ft.text) != texts[0] {
		ft.apply(t, feed.next(true))
	}
	t.Logf("owner %s; text %q; follower on %s", owner, texts[0], followAt.id)

	// The HTTP API on a node that does not own the document: a REST edit
	// (acked durable by the owner), then the text from every node.
	resp, err := http.Post(followAt.http.URL+"/v1/docs/"+doc+"/edits", "application/json", strings.NewReader(`{"edits": [[0, 0, "<rest>"]]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST edit on %s: %d %s", followAt.id, resp.StatusCode, b)
	}
	for _, n := range nodes {
		resp, err := http.Get(n.http.URL + "/v1/docs/" + doc + "/text")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "<rest>"+texts[0]) {
			t.Errorf("GET text on %s = %d %s, want <rest>%s", n.id, resp.StatusCode, b, texts[0])
		}
	}
	// The owner node's metrics count the document and the subscribers
	// forwarded to it.
	resp, err = http.Get(nodeByID(nodes, owner).http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"collabd_cluster_owned_documents 1", "collabd_cluster_forwarded_in 3"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("owner's metrics lack %q", want)
		}
	}
	// A long poll on a node that does not own the document: no since, a
	// reset with the current text.
	if code, body := do(t, "GET", followAt.http.URL+"/v1/docs/"+doc+"/changes?wait=0s", ""); code != http.StatusOK || !strings.Contains(body, `\u003crest\u003e`) {
		t.Errorf("long poll on %s = %d %s, want the text", followAt.id, code, body)
	}
	resp, err = http.Get(followAt.http.URL + "/v1/docs/never-written")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a document never written on %s = %d, want 404", followAt.id, resp.StatusCode)
	}
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

// docPlacedOn is a document id whose first placement over c1..c3 is node.
func docPlacedOn(node string) string {
	for i := 0; ; i++ {
		doc := fmt.Sprintf("doc%d", i)
		if cluster.Place(doc, []string{"c1", "c2", "c3"}) == node {
			return doc
		}
	}
}

// writer is a client that edits until each edit is acked durable,
// rejoining (and resending what the server lacks) whenever the server says
// to, as the real clients do.
type writer struct {
	*client
	doc   string
	batch uint64
	acked []string // pieces acked durable
}

// insert inserts piece and returns once it is durable.
func (w *writer) insert(piece string) {
	w.t.Helper()
	w.batch++
	want := w.batch
	w.edit(w.doc, want, func(x *crdt.Text) error { return x.Insert(0, piece) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		switch m := w.read().(type) {
		case *protocol.Update:
			if err := w.doc_().ApplyUpdate(m.Update); err != nil {
				w.t.Fatal(err)
			}
		case *protocol.Ack:
			if m.Batch == want && m.Status == protocol.AckDurable {
				w.acked = append(w.acked, piece)
				return
			}
		case *protocol.Error:
			if !m.Code.Retry() {
				w.t.Fatalf("terminal error %v", m)
			}
			if want = w.rejoin(m.RetryAfterMs); want == 0 {
				w.acked = append(w.acked, piece) // the new owner loaded it: it was durable
				return
			}
		}
	}
	w.t.Fatalf("%q not durable within 30 s", piece)
}

func (w *writer) doc_() *crdt.Doc { return w.client.doc }

// rejoin joins again after the hint, applies the sync and sends what the
// server lacks; it returns that batch (0: the server lacks nothing).
func (w *writer) rejoin(retryMs int) uint64 {
	w.t.Helper()
	if retryMs > 0 { // the client's backoff, as the server asks
		<-time.After(time.Duration(retryMs) * time.Millisecond)
	}
	w.send(&protocol.Join{Doc: w.doc, SV: w.doc_().StateVector()})
	return w.joined()
}

// joined completes a rejoin whose Join was sent: it applies the sync and
// sends what the server lacks; it returns that batch (0: nothing).
func (w *writer) joined() uint64 {
	w.t.Helper()
	for {
		switch m := w.read().(type) {
		case *protocol.Sync:
			if err := w.doc_().ApplyUpdate(m.Update); err != nil {
				w.t.Fatal(err)
			}
			if !m.Final {
				continue
			}
			missing := w.doc_().EncodeDiff(m.SV)
			if emptyUpdate(missing) {
				return 0
			}
			w.batch++
			w.send(&protocol.Update{Doc: w.doc, Batch: w.batch, Update: missing})
			return w.batch
		case *protocol.Update:
			if err := w.doc_().ApplyUpdate(m.Update); err != nil {
				w.t.Fatal(err)
			}
		case *protocol.Error:
			if !m.Code.Retry() {
				w.t.Fatalf("terminal error %v", m)
			}
			if m.Batch == 0 { // the join itself was refused: again
				return w.rejoin(max(m.RetryAfterMs, 50))
			}
		}
	}
}

// checkSet joins doc on n with a fresh client and checks the set: every
// acked piece is in the text exactly once.
func checkSet(t *testing.T, n *clusterNode, doc string, agent crdt.AgentID, writers ...*writer) {
	t.Helper()
	c := dial(t, n.url, agent)
	c.join(doc)
	text := c.doc.Text("body").String()
	acked := 0
	for _, w := range writers {
		for _, p := range w.acked {
			acked++
			if k := strings.Count(text, p); k != 1 {
				t.Errorf("acked %q is in the reloaded text %d times", p, k)
			}
		}
	}
	t.Logf("%d acked pieces, all present once; text %d bytes", acked, len(text))
}

// TestClusterIdleRelease: once nobody on any node uses a document, its
// owner node gives it up after IdleUnload: the owner unloads, the lease is
// released (free at once, not after the TTL); the next join loads it again
// from JetStream, on whichever node placement picks.
func TestClusterIdleRelease(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c2")
	w := &writer{client: dial(t, nodes[0].url, 41), doc: doc}
	w.join(doc)
	w.insert("[kept]")
	if h := holder(t, nodes[0], doc); h != "c2" {
		t.Fatalf("held by %q, want c2", h)
	}
	w.send(&protocol.Leave{Doc: doc})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second) // less than the TTL: a release, not an expiry
	defer cancel()
	start := time.Now()
	if err := nodes[0].leases.AwaitFree(ctx, doc); err != nil {
		t.Fatalf("the lease was not released within 4 s: %v", err)
	}
	t.Logf("released %v after the leave (IdleUnload %v)", time.Since(start), testIdle)
	checkSet(t, nodes[2], doc, 42, w)
}

// TestClusterPresence: presence between sessions on the two nodes that do
// not own the document (both forwarded): each sees the other join, a caret
// move, and a leave.
func TestClusterPresence(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	start := time.Now()
	a, av := dialPresence(t, nodes[1].url, "", 51)
	b, bv := dialPresence(t, nodes[2].url, "", 52)
	a.join(doc)
	b.join(doc)
	t.Logf("joined %v", time.Since(start))
	bv.until(t, b, "both peers", func() bool { return len(bv.peers) == 2 })
	t.Logf("peers %v", time.Since(start))
	if p := bv.peers[av.session]; p.User.Name == "" {
		t.Errorf("the forwarded peer has no user: %+v", p)
	}
	a.send(&protocol.PresenceSet{Doc: doc, State: caretAt(7)})
	bv.until(t, b, "a's caret", func() bool { return posOf(bv.peers[av.session]) == 7 })
	a.send(&protocol.Leave{Doc: doc})
	t.Logf("caret %v", time.Since(start))
	bv.until(t, b, "a gone", func() bool { _, ok := bv.peers[av.session]; return !ok })
	t.Logf("gone %v", time.Since(start))
}

// do sends an HTTP request and returns the status and body.
func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterHTTPRequests: creating and deleting a document through a
// node that does not own it (forwarded by request/reply).
func TestClusterHTTPRequests(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	at := nodes[1].http.URL
	if code, body := do(t, "POST", at+"/v1/docs", `{"id": "`+doc+`", "kind": "yjs"}`); code != http.StatusCreated {
		t.Fatalf("create through c2 = %d %s", code, body)
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Errorf("held by %q, want c1", h)
	}
	if code, body := do(t, "POST", nodes[2].http.URL+"/v1/docs", `{"id": "`+doc+`", "kind": "native"}`); code != http.StatusConflict {
		t.Errorf("second create through c3 = %d %s, want 409", code, body)
	}
	if code, body := do(t, "GET", at+"/v1/docs/"+doc, ""); code != http.StatusOK || !strings.Contains(body, `"yjs"`) {
		t.Errorf("GET through c2 = %d %s, want a yjs document", code, body)
	}
	if code, body := do(t, "DELETE", at+"/v1/docs/"+doc, ""); code/100 != 2 {
		t.Fatalf("delete through c2 = %d %s", code, body)
	}
	if code, body := do(t, "GET", nodes[2].http.URL+"/v1/docs/"+doc, ""); code/100 == 2 {
		t.Errorf("GET after the delete through c3 = %d %s", code, body)
	}
}

// metric reads one counter or gauge from a node's /metrics.
func metric(t *testing.T, n *clusterNode, name string) float64 {
	t.Helper()
	_, body := do(t, "GET", n.http.URL+"/metrics", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}

// TestClusterFanOutOncePerNode: three sessions on one node and a writer on
// another, both forwarded to the owner: each update goes to the sessions'
// node once in full and twice as a reference; all three sessions get every
// update.
func TestClusterFanOutOncePerNode(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	var readers []*client
	for i := range 3 {
		c := dial(t, nodes[1].url, crdt.AgentID(61+i))
		c.join(doc)
		readers = append(readers, c)
	}
	w := &writer{client: dial(t, nodes[2].url, 69), doc: doc}
	w.join(doc)
	full0, refs0 := metric(t, nodes[0], "collabd_cluster_fanout_full_total"), metric(t, nodes[0], "collabd_cluster_fanout_refs_total")
	var pieces []string
	for k := range 5 {
		p := fmt.Sprintf("[%d]", k)
		pieces = append(pieces, p)
		w.insert(p)
	}
	for _, c := range readers {
		c.waitText(doc, pieces)
	}
	full, refs := metric(t, nodes[0], "collabd_cluster_fanout_full_total")-full0, metric(t, nodes[0], "collabd_cluster_fanout_refs_total")-refs0
	t.Logf("5 updates to a node with 3 sessions: %v in full, %v references", full, refs)
	if full != 5 || refs != 10 {
		t.Errorf("%v updates in full and %v references, want 5 and 10", full, refs)
	}
}
