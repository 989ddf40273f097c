package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClusterVersions: a named version taken through a node that does
// not own the document is listed and read by every node (the history is
// in JetStream, not node-local), restored through another one; deleting
// the document deletes it.
func TestClusterVersions(t *testing.T) {
	nodes := startCluster(t, 5*time.Second, nil)
	doc := docPlacedOn("c1")
	path := "/v1/docs/" + url.PathEscape(doc)
	edit := func(via *clusterNode, text string) {
		t.Helper()
		if code, body := do(t, "POST", via.http.URL+path+"/edits", fmt.Sprintf(`{"edits": [[0, 0, %q]]}`, text)); code != http.StatusOK {
			t.Fatalf("edit = %d %s", code, body)
		}
	}
	edit(nodes[1], "first. ")
	// A checkpoint through a node that does not own the document
	// (forwarded to c1, stored in JetStream).
	code, body := do(t, "POST", nodes[2].http.URL+path+"/versions", `{"label": "one"}`)
	if code != http.StatusCreated {
		t.Fatalf("checkpoint on the owner = %d %s", code, body)
	}
	var v1 struct {
		Seq   uint64 `json:"seq"`
		Label string `json:"label"`
	}
	if err := json.Unmarshal([]byte(body), &v1); err != nil || v1.Label != "one" || v1.Seq == 0 {
		t.Fatalf("checkpoint answer %s, %v", body, err)
	}
	edit(nodes[2], "second. ")
	if code, body := do(t, "POST", nodes[0].http.URL+path+"/versions", `{"label": "two"}`); code != http.StatusCreated {
		t.Fatalf("second checkpoint = %d %s", code, body)
	}
	for _, n := range nodes {
		code, body := do(t, "GET", n.http.URL+path+"/versions?limit=1", "")
		var page struct {
			Versions []struct {
				Seq   uint64 `json:"seq"`
				Label string `json:"label"`
				Kind  string `json:"kind"`
			} `json:"versions"`
			Next uint64 `json:"next"`
		}
		if err := json.Unmarshal([]byte(body), &page); code != http.StatusOK || err != nil {
			t.Fatalf("%s: versions = %d %s", n.id, code, body)
		}
		if len(page.Versions) != 1 || page.Versions[0].Label != "two" || page.Versions[0].Kind != "named" || page.Next == 0 {
			t.Errorf("%s: newest version page = %s", n.id, body)
			continue
		}
		code, body = do(t, "GET", fmt.Sprintf("%s%s/versions?limit=10&before=%d", n.http.URL, path, page.Next), "")
		if code != http.StatusOK || !strings.Contains(body, `"label":"one"`) || strings.Contains(body, `"label":"two"`) {
			t.Errorf("%s: next page = %d %s", n.id, code, body)
		}
		code, body = do(t, "GET", fmt.Sprintf("%s%s/versions/%d", n.http.URL, path, v1.Seq), "")
		if code != http.StatusOK || !strings.Contains(body, "first. ") || strings.Contains(body, "second. ") {
			t.Errorf("%s: version %d = %d %s", n.id, v1.Seq, code, body)
		}
	}
	if code, _ := do(t, "GET", nodes[1].http.URL+path+"/versions/999999", ""); code != http.StatusNotFound {
		t.Errorf("a version that does not exist = %d, want 404", code)
	}
	// A restore through another node that does not own it: the version is
	// read there, from JetStream, and the owner restores it.
	if code, body := do(t, "POST", nodes[1].http.URL+path+"/restore", fmt.Sprintf(`{"version": %d}`, v1.Seq)); code != http.StatusOK {
		t.Fatalf("restore through c2 = %d %s", code, body)
	}
	if code, body := do(t, "GET", nodes[2].http.URL+path+"/text", ""); code != http.StatusOK || body != "first. " {
		t.Errorf("text after the restore = %d %q, want %q", code, body, "first. ")
	}
	if code, body := do(t, "DELETE", nodes[2].http.URL+path, ""); code/100 != 2 {
		t.Fatalf("delete = %d %s", code, body)
	}
	code, body = do(t, "GET", fmt.Sprintf("%s%s/versions/%d", nodes[1].http.URL, path, v1.Seq), "")
	if code == http.StatusOK {
		t.Errorf("a version of the deleted document = %d %s", code, body)
	}
}
