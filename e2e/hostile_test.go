package e2e

// The hostile-input suite: one test per way an outsider broke the server
// (issue 11), run black-box over loopback against the real server. Each
// asserts the refusal a client sees and that nothing was lost or bricked.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

var hostileSecret = []byte("hostile-suite-secret-of-32-bytes")

func (ts *testServer) base() string { return "http://" + ts.addr }

// do sends one request and returns the status and body.
func do(t *testing.T, method, u string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var jsonHdr = map[string]string{"Content-Type": "application/json"}

func docURL(ts *testServer, id, rest string) string {
	return ts.base() + "/v1/docs/" + url.PathEscape(id) + rest
}

// Positions and lengths near the integer limits are refused with 4xx; the
// process keeps serving and the document keeps its text.
func TestHostileOverflowEdits(t *testing.T) {
	ts := startServer(t, server.Config{})
	if code, b := do(t, "POST", docURL(ts, "n", "/edits"), []byte(`{"edits":[[0,0,"kept"]]}`), jsonHdr); code != 200 {
		t.Fatalf("seed edit: %d %s", code, b)
	}
	for _, body := range []string{
		`{"edits":[[9223372036854775807,1,""]]}`,
		`{"edits":[[1,9223372036854775807,""]]}`,
		`{"edits":[[9223372036854775807,9223372036854775807,""]]}`,
		`{"edits":[[4,9223372036854775807,""]]}`,
		`{"edits":[[9223372036854775807,0,"x"]]}`,
		`{"edits":[[18446744073709551615,1,""]]}`,
		`{"edits":[[-1,0,"x"]]}`,
		`{"edits":[[0,-1,""]]}`,
		`{"edits":[[1e300,0,"x"]]}`,
		`{"edits":[[2,1,""],[9223372036854775806,2,""]]}`,
		`{"edits":[[0,0,"x"]],"version":18446744073709551615}`,
	} {
		code, b := do(t, "POST", docURL(ts, "n", "/edits"), []byte(body), jsonHdr)
		if code < 400 || code >= 500 {
			t.Errorf("POST %s = %d %s, want 4xx", body, code, b)
		}
	}
	if code, b := do(t, "GET", docURL(ts, "n", "/text"), nil, nil); code != 200 || string(b) != "kept" {
		t.Fatalf("text after the hostile edits = %d %q", code, b)
	}
	ts.restart()
	if code, b := do(t, "GET", docURL(ts, "n", "/text"), nil, nil); code != 200 || string(b) != "kept" {
		t.Fatalf("text after restart = %d %q", code, b)
	}
}

// Root names past the loader's limits, and more roots than a document may
// have, are refused before anything is stored; reads never create roots.
func TestHostileRootsNeverBrickADocument(t *testing.T) {
	ts := startServer(t, server.Config{})
	long := strings.Repeat("r", 257)
	if code, _ := do(t, "POST", docURL(ts, "r", "/edits"), []byte(`{"root":"`+long+`","edits":[[0,0,"x"]]}`), jsonHdr); code != 400 {
		t.Errorf("edit of a 257-byte root = %d, want 400", code)
	}
	for _, path := range []string{"/text?root=", "?root=", "/events?root=", "/changes?root="} {
		if code, _ := do(t, "GET", docURL(ts, "r", path+long), nil, nil); code != 400 {
			t.Errorf("GET %s<257 bytes> = %d, want 400", path, code)
		}
	}
	for i := range 256 {
		body := fmt.Sprintf(`{"root":"root%d","edits":[[0,0,"%d"]]}`, i, i)
		if code, b := do(t, "POST", docURL(ts, "r", "/edits"), []byte(body), jsonHdr); code != 200 {
			t.Fatalf("root %d: %d %s", i, code, b)
		}
	}
	if code, _ := do(t, "POST", docURL(ts, "r", "/edits"), []byte(`{"root":"one-more","edits":[[0,0,"x"]]}`), jsonHdr); code != http.StatusRequestEntityTooLarge {
		t.Errorf("the 257th root = %d, want 413", code)
	}
	// A follower of a root that does not exist sees empty text and creates
	// nothing (the snapshot written by the next compaction stays loadable).
	if code, _ := do(t, "GET", docURL(ts, "r", "/changes?root=ghost"), nil, nil); code != 200 {
		t.Errorf("long poll of a missing root = %d", code)
	}
	ts.restart()
	var info struct{ Roots []string }
	code, b := do(t, "GET", docURL(ts, "r", ""), nil, nil)
	if err := json.Unmarshal(b, &info); code != 200 || err != nil || len(info.Roots) != 256 || slices.Contains(info.Roots, "ghost") {
		t.Fatalf("after restart: %d, %d roots (ghost: %v), %v", code, len(info.Roots), slices.Contains(info.Roots, "ghost"), err)
	}
}

// Anything acked can be reloaded: random writes through every write path,
// hostile ones mixed in, then a restart; every document loads and reads
// the same, and no request ever got a 5xx.
func TestHostileAckedReloads(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ackedReloads(t, seed)
		})
	}
}

func ackedReloads(t *testing.T, seed uint64) {
	ts := startServer(t, server.Config{CompactEntries: 7, OpRate: 1e9, OpBurst: 1 << 30})
	rng := rand.New(rand.NewPCG(seed, 42))
	docs := []string{"a", "b/c", "d e", strings.Repeat("l", 255)}
	root := func() string {
		switch rng.IntN(10) {
		case 0:
			return strings.Repeat("x", 250+rng.IntN(10)) // around the name limit
		case 1:
			return fmt.Sprint("many", rng.IntN(300)) // past the root count
		}
		return []string{"body", "title", "ß€"}[rng.IntN(3)]
	}
	check := func(what string, code int, b []byte) {
		if code >= 500 {
			t.Fatalf("seed %d: %s = %d %s", seed, what, code, b)
		}
	}
	for step := range 250 {
		id := docs[rng.IntN(len(docs))]
		switch rng.IntN(5) {
		case 0, 1: // REST edits, sometimes hostile
			pos, del := rng.IntN(8), rng.IntN(3)
			if rng.IntN(8) == 0 {
				pos = 1<<62 + rng.IntN(1000)
			}
			body, _ := json.Marshal(map[string]any{"root": root(), "edits": [][]any{{pos, del, fmt.Sprint("s", step)}}})
			code, b := do(t, "POST", docURL(ts, id, "/edits"), body, jsonHdr)
			check("POST edits", code, b)
		case 2: // a WebSocket client's edits (a fresh client: a refused
			// batch, a root past the limits, is terminal for its document)
			c := dialClient(t, ts.url(), crdt.AgentID(seed<<20|uint64(step)+1), nil)
			d := join(t, c, id)
			_ = d.Insert(root(), 0, fmt.Sprint("w", step))
			ctx, cancel := contextTimeout(10 * time.Second)
			_ = d.WaitDurable(ctx) // a refused batch ends with the terminal error
			cancel()
			_ = c.Close()
		case 3: // a snapshot import with its own roots
			src := crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(5000 + step)})
			_ = src.Text(root()).Insert(0, fmt.Sprint("snap", step))
			code, b := do(t, "PUT", docURL(ts, id, "/snapshot"), src.EncodeSnapshot(), map[string]string{"Content-Type": "application/octet-stream"})
			check("PUT snapshot", code, b)
		case 4: // followers of arbitrary roots
			code, b := do(t, "GET", docURL(ts, id, "/changes?root="+url.QueryEscape(root())), nil, nil)
			check("GET changes", code, b)
		}
	}
	before := readAll(t, ts, docs)
	ts.restart()
	after := readAll(t, ts, docs)
	if !maps_equal(before, after) {
		t.Fatalf("seed %d: documents differ after restart:\nbefore %v\nafter  %v", seed, before, after)
	}
}

// readAll reads every root of every document over HTTP.
func readAll(t *testing.T, ts *testServer, docs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range docs {
		var info struct{ Roots []string }
		code, b := do(t, "GET", docURL(ts, id, ""), nil, nil)
		if code == 404 {
			continue
		}
		if code != 200 || json.Unmarshal(b, &info) != nil {
			t.Fatalf("GET %s = %d %s", id, code, b)
		}
		for _, r := range info.Roots {
			code, b := do(t, "GET", docURL(ts, id, "/text?root="+url.QueryEscape(r)), nil, nil)
			if code != 200 {
				t.Fatalf("GET %s text %s = %d %s", id, r, code, b)
			}
			out[id+"\x00"+r] = string(b)
		}
	}
	return out
}

func maps_equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Development mode is not open to other web pages: cross-site writes are
// refused whatever their content type, JSON routes require JSON, and only
// loopback Host names are answered (DNS rebinding).
func TestHostileBrowserRules(t *testing.T) {
	ts := startServer(t, server.Config{})
	_, port, _ := net.SplitHostPort(ts.addr)
	edit := []byte(`{"edits":[[0,0,"x"]]}`)
	for _, c := range []struct {
		name, method, path string
		body               []byte
		hdr                map[string]string
		want               int
	}{
		{"cross-site text/plain", "POST", "/edits", edit, map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403},
		{"cross-site form", "POST", "/edits", edit, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"cross-site JSON", "POST", "/edits", edit, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}, 403},
		{"cross-site delete", "DELETE", "", nil, map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site snapshot", "PUT", "/snapshot", []byte{1}, map[string]string{"Origin": "https://evil.example"}, 403},
		{"no origin, text/plain", "POST", "/edits", edit, map[string]string{"Content-Type": "text/plain"}, 415},
		{"no content type", "POST", "/edits", edit, nil, 415},
		{"rebinding host", "POST", "/edits", edit, map[string]string{"Host": "evil.example:" + port, "Content-Type": "application/json"}, 421},
		{"rebinding host read", "GET", "/text", nil, map[string]string{"Host": "evil.example:" + port}, 421},
		{"same-origin JSON", "POST", "/edits", edit, map[string]string{"Origin": "http://" + ts.addr, "Content-Type": "application/json"}, 200},
		{"localhost", "POST", "/edits", edit, map[string]string{"Host": "localhost:" + port, "Content-Type": "application/json"}, 200},
	} {
		code, b := do(t, c.method, docURL(ts, "x", c.path), c.body, c.hdr)
		if code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, b, c.want)
		}
	}
	if code, b := do(t, "GET", docURL(ts, "x", "/text"), nil, nil); code != 200 || string(b) != "xx" {
		t.Errorf("text = %d %q, want only the two allowed edits", code, b)
	}
	if code, _ := do(t, "POST", ts.base()+"/v1/rt", nil, map[string]string{"Origin": "https://evil.example"}); code != 403 {
		t.Errorf("cross-site fallback session = %d, want 403", code)
	}
	if code, _ := do(t, "GET", ts.base()+"/healthz", nil, map[string]string{"Host": "10.1.2.3:" + port}); code != 200 {
		t.Errorf("probe by address = %d, want 200", code)
	}
	// The WebSocket upgrade from a rebinding host is refused too.
	h := http.Header{"Host": {"evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(ts.url(), h); err == nil || resp == nil || resp.StatusCode != 421 {
		t.Errorf("upgrade with a foreign Host: %v %v, want 421", err, resp)
	}
}

// A request without credentials is refused from its headers, at once, and
// its slow body is never waited for; a slow body with credentials is cut
// at the body timeout.
func TestHostileSlowBodies(t *testing.T) {
	ts := startServer(t, server.Config{AuthSecret: hostileSecret, BodyTimeout: 300 * time.Millisecond})
	tok, err := server.NewToken(hostileSecret, server.Claims{Docs: []string{"*:rw"}, RegisteredClaims: registered("w")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, auth string
		want       string
	}{
		{"no token", "", "HTTP/1.1 401"},
		{"slow body", "Authorization: Bearer " + tok + "\r\n", "HTTP/1.1 408"},
	} {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/docs/notes%%2Fa/edits HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{\"ed", ts.addr, c.auth)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		status, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(status, c.want) {
			t.Errorf("%s: status line %q, %v; want %s", c.name, status, err, c.want)
		}
		// The server closes the connection rather than read the rest.
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Errorf("%s: connection not closed: %v", c.name, err)
		}
		conn.Close()
	}
}

// The fallback transport refuses bodies of empty frames, too many frames
// and concurrent POSTs before delivering anything.
func TestHostileFallbackFrames(t *testing.T) {
	ts := startServer(t, server.Config{})
	code, b := do(t, "POST", ts.base()+"/v1/rt", nil, nil)
	var sess struct{ Frames string }
	if code != 201 || json.Unmarshal(b, &sess) != nil {
		t.Fatalf("open: %d %s", code, b)
	}
	post := func(seq int, body []byte) int {
		code, _ := do(t, "POST", fmt.Sprintf("%s%s&seq=%d", ts.base(), sess.Frames, seq), body, nil)
		return code
	}
	if code := post(1, make([]byte, 4<<20)); code != 400 {
		t.Errorf("4 MiB of zeros (a million empty frames) = %d, want 400", code)
	}
	hello := protocol.Encode(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{77}})
	var many []byte
	for range 257 {
		many = binary.BigEndian.AppendUint32(many, uint32(len(hello)))
		many = append(many, hello...)
	}
	if code := post(1, many); code != 400 {
		t.Errorf("257 frames in one POST = %d, want 400", code)
	}
	// A POST in progress (headers sent, body trickling) holds the session:
	// a second one is refused at once. The slow POST may itself meet a probe
	// in progress and be refused; then it is sent again.
	slow := func() <-chan string {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST %s&seq=1 HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n\x00", sess.Frames, ts.addr)
		answered := make(chan string, 1)
		go func() {
			status, _ := bufio.NewReader(conn).ReadString('\n')
			answered <- status
		}()
		return answered
	}
	answered := slow()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := post(1, binary.BigEndian.AppendUint32(nil, 0))
		if code == http.StatusConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("concurrent POST = %d, want 409", code)
		}
		// 400 until the slow POST holds the session (empty frame refused).
		select {
		case status := <-answered:
			if !strings.HasPrefix(status, "HTTP/1.1 409") {
				t.Fatalf("slow POST answered %q before its body was sent", status)
			}
			answered = slow()
		default:
		}
	}
}

// A document id longer than storage can key is refused at the edge with the
// terminal bad-doc-id code, over WebSocket and HTTP alike.
func TestHostileDocIDLimit(t *testing.T) {
	if protocol.DefaultMaxDocID > storage.MaxIDBytes {
		t.Fatalf("protocol allows %d-byte ids, storage %d", protocol.DefaultMaxDocID, storage.MaxIDBytes)
	}
	ts := startServer(t, server.Config{})
	id := strings.Repeat("i", storage.MaxIDBytes+1)
	code, b := do(t, "POST", docURL(ts, id, "/edits"), []byte(`{"edits":[[0,0,"x"]]}`), jsonHdr)
	var e struct{ Code protocol.Code }
	if code != 400 || json.Unmarshal(b, &e) != nil || e.Code != protocol.CodeBadDocID {
		t.Errorf("POST edits with a %d-byte id = %d %s, want 400 code %d", len(id), code, b, protocol.CodeBadDocID)
	}
	if code, _ := do(t, "POST", docURL(ts, id[1:], "/edits"), []byte(`{"edits":[[0,0,"x"]]}`), jsonHdr); code != 200 {
		t.Errorf("POST edits with a %d-byte id = %d, want 200", len(id)-1, code)
	}
	conn, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{5}}))
	_ = conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Join{Doc: id}))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if protocol.Code(ce.Code) != protocol.CodeBadDocID || protocol.Code(ce.Code).Retry() {
				t.Errorf("join with a %d-byte id closed with %d, want terminal %d", len(id), ce.Code, protocol.CodeBadDocID)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Listing answers any valid token with the documents it may read.
func TestHostileListingFollowsGrants(t *testing.T) {
	ts := startServer(t, server.Config{AuthSecret: hostileSecret})
	mint := func(docs ...string) map[string]string {
		tok, err := server.NewToken(hostileSecret, server.Claims{Docs: docs, RegisteredClaims: registered("u")})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	}
	admin := mint("*:rw")
	for _, id := range []string{"notes/a", "notes/b", "wiki/c"} {
		if code, b := do(t, "POST", docURL(ts, id, "/edits"), []byte(`{"edits":[[0,0,"x"]]}`), admin); code != 200 {
			t.Fatalf("POST %s = %d %s", id, code, b)
		}
	}
	for _, c := range []struct {
		hdr  map[string]string
		want []string
		code int
	}{
		{mint("notes/*:rw"), []string{"notes/a", "notes/b"}, 200},
		{mint("wiki/c:r"), []string{"wiki/c"}, 200},
		{mint("other:r"), nil, 200},
		{admin, []string{"notes/a", "notes/b", "wiki/c"}, 200},
		{nil, nil, 401},
	} {
		code, b := do(t, "GET", ts.base()+"/v1/docs", nil, c.hdr)
		var page struct{ Docs []struct{ ID string } }
		_ = json.Unmarshal(b, &page)
		var got []string
		for _, d := range page.Docs {
			got = append(got, d.ID)
		}
		if code != c.code || !slices.Equal(got, c.want) {
			t.Errorf("GET /v1/docs = %d %v, want %d %v", code, got, c.code, c.want)
		}
	}
}

// A secret too short for HS256 is refused.
func TestHostileWeakSecret(t *testing.T) {
	store, err := storage.Open(t.TempDir()+"/c.db", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, s := range []string{"a", strings.Repeat("s", server.MinSecretBytes-1)} {
		if _, err := server.New(server.Config{Store: store, AuthSecret: []byte(s)}); !errors.Is(err, server.ErrWeakSecret) {
			t.Errorf("New with a %d-byte secret: %v, want ErrWeakSecret", len(s), err)
		}
	}
}

func registered(sub string) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// A snapshot whose ops all wait for a missing dependency changes nothing
// visible, but it is stored: once the dependency arrives, the text shows
// and survives a restart (found by FuzzHTTPAPI).
func TestHostilePendingOnlyImport(t *testing.T) {
	ts := startServer(t, server.Config{})
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	_ = a.Text("body").Insert(0, "x")
	b := crdt.NewDoc(crdt.Options{Agent: 2})
	if err := b.ApplyUpdate(a.TakeUpdate()); err != nil {
		t.Fatal(err)
	}
	_ = b.Text("body").Insert(1, "y")
	c := crdt.NewDoc(crdt.Options{Agent: 3})
	if err := c.ApplyUpdate(b.TakeUpdate()); err != nil || c.Pending() == 0 {
		t.Fatalf("setup: %v, %d pending", err, c.Pending())
	}
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	for i, snap := range [][]byte{c.EncodeSnapshot(), a.EncodeSnapshot()} {
		if code, body := do(t, "PUT", docURL(ts, "p", "/snapshot"), snap, octet); code != 200 {
			t.Fatalf("PUT %d = %d %s", i, code, body)
		}
	}
	if code, text := do(t, "GET", docURL(ts, "p", "/text"), nil, nil); code != 200 || string(text) != "xy" {
		t.Fatalf("before restart: %d %q, want \"xy\"", code, text)
	}
	ts.restart()
	if code, text := do(t, "GET", docURL(ts, "p", "/text"), nil, nil); code != 200 || string(text) != "xy" {
		t.Fatalf("after restart: %d %q, want \"xy\"", code, text)
	}
}
