package server_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

type versionOut struct {
	Seq     uint64            `json:"seq"`
	Version uint64            `json:"version"`
	Kind    string            `json:"kind"`
	Label   string            `json:"label"`
	Authors []string          `json:"authors"`
	Text    map[string]string `json:"text"`
}

type versionList struct {
	Versions []versionOut `json:"versions"`
	Next     uint64       `json:"next"`
}

// syncUntil applies the updates c receives until its text is want.
func (c *client) syncUntil(want string) {
	c.t.Helper()
	for c.doc.Text("body").String() != want {
		if u, ok := c.read().(*protocol.Update); ok {
			if err := c.doc.ApplyUpdate(u.Update); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// waitApplied reads until batch is acked applied.
func (c *client) waitApplied(batch uint64) {
	c.t.Helper()
	for {
		switch m := c.read().(type) {
		case *protocol.Ack:
			if m.Batch == batch && m.Status == protocol.AckApplied {
				return
			}
		case *protocol.Update:
			if err := c.doc.ApplyUpdate(m.Update); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// List, view, diff and restore while two clients edit: the restore is
// server edits, so edits the clients made concurrently (against the state
// before it) merge into the restored text, and every replica converges.
func TestVersionsListViewDiffRestore(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	base := httpURL(ts) + "/v1/docs/h"
	a, b := dial(t, ts.url, 1), dial(t, ts.url, 2)
	a.join("h")
	b.join("h")
	a.edit("h", 1, func(x *crdt.Text) error { return x.Insert(0, "hello world") })
	a.waitApplied(1)
	b.syncUntil("hello world")

	var v1 versionOut
	if code := getJSON(t, "POST", base+"/versions", map[string]string{"label": "first draft"}, "", &v1); code != 201 {
		t.Fatalf("POST versions: %d %+v", code, v1)
	}
	if v1.Seq != 1 || v1.Kind != "named" || v1.Label != "first draft" || v1.Version == 0 {
		t.Fatalf("named version = %+v", v1)
	}
	b.edit("h", 1, func(x *crdt.Text) error {
		if err := x.Delete(6, 5); err != nil {
			return err
		}
		return x.Insert(6, "there, friends")
	})
	b.waitApplied(1)
	a.syncUntil("hello there, friends")

	var list versionList
	if code := getJSON(t, "GET", base+"/versions", nil, "", &list); code != 200 || len(list.Versions) != 1 || list.Versions[0].Seq != 1 {
		t.Fatalf("GET versions: %d %+v", code, list)
	}
	var view versionOut
	if code := getJSON(t, "GET", base+"/versions/1", nil, "", &view); code != 200 || view.Text["body"] != "hello world" {
		t.Fatalf("GET versions/1: %d %+v", code, view)
	}
	var diff struct {
		From  uint64 `json:"from"`
		Roots []struct {
			Root  string  `json:"root"`
			Edits [][]any `json:"edits"`
		} `json:"roots"`
	}
	if code := getJSON(t, "GET", base+"/diff?from=1", nil, "", &diff); code != 200 || len(diff.Roots) != 1 || diff.Roots[0].Root != "body" {
		t.Fatalf("GET diff: %d %+v", code, diff)
	}
	// The diff, applied as REST edits to version 1's text, gives the current text.
	got := []rune("hello world")
	for _, e := range diff.Roots[0].Edits {
		pos, del, ins := int(e[0].(float64)), int(e[1].(float64)), e[2].(string)
		got = append(got[:pos], append([]rune(ins), got[pos+del:]...)...)
	}
	if string(got) != "hello there, friends" {
		t.Fatalf("diff applies to %q", string(got))
	}

	// Both clients edit against the current text, unsent; the restore
	// commits meanwhile; then their edits arrive.
	if err := a.doc.Text("body").Insert(0, "A: "); err != nil {
		t.Fatal(err)
	}
	ua := a.doc.TakeUpdate()
	if err := b.doc.Text("body").Insert(6, "[b] "); err != nil {
		t.Fatal(err)
	}
	ub := b.doc.TakeUpdate()
	var res struct {
		Restored uint64 `json:"restored"`
		Version  uint64 `json:"version"`
		Applied  int    `json:"applied"`
	}
	if code := getJSON(t, "POST", base+"/restore", map[string]any{"version": 1}, "", &res); code != 200 || res.Restored != 1 || res.Applied == 0 {
		t.Fatalf("restore: %d %+v", code, res)
	}
	a.send(&protocol.Update{Doc: "h", Batch: 2, Update: ua})
	b.send(&protocol.Update{Doc: "h", Batch: 2, Update: ub})
	a.waitApplied(2)
	b.waitApplied(2)
	text, _ := docText(t, ts, "h")
	a.syncUntil(text)
	b.syncUntil(text)
	if stripped := strings.ReplaceAll(strings.ReplaceAll(text, "A: ", ""), "[b] ", ""); stripped != "hello world" ||
		!strings.HasPrefix(text, "A: ") || !strings.Contains(text, "[b] ") {
		t.Fatalf("after restore and concurrent edits: %q, want the restored %q plus both edits", text, "hello world")
	}
	// The restore kept what it replaced: an automatic version of it.
	if code := getJSON(t, "GET", base+"/versions", nil, "", &list); code != 200 || len(list.Versions) != 2 || list.Versions[0].Kind != "auto" {
		t.Fatalf("versions after restore: %d %+v", code, list)
	}
	if code := getJSON(t, "GET", base+"/versions/2", nil, "", &view); code != 200 || view.Text["body"] != "hello there, friends" {
		t.Fatalf("version before the restore: %d %+v", code, view)
	}
	if code := getJSON(t, "GET", base+"/versions?limit=1", nil, "", &list); code != 200 || len(list.Versions) != 1 || list.Next != 2 {
		t.Fatalf("first page: %d %+v", code, list)
	}
	if code := getJSON(t, "GET", base+"/versions?limit=1&before=2", nil, "", &list); code != 200 || len(list.Versions) != 1 || list.Versions[0].Seq != 1 {
		t.Fatalf("second page: %d %+v", code, list)
	}
	if code := getJSON(t, "GET", base+"/diff?from=2&to=1", nil, "", &diff); code != 200 || len(diff.Roots) != 1 {
		t.Fatalf("diff between versions: %d %+v", code, diff)
	}
}

// Hostile requests get typed errors and change nothing.
func TestVersionsHostileInputs(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	base := httpURL(ts) + "/v1/docs/x"
	if code := getJSON(t, "POST", base+"/edits", map[string]any{"edits": [][]any{{0, 0, "abc"}}}, "", nil); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	type apiError struct {
		Code protocol.Code `json:"code"`
		Name string        `json:"name"`
	}
	cases := []struct {
		method, path string
		body         any
		status       int
		code         protocol.Code
	}{
		{"GET", "/versions/abc", nil, 400, protocol.CodeBadFrame},
		{"GET", "/versions/0", nil, 400, protocol.CodeBadFrame},
		{"GET", "/versions/99999999999999999999999", nil, 400, protocol.CodeBadFrame},
		{"GET", "/versions/7", nil, 404, protocol.CodeNotJoined},
		{"GET", "/versions?limit=0", nil, 400, protocol.CodeBadFrame},
		{"GET", "/versions?limit=x", nil, 400, protocol.CodeBadFrame},
		{"GET", "/versions?before=-1", nil, 400, protocol.CodeBadFrame},
		{"GET", "/diff", nil, 400, protocol.CodeBadFrame},
		{"GET", "/diff?from=1", nil, 404, protocol.CodeNotJoined},
		{"GET", "/diff?from=1&root=", nil, 404, protocol.CodeNotJoined},
		{"POST", "/versions", map[string]string{"label": strings.Repeat("x", 201)}, 400, protocol.CodeBadFrame},
		{"POST", "/versions", map[string]string{"label": "a\u0007b"}, 400, protocol.CodeBadFrame},
		{"POST", "/versions", map[string]any{"label": "x", "extra": 1}, 400, protocol.CodeBadFrame},
		{"POST", "/versions", map[string]any{"label": 5}, 400, protocol.CodeBadFrame},
		{"POST", "/restore", map[string]any{"version": 0}, 400, protocol.CodeBadFrame},
		{"POST", "/restore", map[string]any{"version": -3}, 400, protocol.CodeBadFrame},
		{"POST", "/restore", map[string]any{"version": "1"}, 400, protocol.CodeBadFrame},
		{"POST", "/restore", map[string]any{"version": 42}, 404, protocol.CodeNotJoined},
	}
	for _, c := range cases {
		var e apiError
		if code := getJSON(t, c.method, base+c.path, c.body, "", &e); code != c.status || e.Code != c.code {
			t.Errorf("%s %s %v: %d %+v, want %d %v", c.method, c.path, c.body, code, e, c.status, c.code)
		}
	}
	// Not JSON at all, a huge body, the wrong content type.
	for _, c := range []struct {
		ctype, body string
		status      int
	}{
		{"application/json", "{nope", 400},
		{"application/json", `{"label":"` + strings.Repeat("x", 64<<10) + `"}`, 413},
		{"text/plain", `{"label":"x"}`, 415},
	} {
		resp, err := http.Post(base+"/versions", c.ctype, bytes.NewReader([]byte(c.body)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("POST versions %.20q as %s: %d, want %d", c.body, c.ctype, resp.StatusCode, c.status)
		}
	}
	// A document never written has no history.
	var e apiError
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/docs/none/versions", nil, "", &e); code != 404 {
		t.Errorf("versions of a missing document: %d %+v", code, e)
	}
	if code := getJSON(t, "POST", httpURL(ts)+"/v1/docs/none/versions", map[string]string{"label": "x"}, "", &e); code != 404 {
		t.Errorf("named version of a missing document: %d %+v", code, e)
	}
	var list versionList
	if code := getJSON(t, "GET", base+"/versions", nil, "", &list); code != 200 || len(list.Versions) != 0 {
		t.Fatalf("hostile requests stored versions: %d %+v", code, list)
	}
	if text, _ := docText(t, ts, "x"); text != "abc" {
		t.Fatalf("hostile requests changed the text: %q", text)
	}
}

// With history off the endpoints are 404 and no version is taken.
func TestVersionsDisabled(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{DisableVersions: true})
	base := httpURL(ts) + "/v1/docs/x"
	if code := getJSON(t, "POST", base+"/edits", map[string]any{"edits": [][]any{{0, 0, "abc"}}}, "", nil); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	if code := getJSON(t, "POST", base+"/versions", map[string]string{"label": "x"}, "", nil); code != 404 {
		t.Fatalf("POST versions with history off: %d", code)
	}
	if code := getJSON(t, "GET", base+"/versions", nil, "", nil); code != 404 {
		t.Fatalf("GET versions with history off: %d", code)
	}
}

// Reading history needs read access; taking and restoring versions needs
// write access; a named version records who took it.
func TestVersionsAuth(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	rw := token(t, "writer", time.Hour, "d:rw")
	ro := token(t, "reader", time.Hour, "d:r")
	other := token(t, "o", time.Hour, "elsewhere:rw")
	base := httpURL(ts) + "/v1/docs/d"
	if code := getJSON(t, "POST", base+"/edits", map[string]any{"edits": [][]any{{0, 0, "x"}}}, rw, nil); code != 200 {
		t.Fatalf("write with rw: %d", code)
	}
	var v versionOut
	if code := getJSON(t, "POST", base+"/versions", map[string]string{"label": "mine"}, rw, &v); code != 201 || !slices.Equal(v.Authors, []string{"writer"}) {
		t.Fatalf("named version with rw: %d %+v", code, v)
	}
	for _, c := range []struct {
		method, path, tok string
		body              any
		want              int
	}{
		{"GET", "/versions", "", nil, 401},
		{"GET", "/versions", other, nil, 403},
		{"GET", "/versions/1", other, nil, 403},
		{"GET", "/diff?from=1", other, nil, 403},
		{"POST", "/versions", ro, map[string]string{"label": "x"}, 403},
		{"POST", "/restore", ro, map[string]any{"version": 1}, 403},
		{"POST", "/restore", "", map[string]any{"version": 1}, 401},
		{"GET", "/versions", ro, nil, 200},
		{"GET", "/versions/1", ro, nil, 200},
		{"GET", "/diff?from=1", ro, nil, 200},
		{"POST", "/restore", rw, map[string]any{"version": 1}, 200},
	} {
		if code := getJSON(t, c.method, base+c.path, c.body, c.tok, nil); code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, code, c.want)
		}
	}
}
