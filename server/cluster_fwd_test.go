package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/cluster"
)

// put sends a body of ctype with PUT and returns the status and answer.
func put(t *testing.T, url, ctype string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("PUT", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestClusterForwardedRequests: the requests that carry a replica or ask
// for a version, sent to a node that does not own the document, are
// answered by the owner node (request/reply), as on one node: a native and
// a Yjs snapshot import, a checkpoint (refused as on the owner: history is
// off in cluster mode) and a restore of a version (one put into the
// forwarding node's own store: cluster mode keeps none yet).
func TestClusterForwardedRequests(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	at, other := nodes[1].http.URL, nodes[2].http.URL

	// A native snapshot merged into a document nobody has written yet.
	src := crdt.NewDoc(crdt.Options{Agent: 77})
	_ = src.Text("body").Insert(0, "imported ")
	if code, body := put(t, at+"/v1/docs/"+doc+"/snapshot", "application/octet-stream", src.EncodeSnapshot()); code != http.StatusOK {
		t.Fatalf("native import through c2 = %d %s", code, body)
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Errorf("held by %q after the import, want c1 (it was forwarded)", h)
	}
	if code, body := do(t, "GET", other+"/v1/docs/"+doc+"/text", ""); code != http.StatusOK || body != "imported " {
		t.Errorf("text through c3 after the import = %d %q", code, body)
	}
	// Garbage is refused where it arrives, as on one node.
	if code, body := put(t, at+"/v1/docs/"+doc+"/snapshot", "application/octet-stream", []byte("not a snapshot")); code != http.StatusBadRequest {
		t.Errorf("garbage import through c2 = %d %s, want 400", code, body)
	}

	// A Yjs update as a new Yjs document's snapshot.
	ydoc := ""
	for i := 0; ydoc == ""; i++ { // a Yjs document placed on c1 too
		if d := fmt.Sprintf("ydoc%d", i); cluster.Place(d, []string{"c1", "c2", "c3"}) == "c1" {
			ydoc = d
		}
	}
	y := yjs.New(yjs.Limits{})
	upd, err := y.InsertText(501, "body", 0, "from yjs")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := put(t, at+"/v1/docs/"+ydoc+"/snapshot", "application/vnd.yjs.update", upd); code != http.StatusOK {
		t.Fatalf("Yjs import through c2 = %d %s", code, body)
	}
	if code, body := do(t, "GET", other+"/v1/docs/"+ydoc, ""); code != http.StatusOK || !strings.Contains(body, `"yjs"`) {
		t.Errorf("GET the imported Yjs document through c3 = %d %s", code, body)
	}
	if code, body := do(t, "GET", other+"/v1/docs/"+ydoc+"/text", ""); code != http.StatusOK || body != "from yjs" {
		t.Errorf("Yjs text through c3 = %d %q", code, body)
	}
	// A native snapshot into the Yjs document: refused by its owner.
	if code, body := put(t, at+"/v1/docs/"+ydoc+"/snapshot", "application/octet-stream", src.EncodeSnapshot()); code/100 != 4 {
		t.Errorf("native import into a Yjs document through c2 = %d %s, want a 4xx", code, body)
	}

	// A checkpoint through c2: taken by the owner on c1, stored in
	// JetStream, answered the same as on the owner.
	code, body := do(t, "POST", at+"/v1/docs/"+doc+"/versions", `{"label": "x"}`)
	if code != http.StatusCreated {
		t.Fatalf("checkpoint through c2 = %d %s", code, body)
	}
	var cp struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(body), &cp); err != nil || cp.Seq == 0 {
		t.Fatalf("checkpoint answer %s: %v", body, err)
	}
	if code, body := do(t, "POST", other+"/v1/docs/"+doc+"/edits", `{"edits": [[0, 0, "later "]]}`); code != http.StatusOK {
		t.Fatalf("edit = %d %s", code, body)
	}

	// A restore: the version read on c2 (from JetStream), the edits made
	// by the owner on c1.
	code, body = do(t, "POST", at+"/v1/docs/"+doc+"/restore", fmt.Sprintf(`{"version": %d}`, cp.Seq))
	if code != http.StatusOK {
		t.Fatalf("restore through c2 = %d %s", code, body)
	}
	if code, body := do(t, "GET", other+"/v1/docs/"+doc+"/text", ""); code != http.StatusOK || body != "imported " {
		t.Errorf("text through c3 after the restore = %d %q, want %q", code, body, "imported ")
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Errorf("held by %q after the restore, want c1", h)
	}
}

// docsPlacedOn are k document ids (prefix and a number) whose first
// placement over live is node.
func docsPlacedOn(prefix, node string, live []string, k int) []string {
	var out []string
	for i := 0; len(out) < k; i++ {
		if d := fmt.Sprintf("%s%d", prefix, i); cluster.Place(d, live) == node {
			out = append(out, d)
		}
	}
	return out
}

// waitLive waits until every node sees want live members.
func waitLive(t *testing.T, want int, nodes ...*clusterNode) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			live, changed := n.members.Live()
			if len(live) == want {
				break
			}
			select {
			case <-changed:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s sees %v, want %d nodes", n.id, live, want)
			}
		}
	}
}

// TestClusterJoinHandover: two nodes own documents; a third joins. Once it
// has been live for HandoverAfter, the documents placement now gives it
// move to it at once (disowned, lease released: not when idle), while
// writers on the first two nodes keep editing; nothing acked is lost, and
// the documents it does not win stay where they are.
func TestClusterJoinHandover(t *testing.T) {
	const ttl = 5 * time.Second
	const after = 300 * time.Millisecond
	c := natstest.Start(t, 3)
	with := func(cfg *server.Config) {
		cfg.Cluster.HandoverAfter = after
		cfg.IdleUnload = time.Minute // no move because a document went idle
	}
	n1 := startClusterNodeWith(t, c, "c1", ttl, nil, with)
	n2 := startClusterNodeWith(t, c, "c2", ttl, nil, with)
	waitLive(t, 2, n1, n2)
	all := []string{"c1", "c2", "c3"}
	won := docsPlacedOn("join", "c3", all, 3)
	kept := docsPlacedOn("keep", "c1", all, 1)
	var ws []*writer
	agent := crdt.AgentID(700)
	for _, doc := range append(append([]string{}, won...), kept...) {
		for _, n := range []*clusterNode{n1, n2} {
			agent++
			w := &writer{client: dial(t, n.url, agent), doc: doc}
			w.join(doc)
			ws = append(ws, w)
		}
	}
	round := func(k int) {
		for i, w := range ws {
			w.insert(fmt.Sprintf("[%d.%d]", i, k))
		}
	}
	round(0)
	for _, doc := range won {
		if h := holder(t, n1, doc); h != "c1" && h != "c2" {
			t.Fatalf("%s held by %q before the join", doc, h)
		}
	}
	keptBy := holder(t, n1, kept[0])

	start := time.Now()
	n3 := startClusterNodeWith(t, c, "c3", ttl, nil, with)
	waitLive(t, 3, n1, n2, n3)
	moved := time.Duration(0)
	for k := 1; moved == 0; k++ {
		round(k)
		all := true
		for _, doc := range won {
			if holder(t, n1, doc) != "c3" {
				all = false
			}
		}
		if all {
			moved = time.Since(start)
			t.Logf("the %d documents c3 wins moved %v after it started (HandoverAfter %v, TTL %v), %d rounds of %d edits", len(won), moved, after, ttl, k, len(ws))
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the documents c3 wins did not move to it within 30 s")
		}
	}
	round(1000)
	if h := holder(t, n1, kept[0]); h != keptBy {
		t.Errorf("%s, which c3 does not win, moved from %s to %q", kept[0], keptBy, h)
	}
	if got := metric(t, n1, "collabd_cluster_handovers_total") + metric(t, n2, "collabd_cluster_handovers_total"); got != float64(len(won)) {
		t.Errorf("%v hand-overs, want %d (each document c3 wins once)", got, len(won))
	}
	for i, doc := range append(append([]string{}, won...), kept...) {
		checkSet(t, n3, doc, crdt.AgentID(800+i), ws[2*i], ws[2*i+1])
	}
}

// TestClusterFailoverStorm: the owner node drops out of the membership
// while it still renews its lease (heartbeats stop first: the worst case
// for a rejoin), with ten sessions on each of the two other nodes joined
// to its document. Every session is told to rejoin; all twenty rejoin at
// once, then the owner node dies. Each node waits for the dead node's
// lease once at a time (not once per session), each wait bounded by the
// lease TTL; the node placement now picks claims the document as soon as
// the lease is free; every edit acked durable survives.
func TestClusterFailoverStorm(t *testing.T) {
	const ttl = time.Second
	pace := newPacer(t, ttl/4)
	nodes := startCluster(t, ttl, pace)
	doc := docPlacedOn("c1")
	var ws []*writer
	for i := range 20 {
		n := nodes[1+i%2]
		w := &writer{client: dial(t, n.url, crdt.AgentID(900+i)), doc: doc}
		w.join(doc)
		ws = append(ws, w)
	}
	for i, w := range ws {
		w.insert(fmt.Sprintf("[%d.before]", i))
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Fatalf("held by %q, want c1", h)
	}
	waits0 := metric(t, nodes[1], "collabd_cluster_dead_lease_waits_total") + metric(t, nodes[2], "collabd_cluster_dead_lease_waits_total")

	pace.stopBeats()
	left := time.Now()
	// Every session is told to rejoin (the membership dropped c1).
	for _, w := range ws {
		w.awaitRejoin()
	}
	told := time.Since(left)
	// The storm: all twenty Joins at once while c1 still holds the lease;
	// then c1 dies, and each session completes its sync.
	for _, w := range ws {
		w.send(&protocol.Join{Doc: doc, SV: w.doc_().StateVector()})
	}
	nodes[0].crash()
	crashed := time.Now()
	for _, w := range ws {
		if b := w.joined(); b != 0 {
			w.awaitBatch(b)
		}
	}
	synced := time.Since(crashed)
	for i, w := range ws {
		w.insert(fmt.Sprintf("[%d.after]", i))
	}
	acked := time.Since(crashed)
	h := holder(t, nodes[1], doc)
	t.Logf("TTL %v: sessions told to rejoin %v after c1's heartbeats stopped; after the crash all 20 resynced on %s within %v, all acked again within %v", ttl, told, h, synced, acked)
	if h != "c2" && h != "c3" {
		t.Errorf("held by %q after the failover", h)
	}
	waits := metric(t, nodes[1], "collabd_cluster_dead_lease_waits_total") + metric(t, nodes[2], "collabd_cluster_dead_lease_waits_total") - waits0
	t.Logf("waits for the dead node's lease: %v for 20 rejoins on 2 nodes", waits)
	if waits < 1 || waits > 8 {
		t.Errorf("%v waits for the dead node's lease for 20 rejoins on 2 nodes, want one at a time per node (each ≤ TTL)", waits)
	}
	checkSet(t, nodes[2], doc, 950, ws...)
}

// awaitRejoin reads until the server tells the session to rejoin.
func (w *writer) awaitRejoin() {
	w.t.Helper()
	for {
		switch m := w.read().(type) {
		case *protocol.Update:
			_ = w.doc_().ApplyUpdate(m.Update)
		case *protocol.Error:
			if !m.Code.Retry() {
				w.t.Fatalf("terminal error %v", m)
			}
			return
		}
	}
}

// awaitBatch reads until batch is acked durable (the resend of a rejoin).
func (w *writer) awaitBatch(batch uint64) {
	w.t.Helper()
	for {
		switch m := w.read().(type) {
		case *protocol.Update:
			_ = w.doc_().ApplyUpdate(m.Update)
		case *protocol.Ack:
			if m.Batch == batch && m.Status == protocol.AckDurable {
				return
			}
		case *protocol.Error:
			w.t.Fatalf("error while waiting for the resent batch %d: %v", batch, m)
		}
	}
}

// TestClusterOutboxBound: the owner node's outbox to a subscriber node is
// bounded in bytes (4 KiB here), and the document grows past the bound:
// the sessions of another node still get it (an update or a sync larger
// than the bound goes out alone; one queued behind it may drop them with
// 4008, and they rejoin), converge, and the writer is acked as usual.
func TestClusterOutboxBound(t *testing.T) {
	c := natstest.Start(t, 3)
	var nodes []*clusterNode
	for i := range 3 {
		nodes = append(nodes, startClusterNodeWith(t, c, fmt.Sprintf("c%d", i+1), 5*time.Second, nil,
			func(cfg *server.Config) { cfg.Cluster.OutboxBytes = 4 << 10 }))
	}
	waitLive(t, 3, nodes...)
	doc := docPlacedOn("c1")
	readers := []*writer{
		{client: dial(t, nodes[1].url, 1001), doc: doc},
		{client: dial(t, nodes[1].url, 1002), doc: doc},
	}
	w := &writer{client: dial(t, nodes[2].url, 1003), doc: doc}
	for _, r := range append(readers, w) {
		r.join(doc)
	}
	var pieces []string
	for k := range 4 {
		p := fmt.Sprintf("[%d]", k) + strings.Repeat("x", 3<<10)
		pieces = append(pieces, p)
		w.insert(p)
	}
	slow := 0
	for i, r := range readers {
		deadline := time.Now().Add(30 * time.Second)
		for !allIn(r.doc_().Text("body").String(), pieces) {
			if time.Now().After(deadline) {
				t.Fatalf("reader %d did not get the document within 30 s", i)
			}
			switch m := r.read().(type) {
			case *protocol.Update:
				if err := r.doc_().ApplyUpdate(m.Update); err != nil {
					t.Fatal(err)
				}
			case *protocol.Error:
				if m.Code != protocol.CodeSlow {
					t.Fatalf("reader %d: %v", i, m)
				}
				slow++
				r.rejoin(m.RetryAfterMs)
			}
		}
	}
	t.Logf("the readers were dropped as slow %d times; outbox drops on the owner node: %v", slow, metric(t, nodes[0], "collabd_cluster_outbox_drops_total"))
}

// TestClusterLongPoll: a long poll on a node that does not own the
// document waits for a change made through a third node: with no change
// it answers an empty list after its wait; with one, the change.
func TestClusterLongPoll(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	at := nodes[1].http.URL + "/v1/docs/" + doc
	if code, body := do(t, "POST", nodes[2].http.URL+"/v1/docs/"+doc+"/edits", `{"edits": [[0, 0, "[a]"]]}`); code != http.StatusOK {
		t.Fatalf("REST edit through c3 = %d %s", code, body)
	}
	var first struct {
		Version uint64 `json:"version"`
	}
	code, body := do(t, "GET", at+"/changes?wait=0s", "")
	if err := json.Unmarshal([]byte(body), &first); code != http.StatusOK || err != nil || first.Version == 0 {
		t.Fatalf("long poll without since through c2 = %d %s (%v)", code, body, err)
	}
	// No change: an empty list once the wait is over.
	start := time.Now()
	code, body = do(t, "GET", fmt.Sprintf("%s/changes?since=%d&wait=300ms", at, first.Version), "")
	if code != http.StatusOK || !strings.Contains(body, `"changes":[]`) {
		t.Errorf("long poll with no change through c2 = %d %s, want an empty list", code, body)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("the long poll answered after %v, before its wait of 300ms", waited)
	}
	// A change through c3 while a long poll on c2 waits.
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/changes?since=%d&wait=30s", at, first.Version))
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		got <- answer{resp.StatusCode, b.String(), err}
	}()
	if code, body := do(t, "POST", nodes[2].http.URL+"/v1/docs/"+doc+"/edits", `{"edits": [[0, 0, "[b]"]]}`); code != http.StatusOK {
		t.Fatalf("REST edit through c3 = %d %s", code, body)
	}
	select {
	case a := <-got:
		if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, "[b]") {
			t.Errorf("long poll through c2 = %d %s %v, want the change [b]", a.code, a.body, a.err)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("the long poll on c2 did not answer")
	}
}

// TestClusterLargerThanOneMessage: requests and answers larger than one
// NATS message (8 MiB here) travel in parts: a 9 MiB snapshot import
// through a node that does not own the document is taken, and the 12 MiB
// text and the snapshot are read through the other nodes, equal to what
// the owner node answers.
func TestClusterLargerThanOneMessage(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	big := crdt.NewDoc(crdt.Options{Agent: 79})
	var text strings.Builder
	for i := 0; text.Len() < 12<<20; i++ { // hex words: the snapshot's compression leaves ≈9 MiB
		fmt.Fprintf(&text, "%x ", uint32(i)*2654435761)
	}
	_ = big.Text("body").Insert(0, text.String())
	snap := big.EncodeSnapshot()
	if len(snap) < 8<<20 {
		t.Fatalf("the snapshot is %d bytes: not larger than one message", len(snap))
	}
	if code, body := put(t, nodes[1].http.URL+"/v1/docs/"+doc+"/snapshot", "application/octet-stream", snap); code != http.StatusOK {
		t.Fatalf("import of a %d-byte snapshot through c2 = %d %s", len(snap), code, body)
	}
	if h := holder(t, nodes[2], doc); h != "c1" {
		t.Fatalf("held by %q, want c1", h)
	}
	for _, n := range nodes {
		code, body := do(t, "GET", n.http.URL+"/v1/docs/"+doc+"/text", "")
		if code != http.StatusOK || body != text.String() {
			t.Errorf("GET the text through %s = %d, %d bytes, want the %d bytes imported", n.id, code, len(body), text.Len())
		}
	}
	code, viaC3 := do(t, "GET", nodes[2].http.URL+"/v1/docs/"+doc+"/snapshot", "")
	if code != http.StatusOK {
		t.Fatalf("GET the snapshot through c3 = %d %.200s", code, viaC3)
	}
	loaded, err := crdt.LoadSnapshot([]byte(viaC3), crdt.Options{})
	if err != nil || loaded.Text("body").String() != text.String() {
		t.Errorf("the snapshot read through c3 (%d bytes) loads to %v, equal %v", len(viaC3), err, err == nil && loaded.Text("body").String() == text.String())
	}
	// In parts: c2's import; c1's answers to c2's and c3's reads (two texts, a snapshot).
	var got [3]float64
	for i, n := range nodes {
		_, metrics := do(t, "GET", n.http.URL+"/metrics", "")
		got[i] = metricValue(metrics, "collabd_cluster_part_sequences_total")
	}
	if got[0] != 3 || got[1] != 1 || got[2] != 0 {
		t.Errorf("part sequences sent by c1, c2, c3 = %v, want 3, 1, 0", got)
	}
}

// TestClusterReconnect: what NATS carried while a node's connection was
// down is lost, so a reconnect resets the forwarding: the node's sessions
// whose owner is elsewhere rejoin (a subscriber node reconnected), and the
// sessions forwarded to it rejoin (the owner node reconnected); edits go
// on, nothing acked is lost.
func TestClusterReconnect(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	r := &writer{client: dial(t, nodes[1].url, 1101), doc: doc}
	w := &writer{client: dial(t, nodes[2].url, 1102), doc: doc}
	r.join(doc)
	w.join(doc)
	w.insert("[1]")
	r.waitText(doc, []string{"[1]"})

	for i, n := range []*clusterNode{nodes[1], nodes[0]} { // a subscriber node, then the owner node
		if err := n.nc.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
		r.awaitRejoin()
		if r.rejoin(0) != 0 {
			t.Errorf("round %d: the reader had something the owner lacked", i)
		}
		if i == 1 {
			w.awaitRejoin()
			if b := w.rejoin(0); b != 0 {
				w.awaitBatch(b)
			}
		}
		p := fmt.Sprintf("[after %s reconnected]", n.id)
		w.insert(p)
		r.waitText(doc, []string{p})
	}
	if h := holder(t, nodes[2], doc); h != "c1" {
		t.Errorf("held by %q, want c1 (a reconnect is not a move)", h)
	}
	checkSet(t, nodes[2], doc, 1103, w)
}
