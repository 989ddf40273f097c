package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
	"github.com/collabd/collabd/server"
)

// The Yjs doors in cluster mode: clients of both doors on nodes that do
// not own the document, forwarded to the owner (cluster_test.go has the
// cluster harness).

// yClient is a bare y-websocket client (y-protocols sync) with its own
// Yjs replica.
type yClient struct {
	t    *testing.T
	conn *websocket.Conn
	doc  *yjs.Doc
}

func dialY(t *testing.T, n *clusterNode, doc string) *yClient {
	t.Helper()
	return dialYURL(t, n.http.URL, doc)
}

// dialYURL is dialY to the server at base (http://host:port).
func dialYURL(t *testing.T, base, doc string) *yClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/yjs/"+doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &yClient{t: t, conn: conn, doc: yjs.New(yjs.Limits{})}
	c.write(yproto.AppendSync(nil, yproto.SyncStep1, c.doc.StateVector()))
	c.readUntil(func(m yproto.Message) bool { return m.Type == yproto.TypeSync && m.Sync == yproto.SyncStep2 })
	return c
}

func (c *yClient) write(frame []byte) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		c.t.Fatal(err)
	}
}

// readUntil applies what the server sends until done says so.
func (c *yClient) readUntil(done func(yproto.Message) bool) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("y-websocket read: %v", err)
		}
		m, err := yproto.Decode(b, yproto.Limits{})
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Type == yproto.TypeSync && m.Sync != yproto.SyncStep1 {
			if _, err := c.doc.Apply(m.Payload); err != nil {
				c.t.Fatal(err)
			}
		}
		if done(m) {
			return
		}
	}
}

// TestClusterYWebsocket: two y-websocket clients on the two nodes that do
// not own the document (both forwarded) edit it and converge.
func TestClusterYWebsocket(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	start := time.Now()
	a, b := dialY(t, nodes[1], doc), dialY(t, nodes[2], doc)
	t.Logf("both synced after %v", time.Since(start))
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Fatalf("held by %q, want c1", h)
	}
	ua, err := a.doc.InsertText(101, "t", 0, "from a. ")
	if err != nil {
		t.Fatal(err)
	}
	a.write(yproto.AppendSync(nil, yproto.SyncUpdate, ua))
	b.readUntil(func(yproto.Message) bool { return strings.Contains(b.doc.Text("t"), "from a.") })
	ub, err := b.doc.InsertText(102, "t", 0, "from b. ")
	if err != nil {
		t.Fatal(err)
	}
	b.write(yproto.AppendSync(nil, yproto.SyncUpdate, ub))
	a.readUntil(func(yproto.Message) bool { return strings.Contains(a.doc.Text("t"), "from b.") })
	if a.doc.Text("t") != b.doc.Text("t") {
		t.Errorf("texts differ: %q and %q", a.doc.Text("t"), b.doc.Text("t"))
	}
}

// TestClusterHocuspocus: Hocuspocus connections on the two nodes that do
// not own a Yjs document (both forwarded) are authenticated once the owner
// accepted the join (JoinedEvent crosses the wire), sync, edit, get each
// other's edits and a durable SyncStatus.
func TestClusterHocuspocus(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	type hclient struct {
		conn *websocket.Conn
		doc  *yjs.Doc
	}
	dial := func(n *clusterNode) *hclient {
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.http.URL, "http")+"/v1/hocuspocus", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c := &hclient{conn: conn, doc: yjs.New(yjs.Limits{})}
		_ = conn.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: doc, Auth: yproto.AuthToken, HasText: true}))
		_ = conn.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HSync, Doc: doc, Sync: yproto.SyncStep1, Payload: c.doc.StateVector()}))
		return c
	}
	// until reads frames, applying sync payloads, until done says so.
	until := func(c *hclient, what string, done func(yproto.HMessage) bool) {
		t.Helper()
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			m, err := yproto.DecodeHocuspocus(b, yproto.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Type == yproto.HSync && m.Sync != yproto.SyncStep1 {
				if _, err := c.doc.Apply(m.Payload); err != nil {
					t.Fatal(err)
				}
			}
			if done(m) {
				return
			}
		}
	}
	a, b := dial(nodes[1]), dial(nodes[2])
	for _, c := range []*hclient{a, b} {
		until(c, "authenticated", func(m yproto.HMessage) bool { return m.Type == yproto.HAuth && m.Auth == yproto.AuthAuthenticated })
		until(c, "sync step 2", func(m yproto.HMessage) bool { return m.Type == yproto.HSync && m.Sync == yproto.SyncStep2 })
	}
	u, err := a.doc.InsertText(201, "t", 0, "through two forwards")
	if err != nil {
		t.Fatal(err)
	}
	_ = a.conn.WriteMessage(websocket.BinaryMessage, yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HSync, Doc: doc, Sync: yproto.SyncUpdate, Payload: u}))
	until(a, "a durable SyncStatus", func(m yproto.HMessage) bool { return m.Type == yproto.HSyncStatus && m.Synced })
	until(b, "a's edit", func(yproto.HMessage) bool { return b.doc.Text("t") == "through two forwards" })
}

// TestClusterYjsUpdateLargerThanARecord: a Yjs update larger than one
// JetStream record (8 MiB here) is refused before the owner applies it:
// its connection closes with 4505, and the document keeps its state for
// everyone else (before, the owner applied it, could not store it, and
// dropped the document's state for every session).
func TestClusterYjsUpdateLargerThanARecord(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	a, b := dialY(t, nodes[0], doc), dialY(t, nodes[1], doc)
	ub, err := b.doc.InsertText(102, "t", 0, "kept. ")
	if err != nil {
		t.Fatal(err)
	}
	b.write(yproto.AppendSync(nil, yproto.SyncUpdate, ub))
	a.readUntil(func(yproto.Message) bool { return a.doc.Text("t") == "kept. " })

	big, err := a.doc.InsertText(101, "t", 0, strings.Repeat("0123456789abcdef", 600<<10)) // 9.6 MiB
	if err != nil {
		t.Fatal(err)
	}
	a.write(yproto.AppendSync(nil, yproto.SyncUpdate, big))
	_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err = a.conn.ReadMessage(); err != nil {
			break
		}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != int(protocol.CodeFrameTooLarge) {
		t.Fatalf("the sender's connection ended with %v, want close %d", err, protocol.CodeFrameTooLarge)
	}

	// The document was not dropped: b's session goes on, its next edit
	// reaches a fresh client, and the text is what was stored.
	ub2, err := b.doc.InsertText(102, "t", 6, "still here.")
	if err != nil {
		t.Fatal(err)
	}
	b.write(yproto.AppendSync(nil, yproto.SyncUpdate, ub2))
	c := dialY(t, nodes[2], doc)
	c.readUntil(func(yproto.Message) bool { return c.doc.Text("t") == "kept. still here." })
	if code, body := do(t, "GET", nodes[2].http.URL+"/v1/docs/"+doc+"/text?root=t", ""); code != 200 || body != "kept. still here." {
		t.Errorf("text = %d %q", code, body)
	}
}

// TestClusterYjsStateLargerThanOneMessage: a Yjs document whose state is
// larger than one NATS message (9 MiB; 8 MiB messages here) reaches a
// fresh client on a node that does not own it: y-protocols sends the whole
// state as one sync step, which the owner node publishes in parts. A Yjs
// import is stored as one update: one of 9 MiB is refused (413) before it
// is merged; three of 3 MiB are taken.
func TestClusterYjsStateLargerThanOneMessage(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	third := strings.Repeat("0123456789abcdef", 192<<10) // 3 MiB
	replica := func(client uint64, text string) []byte {
		r := yjs.New(yjs.Limits{})
		u, err := r.InsertText(client, "t", 0, text)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	big := replica(100, third+third+third)
	if code, body := put(t, nodes[0].http.URL+"/v1/docs/"+doc+"/snapshot", "application/vnd.yjs.update", big); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "4505") {
		t.Fatalf("a 9 MiB Yjs import on c1 = %d %.300s, want 413 (4505)", code, body)
	}
	want := yjs.New(yjs.Limits{})
	for i := range 3 {
		u := replica(uint64(101+i), third)
		if _, err := want.Apply(u); err != nil {
			t.Fatal(err)
		}
		if code, body := put(t, nodes[0].http.URL+"/v1/docs/"+doc+"/snapshot", "application/vnd.yjs.update", u); code != http.StatusOK {
			t.Fatalf("import %d on c1 = %d %.300s", i, code, body)
		}
	}
	_, metrics := do(t, "GET", nodes[0].http.URL+"/metrics", "")
	before := metricValue(metrics, "collabd_cluster_part_sequences_total")

	c := dialY(t, nodes[2], doc)
	if got := c.doc.Text("t"); got != want.Text("t") {
		t.Fatalf("the fresh client on c3 has %d bytes of text, want the %d stored", len(got), len(want.Text("t")))
	}
	_, metrics = do(t, "GET", nodes[0].http.URL+"/metrics", "")
	if after := metricValue(metrics, "collabd_cluster_part_sequences_total"); after <= before {
		t.Errorf("c1 sent %v part sequences, want the sync step in parts", after-before)
	}
	// The relation goes on: an edit on c3 reaches a client on c2.
	b := dialY(t, nodes[1], doc)
	u, err := c.doc.InsertText(103, "t", 0, "from c. ")
	if err != nil {
		t.Fatal(err)
	}
	c.write(yproto.AppendSync(nil, yproto.SyncUpdate, u))
	b.readUntil(func(yproto.Message) bool { return strings.HasPrefix(b.doc.Text("t"), "from c. ") })
}

// TestYjsUpdateLargerThanTheQueue: an update larger than a connection's
// whole outbound queue (a big paste) reaches the other clients, borrowed
// from the sync budget, instead of closing each of them as slow (they
// would reconnect and sync the same bytes).
func TestYjsUpdateLargerThanTheQueue(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{QueueBytes: 256 << 10, OpRate: 1e9, OpBurst: 1 << 24})
	a, b := dialYURL(t, ts.http.URL, "big"), dialYURL(t, ts.http.URL, "big")
	paste := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	u, err := a.doc.InsertText(101, "t", 0, paste)
	if err != nil {
		t.Fatal(err)
	}
	a.write(yproto.AppendSync(nil, yproto.SyncUpdate, u))
	b.readUntil(func(yproto.Message) bool { return b.doc.Text("t") == paste })
	// b's connection is still up: the next small edit reaches it too.
	u, err = a.doc.InsertText(101, "t", 0, "then this. ")
	if err != nil {
		t.Fatal(err)
	}
	a.write(yproto.AppendSync(nil, yproto.SyncUpdate, u))
	b.readUntil(func(yproto.Message) bool { return strings.HasPrefix(b.doc.Text("t"), "then this. ") })
}
