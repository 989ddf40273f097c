package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/storage"
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

	// A checkpoint: the owner's answer (history is off in cluster mode),
	// the same on every node, never "not forwarded".
	codeOwner, bodyOwner := do(t, "POST", nodes[0].http.URL+"/v1/docs/"+doc+"/versions", `{"label": "x"}`)
	code, body := do(t, "POST", at+"/v1/docs/"+doc+"/versions", `{"label": "x"}`)
	if code != codeOwner || code == http.StatusServiceUnavailable {
		t.Errorf("checkpoint through c2 = %d %s; on the owner %d %s", code, body, codeOwner, bodyOwner)
	}

	// A restore: the version read on c2 (its own store), the edits made by
	// the owner on c1.
	ver := crdt.NewDoc(crdt.Options{Agent: 78})
	_ = ver.Text("body").Insert(0, "restored")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// c2's bbolt store has versions only of the documents it has: one
	// record stands in for the history JetStream will keep.
	if _, err := nodes[1].store.Append(ctx, doc, ver.EncodeSnapshot()); err != nil {
		t.Fatal(err)
	}
	p, err := nodes[1].store.SubmitVersion(doc, storage.NewVersion{Version: 1, Kind: storage.VersionNamed, Label: "v", Snapshot: ver.EncodeSnapshot()})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, body = do(t, "POST", at+"/v1/docs/"+doc+"/restore", fmt.Sprintf(`{"version": %d}`, seq))
	if code != http.StatusOK {
		t.Fatalf("restore through c2 = %d %s", code, body)
	}
	if code, body := do(t, "GET", other+"/v1/docs/"+doc+"/text", ""); code != http.StatusOK || body != "restored" {
		t.Errorf("text through c3 after the restore = %d %q, want restored", code, body)
	}
	if h := holder(t, nodes[1], doc); h != "c1" {
		t.Errorf("held by %q after the restore, want c1", h)
	}
}
