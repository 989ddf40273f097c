package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// TestClusterBackupRestore: documents of both kinds written through the
// three nodes of a cluster are listed by every node, and GET /v1/backup
// from one node is a single node's store: restored into a single node, it
// serves the same texts (the migration path out of cluster mode).
func TestClusterBackupRestore(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	texts := map[string]string{}
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("notes/%d.*>", i)
		via := nodes[i%3].http.URL
		kind := "native"
		if i%2 == 1 {
			kind = "yjs"
		}
		if code, body := do(t, "POST", via+"/v1/docs", fmt.Sprintf(`{"id": %q, "kind": %q}`, id, kind)); code != http.StatusCreated {
			t.Fatalf("create %s through node %d = %d %s", id, i%3+1, code, body)
		}
		for j := range 3 {
			piece := fmt.Sprintf("%s line %d of %s. ", kind, j, id)
			code, body := do(t, "POST", nodes[(i+j)%3].http.URL+"/v1/docs/"+url.PathEscape(id)+"/edits",
				fmt.Sprintf(`{"edits": [[0, 0, %q]]}`, piece))
			if code != http.StatusOK {
				t.Fatalf("edit %s = %d %s", id, code, body)
			}
			texts[id] = piece + texts[id]
		}
		ids = append(ids, id)
	}
	// A deleted document is neither listed nor backed up.
	if code, body := do(t, "DELETE", nodes[1].http.URL+"/v1/docs/"+url.PathEscape(ids[5]), ""); code/100 != 2 {
		t.Fatalf("delete = %d %s", code, body)
	}
	delete(texts, ids[5])
	ids = ids[:5]

	for _, n := range nodes {
		var got []string
		after := ""
		for {
			code, body := do(t, "GET", n.http.URL+"/v1/docs?limit=2&after="+after, "")
			if code != http.StatusOK {
				t.Fatalf("%s: list = %d %s", n.id, code, body)
			}
			var page struct {
				Docs []struct {
					ID      string    `json:"id"`
					LastSeq uint64    `json:"last_seq"`
					Updated time.Time `json:"updated"`
				} `json:"docs"`
				Next string `json:"next"`
			}
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			for _, d := range page.Docs {
				if d.LastSeq == 0 || d.Updated.IsZero() {
					t.Errorf("%s: list entry %+v", n.id, d)
				}
				got = append(got, d.ID)
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s lists %q, want %q", n.id, got, ids)
		}
	}
	if code, _ := do(t, "GET", nodes[0].http.URL+"/v1/docs?after=notes", ""); code != http.StatusBadRequest {
		t.Errorf("list after a document id in cluster mode = %d, want 400 (cursors are opaque)", code)
	}

	// Back up through c3, restore into a single node.
	resp, err := http.Get(nodes[2].http.URL + "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, resp.Body)
	_ = resp.Body.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup = %d, %v", resp.StatusCode, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if rep, err := storage.Verify(ctx, file, storage.Options{}); err != nil || rep.Documents != int64(len(ids)) {
		t.Fatalf("Verify(backup) = %d documents, %v; want %d", rep.Documents, err, len(ids))
	}
	st, err := storage.Open(file, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	single, err := server.New(server.Config{Store: st, Logger: testLogger(t, "single")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(single.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = single.Shutdown(ctx)
		_ = st.Close()
	})
	for _, id := range ids {
		code, got := do(t, "GET", hs.URL+"/v1/docs/"+url.PathEscape(id)+"/text", "")
		_, want := do(t, "GET", nodes[0].http.URL+"/v1/docs/"+url.PathEscape(id)+"/text", "")
		if code != http.StatusOK || got != want || got != texts[id] {
			t.Errorf("restored %s = %d %q; cluster %q; written %q", id, code, got, want, texts[id])
		}
		_, info := do(t, "GET", hs.URL+"/v1/docs/"+url.PathEscape(id), "")
		wantKind := `"kind":"native"`
		if strings.Contains(texts[id], "yjs") {
			wantKind = `"kind":"yjs"`
		}
		if !strings.Contains(info, wantKind) {
			t.Errorf("restored %s: %s, want %s", id, info, wantKind)
		}
	}
	if code, _ := do(t, "GET", hs.URL+"/v1/docs/"+url.PathEscape(ids[len(ids)-1]+"x"), ""); code == http.StatusOK {
		t.Error("a document never written is in the restored store")
	}

	// A document that does not load (garbage on its subject, indexed)
	// makes the next backup a broken stream, never a short file.
	js, err := njs.New(nodes[0].nc)
	if err != nil {
		t.Fatal(err)
	}
	token := base64.RawURLEncoding.EncodeToString([]byte("corrupt"))
	if _, err := js.Publish(ctx, "collabd.ops."+token, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "collabd_docs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, token, nil); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "GET", nodes[2].http.URL+"/v1/docs", ""); code != http.StatusOK || !strings.Contains(body, `"corrupt"`) {
		t.Errorf("list with a corrupt document = %d %s; want it listed with the others", code, body)
	}
	resp, err = http.Get(nodes[1].http.URL + "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil {
		t.Errorf("a backup with a corrupt document = %d and a whole body; want a broken stream", resp.StatusCode)
	}
}
