package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage"
)

// TestRestoreIntoCluster: the way into cluster mode and back out. A
// single node's documents (native and Yjs) are backed up, restored into a
// running cluster node's JetStream with "collabd restore --nats", served
// by the node with the same texts, backed up from the node with
// "collabd backup --url" and restored into a single node again. A second
// restore into the cluster skips what it already has or a node holds
// (exit 1, nothing overwritten).
func TestRestoreIntoCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	single := startServeProc(t)
	base := "http://" + single.addr
	texts := map[string]string{}
	for i, kind := range []string{"native", "yjs", "native", "yjs"} {
		id := fmt.Sprintf("m/%d %s", i, kind)
		if code, body := doReq(t, "POST", base+"/v1/docs", fmt.Sprintf(`{"id": %q, "kind": %q}`, id, kind)); code != http.StatusCreated {
			t.Fatalf("create %s = %d %s", id, code, body)
		}
		for j := range 3 {
			piece := fmt.Sprintf("%s %d. ", kind, j)
			if err := postEdits(ctx, base, id, 0, piece); err != nil {
				t.Fatal(err)
			}
			texts[id] = piece + texts[id]
		}
	}
	if code, body := doReq(t, "POST", base+docPath("m/1 yjs", "/versions"), `{"label": "before the move"}`); code != http.StatusCreated {
		t.Fatalf("named version = %d %s", code, body)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "single.db")
	if code, _, stderr := runCmd(t, "backup", "--url", base, "--out", in); code != 0 {
		t.Fatalf("backup of the single node: %s", stderr)
	}

	nc := natstest.Single(t)
	node := startServeProc(t, "--nats", nc.URLs(), "--node-id", "n1", "--nats-replicas", "1", "--lease-ttl", "2s")
	node.waitLog("cluster mode", "node=n1")
	code, stdout, stderr := runCmd(t, "restore", "--in", in, "--nats", nc.URLs())
	if code != 0 || !strings.Contains(stdout, "4 documents, 0 skipped") {
		t.Fatalf("restore --nats = %d %q %q", code, stdout, stderr)
	}
	nbase := "http://" + node.addr
	for id, want := range texts {
		if code, got := httpGet(t, nbase+docPath(id, "/text")); code != http.StatusOK || got != want {
			t.Errorf("cluster %q = %d %q, want %q", id, code, got, want)
		}
	}
	for _, format := range []string{"text", "json"} {
		code, out, stderr := runCmd(t, "export", "--url", nbase, "--doc", "m/1 yjs", "--format", format)
		if code != 0 || !strings.Contains(out, "yjs 2. ") {
			t.Errorf("export --url of the cluster node, %s = %d %q %q", format, code, out, stderr)
		}
	}
	if code, _ := httpGet(t, nbase+docPath("m/1 yjs", "")); code != http.StatusOK {
		t.Errorf("GET the Yjs document = %d", code)
	} else if _, body := httpGet(t, nbase+docPath("m/1 yjs", "")); !strings.Contains(body, `"kind":"yjs"`) {
		t.Errorf("restored m/1 yjs is not a Yjs document: %s", body)
	}
	if code, body := httpGet(t, nbase+docPath("m/1 yjs", "/versions")); code != http.StatusOK || !strings.Contains(body, `"label":"before the move"`) {
		t.Errorf("the cluster's versions of m/1 yjs = %d %s", code, body)
	}
	if err := postEdits(ctx, nbase, "m/0 native", 0, "more. "); err != nil {
		t.Fatal(err)
	}
	texts["m/0 native"] = "more. " + texts["m/0 native"]
	code, _, stderr = runCmd(t, "restore", "--in", in, "--nats", nc.URLs())
	if code != 1 || !strings.Contains(stderr, "4 documents skipped") {
		t.Errorf("second restore --nats = %d %q, want 1 and every document skipped", code, stderr)
	}

	// And out again.
	out := filepath.Join(dir, "cluster.db")
	if code, _, stderr := runCmd(t, "backup", "--url", nbase, "--out", out); code != 0 {
		t.Fatalf("backup of the cluster: %s", stderr)
	}
	data := filepath.Join(dir, "back")
	if code, _, stderr := runCmd(t, "restore", "--in", out, "--data", data); code != 0 {
		t.Fatalf("restore into a single node: %s", stderr)
	}
	for id, want := range texts {
		code, got, stderr := runCmd(t, "export", "--data", data, "--doc", id)
		if code != 0 || got != want {
			t.Errorf("single node again %q = %q (%s), want %q", id, got, stderr, want)
		}
	}
	st, err := storage.Open(filepath.Join(data, "collabd.db"), storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, err := st.Versions(ctx, "m/1 yjs", 0, 10)
	if err != nil || len(vs) == 0 || vs[len(vs)-1].Label != "before the move" {
		t.Errorf("versions back on a single node = %+v, %v; want the named one", vs, err)
	}
}

// doReq sends a request with a JSON body and returns the status and body.
func doReq(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
