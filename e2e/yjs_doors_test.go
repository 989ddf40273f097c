package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// The Yjs doors with the real providers: interop/yjs/doors.mjs runs
// y-websocket's WebsocketProvider and @hocuspocus/provider (pinned in
// interop/yjs/package.json, installed by `make yjs-oracle`) against a
// server started here; these tests check both sides.

// runDoors runs a doors.mjs scenario against ts and decodes its output.
func runDoors(t *testing.T, ts *testServer, scenario string, args map[string]any, out any) {
	t.Helper()
	if err := tryDoors(t, ts, scenario, args, out); err != nil {
		t.Fatal(err)
	}
}

func tryDoors(t *testing.T, ts *testServer, scenario string, args map[string]any, out any) error {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH (the Yjs door tests need it)")
	}
	dir, _ := filepath.Abs("../interop/yjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "y-websocket")); err != nil {
		t.Fatal("interop/yjs/node_modules missing: run make yjs-oracle (or bash interop/yjs/scripts/install.sh)")
	}
	raw, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "doors.mjs", scenario, "http://"+ts.addr, string(raw))
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("doors.mjs %s %s: %v\n%s", scenario, raw, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("doors.mjs %s output %q: %v", scenario, stdout.String(), err)
	}
	return nil
}

// httpGet reads a path of ts (with a token when set).
func httpGet(t *testing.T, ts *testServer, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+ts.addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// serverText is the text of root of a document, as the server has it.
func serverText(t *testing.T, ts *testServer, doc, root, token string) string {
	t.Helper()
	code, body := httpGet(t, ts, "/v1/docs/"+url.PathEscape(doc)+"/text?root="+url.QueryEscape(root), token)
	if code != http.StatusOK {
		t.Fatalf("GET text of %s: %d %s", doc, code, body)
	}
	return string(body)
}

// Three y-websocket and three Hocuspocus providers edit a text, a map, an
// array and a ProseMirror fragment of one document concurrently, dropping
// their connections at random; every replica ends the same, and the
// server's text is theirs.
func TestYjsDoorsConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	seed := time.Now().UnixNano() % 1_000_000
	t.Logf("seed %d", seed)
	ts := startServer(t, server.Config{})
	var view struct {
		T  string          `json:"t"`
		M  json.RawMessage `json:"m"`
		A  json.RawMessage `json:"a"`
		PM string          `json:"prosemirror"`
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "notes/today", "seed": seed, "steps": 300}, &view)
	if got := serverText(t, ts, "notes/today", "t", ""); got != view.T {
		t.Fatalf("server text %q, clients %q", got, view.T)
	}
	// The server's JSON of every root is the clients' toJSON(): the map and
	// the array as they are, the ProseMirror fragment's text in order.
	_, body := httpGet(t, ts, "/v1/docs/notes%2Ftoday", "")
	var info struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, info.Content["m"], view.M) || !sameJSON(t, info.Content["a"], view.A) {
		t.Fatalf("server map %s array %s; clients map %s array %s", info.Content["m"], info.Content["a"], view.M, view.A)
	}
	if got, want := pmText(t, info.Content["prosemirror"]), xmlText(view.PM); got != want {
		t.Fatalf("server fragment text %q, clients %q", got, want)
	}
	// And after a restart, from storage.
	ts.restart()
	if got := serverText(t, ts, "notes/today", "t", ""); got != view.T {
		t.Fatalf("after restart the server text is %q, clients had %q", got, view.T)
	}
	var again struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "read", map[string]any{"doc": "notes/today", "door": "hocuspocus"}, &again)
	if again.T != view.T {
		t.Fatalf("a new provider after restart reads %q, want %q", again.T, view.T)
	}
}

// In auth mode, three users (each a y-websocket and a Hocuspocus
// provider) converge too: their client ids are bound to them, and their
// own reconnects are never taken for forgery.
func TestYjsDoorsConvergeAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	ts := startServer(t, server.Config{AuthSecret: secret})
	var tokens []string
	for _, u := range []string{"ann", "ben", "cat"} {
		tokens = append(tokens, yjsToken(t, secret, u, u, "team/*:rw"))
	}
	seed := time.Now().UnixNano() % 1_000_000
	t.Logf("seed %d", seed)
	var view struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "team/auth", "seed": seed, "steps": 200, "tokens": tokens}, &view)
	if got := serverText(t, ts, "team/auth", "t", yjsToken(t, secret, "admin", "Admin", "*:rw")); got != view.T {
		t.Fatalf("server text %q, clients %q", got, view.T)
	}
}

// yjsToken is a token for sub named name with grants.
func yjsToken(t *testing.T, secret []byte, sub, name string, grants ...string) string {
	t.Helper()
	tok, err := server.NewToken(secret, server.Claims{Name: name, Docs: grants,
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// In auth mode a peer's awareness shows the name of its token, whatever
// it claims, through either door; its state is gone from the others within
// a flush of its connection closing.
func TestYjsDoorsAwareness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	ts := startServer(t, server.Config{AuthSecret: secret})
	alice := yjsToken(t, secret, "alice", "Alice", "team/*:rw")
	bob := yjsToken(t, secret, "bob", "Bob", "team/*:r")
	for _, pair := range [][2]string{{"hocuspocus", "y-websocket"}, {"y-websocket", "hocuspocus"}} {
		var out struct {
			User      map[string]string `json:"user"`
			RemovedMs int               `json:"removedMs"`
		}
		runDoors(t, ts, "awareness", map[string]any{"doc": "team/aware-" + pair[0], "a": pair[0], "b": pair[1], "tokenA": alice, "tokenB": bob}, &out)
		if out.User["name"] != "Alice" || out.User["id"] != "alice" || out.User["color"] == "#000000" {
			t.Fatalf("%s -> %s: the peer appears as %v, want the token's Alice", pair[0], pair[1], out.User)
		}
		if out.RemovedMs > 2000 {
			t.Fatalf("%s -> %s: a closed peer's state stayed %d ms", pair[0], pair[1], out.RemovedMs)
		}
		t.Logf("%s -> %s: stamped %v, removed after %d ms", pair[0], pair[1], out.User, out.RemovedMs)
	}
}

// Who may do what through each door: no token, a bad one, one for another
// document, a read-only one that writes, a good one.
func TestYjsDoorsAuthMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	ts := startServer(t, server.Config{AuthSecret: secret})
	rw := yjsToken(t, secret, "w", "Writer", "team/*:rw")
	ro := yjsToken(t, secret, "r", "Reader", "team/*:r")
	other := yjsToken(t, secret, "o", "Other", "elsewhere/*:rw")
	bad := yjsToken(t, []byte("another secret of at least 32 bytes!"), "w", "Writer", "team/*:rw")
	admin := yjsToken(t, secret, "admin", "Admin", "*:rw")
	cases := []struct {
		name, token string
		deny        bool
		readOnly    bool
	}{
		{"no token", "", true, false},
		{"bad signature", bad, true, false},
		{"another document", other, true, false},
		{"read-only writes", ro, false, true},
		{"read-write", rw, false, false},
	}
	for _, door := range []string{"hocuspocus", "y-websocket"} {
		for _, c := range cases {
			doc := "team/auth-" + door + "-" + strings.ReplaceAll(c.name, " ", "-")
			var out struct {
				Denied   []string `json:"denied"`
				Scope    *string  `json:"scope"`
				Synced   bool     `json:"synced"`
				Closes   []int    `json:"closes"`
				Unsynced int      `json:"unsynced"`
			}
			runDoors(t, ts, "auth", map[string]any{"door": door, "doc": doc, "token": c.token}, &out)
			written := false
			if code, body := httpGet(t, ts, "/v1/docs/"+url.PathEscape(doc)+"/text?root=t", admin); code == http.StatusOK {
				written = strings.Contains(string(body), "written")
			}
			switch {
			case c.deny:
				if len(out.Denied) == 0 || written || out.Synced || out.Scope != nil {
					t.Errorf("%s, %s: want a denial, got %+v (written %v)", door, c.name, out, written)
				}
			case c.readOnly:
				if written || len(out.Denied) == 0 && door == "y-websocket" {
					t.Errorf("%s, %s: want the write refused, got %+v (written %v)", door, c.name, out, written)
				}
				if door == "hocuspocus" && (out.Scope == nil || *out.Scope != "readonly" || out.Unsynced == 0) {
					t.Errorf("%s, %s: want scope readonly and the change unsynced, got %+v", door, c.name, out)
				}
			default:
				if !written || len(out.Denied) != 0 {
					t.Errorf("%s, %s: want the write stored, got %+v (written %v)", door, c.name, out, written)
				}
				if door == "hocuspocus" && (out.Scope == nil || *out.Scope != "read-write" || out.Unsynced != 0) {
					t.Errorf("%s, %s: want scope read-write and synced, got %+v", door, c.name, out)
				}
			}
		}
	}
}

// A Hocuspocus provider's stateless message reaches the document's other
// providers; the app's broadcast over HTTP reaches them too.
func TestYjsDoorsStateless(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var out struct {
		Got []string `json:"got"`
	}
	runDoors(t, ts, "stateless", map[string]any{"doc": "st"}, &out)
	if len(out.Got) != 1 || out.Got[0] != `{"hello":"world"}` {
		t.Fatalf("stateless: got %q", out.Got)
	}
}

// A document is native or Yjs: each door refuses the other kind with a
// typed error (4517), and nothing is lost or converted.
func TestYjsDoorsWrongKind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	// A native document, written by the Go client.
	c := dialToken(t, ts.url(), "", nil)
	d, err := c.Join(context.Background(), "native-doc")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Insert("t", 0, "native text"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Denied []string `json:"denied"`
		Scope  *string  `json:"scope"`
	}
	if err := tryDoors(t, ts, "auth", map[string]any{"door": "hocuspocus", "doc": "native-doc"}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Denied) == 0 || !strings.Contains(out.Denied[0], "native") || out.Scope != nil {
		t.Fatalf("hocuspocus on a native document: %+v, want PermissionDenied only", out)
	}
	if got := serverText(t, ts, "native-doc", "t", ""); got != "native text" {
		t.Fatalf("native document after the refused door: %q", got)
	}
	// A Yjs document, opened natively.
	var w struct{ Text string }
	runDoors(t, ts, "write", map[string]any{"doc": "yjs-doc", "markers": 3}, &w)
	_, err = c.Join(ctx, "yjs-doc")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeWrongKind {
		t.Fatalf("native open of a Yjs document: %v, want code %d", err, protocol.CodeWrongKind)
	}
}

// do sends a request to ts with a body and content type.
func doReq(t *testing.T, ts *testServer, method, path, ctype string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+ts.addr+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// The HTTP views of a Yjs document: its JSON (text and delta, ProseMirror
// JSON, maps and arrays), its snapshot as a Yjs update that imports into a
// new document (a migration), kinds fixed by POST /v1/docs.
func TestYjsDoorsHTTPViews(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var view struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "views", "clients": 1, "steps": 60, "seed": 7}, &view)
	code, body := httpGet(t, ts, "/v1/docs/views", "")
	if code != http.StatusOK {
		t.Fatalf("GET doc: %d %s", code, body)
	}
	var info struct {
		Kind    string `json:"kind"`
		Content map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	var text struct {
		Text  string            `json:"text"`
		Delta []json.RawMessage `json:"delta"`
	}
	var pm struct {
		Type    string            `json:"type"`
		Content []json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(info.Content["t"], &text)
	_ = json.Unmarshal(info.Content["prosemirror"], &pm)
	if info.Kind != "yjs" || text.Text != view.T || pm.Type != "doc" || info.Content["m"] == nil || info.Content["a"] == nil {
		t.Fatalf("GET /v1/docs/views: %s", body)
	}

	// The snapshot is a Yjs update; it imports into a new document.
	code, hdr, snap := doReq(t, ts, "GET", "/v1/docs/views/snapshot", "", nil)
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/vnd.yjs.update" {
		t.Fatalf("GET snapshot: %d %s", code, hdr.Get("Content-Type"))
	}
	if code, _, body := doReq(t, ts, "PUT", "/v1/docs/migrated/snapshot", "application/vnd.yjs.update", snap); code != http.StatusOK {
		t.Fatalf("PUT Yjs snapshot: %d %s", code, body)
	}
	if got := serverText(t, ts, "migrated", "t", ""); got != view.T {
		t.Fatalf("imported document text %q, want %q", got, view.T)
	}
	var read struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "read", map[string]any{"doc": "migrated", "door": "y-websocket"}, &read)
	if read.T != view.T {
		t.Fatalf("a provider reads the imported document as %q, want %q", read.T, view.T)
	}
	// A Yjs update into a native document, and garbage, are refused.
	if code, _, body := doReq(t, ts, "POST", "/v1/docs", "application/json", []byte(`{"id":"native","kind":"native"}`)); code != http.StatusCreated {
		t.Fatalf("create native: %d %s", code, body)
	}
	if code, _, body := doReq(t, ts, "PUT", "/v1/docs/native/snapshot", "application/vnd.yjs.update", snap); code != http.StatusConflict || !strings.Contains(string(body), "4517") {
		t.Fatalf("Yjs snapshot into a native document: %d %s", code, body)
	}
	for _, garbage := range [][]byte{{0x01, 0x01}, {0xff, 0xff, 0xff, 0xff, 0x0f}, []byte("not yjs")} {
		code, _, body := doReq(t, ts, "PUT", "/v1/docs/garbage/snapshot", "application/vnd.yjs.update", garbage)
		if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Fatalf("garbage Yjs snapshot % x: %d %s", garbage, code, body)
		}
	}
	if code, body := httpGet(t, ts, "/v1/docs/garbage", ""); code != http.StatusNotFound {
		t.Fatalf("a refused import left a document: %d %s", code, body)
	}
	// POST /v1/docs fixes a kind: the native door then refuses the document.
	if code, _, body := doReq(t, ts, "POST", "/v1/docs", "application/json", []byte(`{"id":"made","kind":"yjs"}`)); code != http.StatusCreated {
		t.Fatalf("create yjs: %d %s", code, body)
	}
	if code, _, _ := doReq(t, ts, "POST", "/v1/docs", "application/json", []byte(`{"id":"made","kind":"yjs"}`)); code != http.StatusConflict {
		t.Fatalf("second create: %d, want 409", code)
	}
	ts.restart()
	code, body = httpGet(t, ts, "/v1/docs/made", "")
	if code != http.StatusOK || !strings.Contains(string(body), `"kind":"yjs"`) {
		t.Fatalf("created Yjs document after restart: %d %s", code, body)
	}
}

// Version history of a Yjs document: a named version, more edits through
// a door, a restore: the Y.Text is back to the version's text, and a
// provider that connects afterwards reads it.
func TestYjsDoorsVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var w struct{ Text string }
	runDoors(t, ts, "write", map[string]any{"doc": "hist", "markers": 5, "prefix": "a"}, &w)
	code, _, body := doReq(t, ts, "POST", "/v1/docs/hist/versions", "application/json", []byte(`{"label":"five"}`))
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("named version: %d %s", code, body)
	}
	var v struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Seq == 0 {
		t.Fatalf("named version answer %s: %v", body, err)
	}
	runDoors(t, ts, "write", map[string]any{"doc": "hist", "markers": 3, "prefix": "b"}, &w)
	if got := serverText(t, ts, "hist", "t", ""); !strings.Contains(got, "<b2>") {
		t.Fatalf("before restore: %q", got)
	}
	code, _, body = doReq(t, ts, "POST", "/v1/docs/hist/restore", "application/json", []byte(fmt.Sprintf(`{"version":%d}`, v.Seq)))
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	want := "<a0><a1><a2><a3><a4>"
	code, view := httpGet(t, ts, fmt.Sprintf("/v1/docs/hist/versions/%d", v.Seq), "")
	var vv struct {
		Content map[string]struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(view, &vv); code != http.StatusOK || err != nil || vv.Content["t"].Text != want {
		t.Fatalf("the version's view: %d %s", code, view)
	}
	if got := serverText(t, ts, "hist", "t", ""); got != want {
		t.Fatalf("after restore the server has %q, want %q", got, want)
	}
	var r struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "read", map[string]any{"doc": "hist", "door": "y-websocket"}, &r)
	if r.T != want {
		t.Fatalf("a provider reads %q after the restore, want %q", r.T, want)
	}
}

// sameJSON compares two JSON texts as values (map keys in any order).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// pmText is the text of a ProseMirror JSON document, its text nodes in
// order, one line per top-level node.
func pmText(t *testing.T, raw []byte) string {
	t.Helper()
	var doc struct {
		Content []json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("ProseMirror JSON %s: %v", raw, err)
	}
	var lines []string
	for _, n := range doc.Content {
		var sb strings.Builder
		var walk func(json.RawMessage)
		walk = func(r json.RawMessage) {
			var node struct {
				Text    string            `json:"text"`
				Content []json.RawMessage `json:"content"`
			}
			_ = json.Unmarshal(r, &node)
			sb.WriteString(node.Text)
			for _, c := range node.Content {
				walk(c)
			}
		}
		walk(n)
		lines = append(lines, sb.String())
	}
	return strings.Join(lines, "\n")
}

// xmlText is the text of Y.XmlFragment#toString() output for a fragment of
// flat elements: each element's text, one line per element.
func xmlText(s string) string {
	var lines []string
	for _, part := range strings.Split(s, "</paragraph>") {
		if part == "" {
			continue
		}
		lines = append(lines, strings.TrimPrefix(part, "<paragraph>"))
	}
	return strings.Join(lines, "\n")
}

// SSE and long-poll followers of a Yjs map or fragment root get its JSON
// (a snapshot, then a json event per change, coalesced when behind); the
// last one equals the server's view.
func TestYjsDoorsJSONFeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var view struct {
		M json.RawMessage `json:"m"`
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "feed", "clients": 1, "steps": 20, "seed": 3}, &view)
	req, _ := http.NewRequest("GET", "http://"+ts.addr+"/v1/docs/feed/events?root=m", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan [2]string, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				events <- [2]string{name, strings.TrimPrefix(line, "data: ")}
			}
		}
	}()
	next := func(want string) json.RawMessage {
		t.Helper()
		for ev := range events {
			if ev[0] != want {
				continue
			}
			var e struct {
				JSON json.RawMessage `json:"json"`
			}
			if err := json.Unmarshal([]byte(ev[1]), &e); err != nil {
				t.Fatalf("%s event %s: %v", want, ev[1], err)
			}
			return e.JSON
		}
		t.Fatalf("the feed ended before a %s event", want)
		return nil
	}
	if got := next("snapshot"); !sameJSON(t, got, view.M) {
		t.Fatalf("snapshot of the map root %s, want %s", got, view.M)
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "feed", "clients": 1, "steps": 40, "seed": 4}, &view)
	for {
		got := next("json")
		if sameJSON(t, got, view.M) {
			break
		}
	}
	code, body := httpGet(t, ts, "/v1/docs/feed/changes?root=m&since=1&wait=0s", "")
	var poll struct {
		JSON *struct {
			JSON json.RawMessage `json:"json"`
		} `json:"json"`
		Reset *struct {
			JSON json.RawMessage `json:"json"`
		} `json:"reset"`
	}
	if err := json.Unmarshal(body, &poll); code != http.StatusOK || err != nil {
		t.Fatalf("long poll: %d %s", code, body)
	}
	got := json.RawMessage(nil)
	if poll.Reset != nil {
		got = poll.Reset.JSON
	}
	if poll.JSON != nil {
		got = poll.JSON.JSON
	}
	if !sameJSON(t, got, view.M) {
		t.Fatalf("long poll of the map root: %s, want %s", body, view.M)
	}
}

// Version history of a Yjs document's structured roots: a Y.Map with a
// nested map, a Y.Array with a nested array and a ProseMirror document
// (y-prosemirror) are written through the Hocuspocus door and versioned,
// then all three are edited, then restored: providers of both doors read
// exactly the version's content again (toJSON, and the ProseMirror JSON
// y-prosemirror makes of the fragment), and so do the server's views.
func TestYjsDoorsRestoreStructured(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	type view struct {
		M  json.RawMessage `json:"m"`
		A  json.RawMessage `json:"a"`
		PM json.RawMessage `json:"pm"`
	}
	var want, later view
	runDoors(t, ts, "structured", map[string]any{"doc": "rich", "stage": "version"}, &want)
	if !strings.Contains(string(want.PM), `"Title"`) || !strings.Contains(string(want.M), `"nested"`) {
		t.Fatalf("version content: %+v", want)
	}
	code, _, body := doReq(t, ts, "POST", "/v1/docs/rich/versions", "application/json", []byte(`{"label":"before edits"}`))
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("named version: %d %s", code, body)
	}
	var v struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Seq == 0 {
		t.Fatalf("named version answer %s: %v", body, err)
	}
	runDoors(t, ts, "structured", map[string]any{"doc": "rich", "stage": "later"}, &later)
	if sameJSON(t, later.M, want.M) || sameJSON(t, later.A, want.A) || sameJSON(t, later.PM, want.PM) {
		t.Fatalf("the later edits left a root as it was: %+v", later)
	}
	code, _, body = doReq(t, ts, "POST", "/v1/docs/rich/restore", "application/json", []byte(fmt.Sprintf(`{"version":%d}`, v.Seq)))
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	var res struct {
		Applied int `json:"applied"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Applied < 3 {
		t.Fatalf("restore answer %s, want the three roots restored", body)
	}
	for _, door := range []string{"y-websocket", "hocuspocus"} {
		var got view
		runDoors(t, ts, "readStructured", map[string]any{"doc": "rich", "door": door}, &got)
		if !sameJSON(t, got.M, want.M) || !sameJSON(t, got.A, want.A) || !sameJSON(t, got.PM, want.PM) {
			t.Fatalf("%s reads after the restore\nm  %s\na  %s\npm %s\nwant\nm  %s\na  %s\npm %s", door, got.M, got.A, got.PM, want.M, want.A, want.PM)
		}
	}
	code, body = httpGet(t, ts, "/v1/docs/rich", "")
	if code != http.StatusOK {
		t.Fatalf("GET doc: %d %s", code, body)
	}
	var info struct {
		Content map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, info.Content["m"], want.M) || !sameJSON(t, info.Content["a"], want.A) || pmText(t, info.Content["prosemirror"]) != pmText(t, want.PM) {
		t.Fatalf("the server's content after the restore: %s", body)
	}
	// restoring the same version again changes nothing
	code, _, body = doReq(t, ts, "POST", "/v1/docs/rich/restore", "application/json", []byte(fmt.Sprintf(`{"version":%d}`, v.Seq)))
	if code != http.StatusOK || !strings.Contains(string(body), `"applied":0`) {
		t.Fatalf("second restore: %d %s", code, body)
	}
}

// Many documents share one Hocuspocus connection (one
// HocuspocusProviderWebsocket), including two providers of one document
// with sessionAwareness: every edit reaches its document only.
func TestYjsDoorsMultiplex(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var out struct {
		Texts map[string]string `json:"texts"`
	}
	runDoors(t, ts, "multiplex", map[string]any{}, &out)
	for doc, want := range map[string][]string{"mux/a": {"[0]"}, "mux/b": {"[1]"}, "mux/c": {"[2]"}, "mux/same": {"[3]", "[4]"}} {
		got := out.Texts[doc]
		n := 0
		for _, w := range want {
			if strings.Contains(got, w) {
				n += len(w)
			}
		}
		if n != len(got) {
			t.Errorf("%s reads %q, want exactly %v", doc, got, want)
		}
	}
}

// REST edits apply to a Yjs document's Y.Text roots only: a map or a
// ProseMirror fragment is refused (400) and left as it was.
func TestYjsDoorsRESTEditsTextOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	ts := startServer(t, server.Config{})
	var view struct {
		T string `json:"t"`
	}
	runDoors(t, ts, "converge", map[string]any{"doc": "rest", "clients": 1, "steps": 60, "seed": 9}, &view)
	code, _, body := doReq(t, ts, "POST", "/v1/docs/rest/edits", "application/json", []byte(`{"root":"t","edits":[[0,0,"REST "]]}`))
	if code != http.StatusOK {
		t.Fatalf("edit of the Y.Text: %d %s", code, body)
	}
	if got := serverText(t, ts, "rest", "t", ""); got != "REST "+view.T {
		t.Fatalf("after a REST edit: %q", got)
	}
	for _, root := range []string{"prosemirror", "m"} {
		_, before := httpGet(t, ts, "/v1/docs/rest", "")
		code, _, body := doReq(t, ts, "POST", "/v1/docs/rest/edits", "application/json", []byte(`{"root":"`+root+`","edits":[[0,0,"x"]]}`))
		if code != http.StatusBadRequest {
			t.Fatalf("text edit of the %s root: %d %s", root, code, body)
		}
		_, after := httpGet(t, ts, "/v1/docs/rest", "")
		var b, a struct {
			Content map[string]json.RawMessage `json:"content"`
		}
		_ = json.Unmarshal(before, &b)
		_ = json.Unmarshal(after, &a)
		if !sameJSON(t, b.Content[root], a.Content[root]) {
			t.Fatalf("a refused edit changed the %s root: %s -> %s", root, b.Content[root], a.Content[root])
		}
	}
}
