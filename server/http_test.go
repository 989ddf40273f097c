package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

func httpURL(ts *testServer) string { return ts.http.URL }

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, name string
	data     json.RawMessage
}

// sseStream reads events from an SSE response in a goroutine (owned by the
// stream, ended by close).
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
}

func openSSE(t *testing.T, u string, header http.Header) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("SSE %s: %d %s", u, resp.StatusCode, b)
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sseEvent, 1024)}
	go func() {
		defer close(s.events)
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.data != nil {
					if ev.name == "" {
						ev.name = "message"
					}
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = json.RawMessage(line[6:])
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() { _ = s.resp.Body.Close() }

// next returns the next event other than presence, failing after a deadline.
func (s *sseStream) next(skipPresence bool) sseEvent {
	s.t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatal("SSE stream ended")
			}
			if skipPresence && ev.name == "presence" {
				continue
			}
			return ev
		case <-time.After(10 * time.Second):
			s.t.Fatal("no SSE event in 10 s")
		}
	}
}

type deltaOp struct {
	Retain int    `json:"retain"`
	Insert string `json:"insert"`
	Delete int    `json:"delete"`
}

// follower is what an SSE consumer keeps: the text and its version.
type followerText struct {
	version uint64
	text    []rune
}

func (f *followerText) apply(t *testing.T, ev sseEvent) {
	t.Helper()
	switch ev.name {
	case "snapshot", "reset":
		var s struct {
			Version uint64 `json:"version"`
			Text    string `json:"text"`
		}
		_ = json.Unmarshal(ev.data, &s)
		f.version, f.text = s.Version, []rune(s.Text)
	case "change":
		var c struct {
			From    uint64    `json:"from"`
			Version uint64    `json:"version"`
			Ops     []deltaOp `json:"ops"`
		}
		_ = json.Unmarshal(ev.data, &c)
		if c.From != f.version {
			t.Fatalf("change from %d, follower at %d: gap or duplicate", c.From, f.version)
		}
		var out []rune
		in := f.text
		for _, op := range c.Ops {
			switch {
			case op.Retain > 0:
				out, in = append(out, in[:op.Retain]...), in[op.Retain:]
			case op.Delete > 0:
				in = in[op.Delete:]
			default:
				out = append(out, []rune(op.Insert)...)
			}
		}
		f.text, f.version = append(out, in...), c.Version
	}
}

func getJSON(t *testing.T, method, u string, body any, tok string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, u, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func docText(t *testing.T, ts *testServer, id string) (string, uint64) {
	t.Helper()
	var info struct {
		Text    string `json:"text"`
		Version uint64 `json:"version"`
	}
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/docs/"+url.PathEscape(id), nil, "", &info); code != 200 {
		t.Fatalf("GET doc: %d", code)
	}
	return info.Text, info.Version
}

// An SSE follower sees a snapshot, then changes that rebuild exactly the
// text WebSocket editors make; it resumes with Last-Event-ID without gap or
// duplicate while editing goes on.
func TestSSEFollowsAndResumes(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	a := dial(t, ts.url, 1)
	a.join("notes/sse")
	a.edit("notes/sse", 1, func(x *crdt.Text) error { return x.Insert(0, "hello 😀 world") })
	a.read() // applied
	u := httpURL(ts) + "/v1/docs/" + url.PathEscape("notes/sse") + "/events"
	s := openSSE(t, u, nil)
	var f followerText
	ev := s.next(true)
	if ev.name != "snapshot" {
		t.Fatalf("first event %q", ev.name)
	}
	f.apply(t, ev)
	if string(f.text) != "hello 😀 world" {
		t.Fatalf("snapshot text %q", string(f.text))
	}
	edit := func(batch uint64, fn func(x *crdt.Text) error) {
		a.edit("notes/sse", batch, fn)
	}
	for i := range 20 {
		edit(uint64(10+i), func(x *crdt.Text) error {
			if i%3 == 2 {
				return x.Delete(i%x.Len(), 1)
			}
			return x.Insert((i*7)%(x.Len()+1), fmt.Sprint(i, "é"))
		})
	}
	want := func() string { return a.doc.Text("body").String() }
	for f.version < a.doc.Version() {
		f.apply(t, s.next(true))
	}
	if string(f.text) != want() {
		t.Fatalf("SSE text %q, editor %q", string(f.text), want())
	}
	// Disconnect, keep editing, resume from the last id.
	lastID := fmt.Sprint(f.version)
	s.close()
	for i := range 10 {
		edit(uint64(100+i), func(x *crdt.Text) error { return x.Insert(x.Len(), fmt.Sprint("+", i)) })
	}
	s2 := openSSE(t, u, http.Header{"Last-Event-ID": {lastID}})
	for f.version < a.doc.Version() {
		ev := s2.next(true)
		if ev.name != "change" {
			t.Fatalf("resume sent %q, want changes only", ev.name)
		}
		f.apply(t, ev)
	}
	if string(f.text) != want() {
		t.Fatalf("after resume %q, editor %q", string(f.text), want())
	}
}

// Ids that are garbage, negative, from the future, or older than the kept
// history get a reset (a fresh snapshot), never a wrong delta.
func TestSSEResetOnUnknownIDs(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{ChangeLogEntries: 3})
	a := dial(t, ts.url, 1)
	a.join("r")
	for i := range 10 {
		a.edit("r", uint64(i+1), func(x *crdt.Text) error { return x.Insert(0, "x") })
	}
	for { // the HTTP reads below must see all ten
		if m, ok := a.read().(*protocol.Ack); ok && m.Batch == 10 && m.Status == protocol.AckApplied {
			break
		}
	}
	text, version := docText(t, ts, "r")
	for _, id := range []string{"garbage", "-1", "999999", "1"} {
		s := openSSE(t, httpURL(ts)+"/v1/docs/r/events", http.Header{"Last-Event-ID": {id}})
		ev := s.next(true)
		var f followerText
		f.apply(t, ev)
		if ev.name != "reset" || string(f.text) != text || f.version != version || ev.id != fmt.Sprint(version) {
			t.Errorf("Last-Event-ID %q: %s %s %q", id, ev.name, ev.id, ev.data)
		}
		s.close()
	}
}

// UTF-16 units: deltas a JavaScript consumer can apply to its string.
func TestSSEUTF16Units(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	a := dial(t, ts.url, 1)
	a.join("u")
	a.edit("u", 1, func(x *crdt.Text) error { return x.Insert(0, "😀😀") })
	a.read()
	s := openSSE(t, httpURL(ts)+"/v1/docs/u/events?units=utf16", nil)
	s.next(true)                                                         // snapshot
	a.edit("u", 2, func(x *crdt.Text) error { return x.Insert(1, "a") }) // between the emoji
	var c struct {
		Ops []deltaOp `json:"ops"`
	}
	_ = json.Unmarshal(s.next(true).data, &c)
	if len(c.Ops) != 2 || c.Ops[0].Retain != 2 || c.Ops[1].Insert != "a" {
		t.Fatalf("utf16 delta %+v, want retain 2 (one emoji = 2 units), insert a", c.Ops)
	}
}

// Long poll: the changes after since; an empty list after the wait.
func TestLongPoll(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	a := dial(t, ts.url, 1)
	a.join("lp")
	a.edit("lp", 1, func(x *crdt.Text) error { return x.Insert(0, "ab") })
	a.read()
	_, v := docText(t, ts, "lp")
	var ans struct {
		Version uint64 `json:"version"`
		Changes []struct {
			From uint64    `json:"from"`
			Ops  []deltaOp `json:"ops"`
		} `json:"changes"`
		Reset *struct{ Text string } `json:"reset"`
	}
	if code := getJSON(t, "GET", fmt.Sprintf("%s/v1/docs/lp/changes?since=%d&wait=50ms", httpURL(ts), v), nil, "", &ans); code != 200 || len(ans.Changes) != 0 || ans.Version != v {
		t.Fatalf("poll at head: %d %+v", code, ans)
	}
	done := make(chan int)
	go func() { // the poll waits for the edit below
		var a2 struct {
			Changes []json.RawMessage `json:"changes"`
		}
		code := getJSON(t, "GET", fmt.Sprintf("%s/v1/docs/lp/changes?since=%d&wait=10s", httpURL(ts), v), nil, "", &a2)
		if code != 200 {
			done <- -code
			return
		}
		done <- len(a2.Changes)
	}()
	a.edit("lp", 2, func(x *crdt.Text) error { return x.Insert(2, "c") })
	if n := <-done; n < 1 {
		t.Fatalf("long poll woke with %d changes", n)
	}
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/docs/lp/changes?wait=0s", nil, "", &ans); code != 200 || ans.Reset == nil || ans.Reset.Text != "abc" {
		t.Fatalf("poll without since: %d %+v", code, ans)
	}
}

// REST edits converge with WebSocket editors: with a base version they are
// rebased over what happened since; a repeated key is not applied twice.
func TestRESTEditsWithWebSocketEditors(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	a := dial(t, ts.url, 1)
	a.join("e")
	a.edit("e", 1, func(x *crdt.Text) error { return x.Insert(0, "hello world") })
	a.read()
	_, v0 := docText(t, ts, "e")
	var res struct {
		Version uint64 `json:"version"`
		Replay  bool   `json:"replay"`
	}
	post := func(body any) int { return getJSON(t, "POST", httpURL(ts)+"/v1/docs/e/edits", body, "", &res) }
	// The editor prepends while a script, at v0, replaces "world".
	a.edit("e", 2, func(x *crdt.Text) error { return x.Insert(0, ">> ") })
	for {
		if m, ok := a.read().(*protocol.Ack); ok && m.Batch == 2 && m.Status == protocol.AckApplied {
			break
		}
	}
	if code := post(map[string]any{"edits": [][]any{{6, 5, "there"}}, "version": v0, "key": "k1"}); code != 200 {
		t.Fatalf("edit with version: %d", code)
	}
	text, _ := docText(t, ts, "e")
	if text != ">> hello there" {
		t.Fatalf("rebased edit gave %q", text)
	}
	if code := post(map[string]any{"edits": [][]any{{6, 5, "there"}}, "version": v0, "key": "k1"}); code != 200 || !res.Replay {
		t.Fatalf("replayed key: %d %+v", code, res)
	}
	if text2, _ := docText(t, ts, "e"); text2 != text {
		t.Fatalf("a replayed key applied again: %q", text2)
	}
	// Without a version, positions are the current text's.
	if code := post(map[string]any{"edits": [][]any{{0, 3, ""}, {11, 0, "!"}}}); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	// The WebSocket editor receives the server's edits.
	for a.doc.Text("body").String() != "hello there!" {
		if u, ok := a.read().(*protocol.Update); ok {
			_ = a.doc.ApplyUpdate(u.Update)
		}
	}
	// Bad edits change nothing.
	var e struct {
		Code protocol.Code `json:"code"`
	}
	for _, body := range []any{
		map[string]any{"edits": [][]any{{0, 0, "x"}, {100, 1, ""}}},
		map[string]any{"edits": [][]any{{-1, 0, "x"}}},
		map[string]any{"edits": "nope"},
		map[string]any{"edits": [][]any{{0, 0, "x"}}, "version": 1},
	} {
		code := getJSON(t, "POST", httpURL(ts)+"/v1/docs/e/edits", body, "", &e)
		if code < 400 {
			t.Errorf("bad edit %v: %d", body, code)
		}
	}
	if text, _ := docText(t, ts, "e"); text != "hello there!" {
		t.Fatalf("bad edits changed the text: %q", text)
	}
}

// Snapshots: GET for backups, PUT merges as CRDT ops (never overwrites).
// DELETE tombstones: editors are told, later reads are 410.
func TestSnapshotMergeAndDelete(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	other := crdt.NewDoc(crdt.Options{Agent: 77})
	_ = other.Text("body").Insert(0, "imported ")
	a := dial(t, ts.url, 1)
	a.join("s")
	a.edit("s", 1, func(x *crdt.Text) error { return x.Insert(0, "mine") })
	a.read()
	req, _ := http.NewRequest("PUT", httpURL(ts)+"/v1/docs/s/snapshot", bytes.NewReader(other.EncodeSnapshot()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT snapshot: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	text, _ := docText(t, ts, "s")
	if !strings.Contains(text, "mine") || !strings.Contains(text, "imported ") {
		t.Fatalf("merge lost text: %q", text)
	}
	resp, err = http.Get(httpURL(ts) + "/v1/docs/s/snapshot")
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(err)
	}
	snap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d, err := crdt.LoadSnapshot(snap, crdt.Options{})
	if err != nil || d.Text("body").String() != text {
		t.Fatalf("GET snapshot: %v %q", err, d.Text("body").String())
	}
	req, _ = http.NewRequest("PUT", httpURL(ts)+"/v1/docs/s/snapshot", strings.NewReader("not a snapshot"))
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 400 {
		t.Fatalf("garbage snapshot: %d", resp.StatusCode)
	}
	// Delete.
	req, _ = http.NewRequest("DELETE", httpURL(ts)+"/v1/docs/s", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("DELETE: %v %v", err, resp.Status)
	}
	for {
		if e, ok := a.read().(*protocol.Error); ok {
			if e.Code != protocol.CodeDocDeleted {
				t.Fatalf("editor told %v", e.Code)
			}
			break
		}
	}
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/docs/s", nil, "", nil); code != http.StatusGone {
		t.Fatalf("GET after delete: %d", code)
	}
	b := dial(t, ts.url, 2)
	b.send(&protocol.Join{Doc: "s"})
	if e, ok := b.read().(*protocol.Error); !ok || e.Code != protocol.CodeDocDeleted {
		t.Fatalf("join after delete: %+v", e)
	}
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/docs/never", nil, "", nil); code != http.StatusNotFound {
		t.Fatalf("GET of a document never written: %d", code)
	}
}

// Auth on every endpoint: no token, a token for another document, a
// read-only token writing.
func TestHTTPAuth(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	rw := token(t, "w", time.Hour, "d:rw")
	ro := token(t, "r", time.Hour, "d:r")
	other := token(t, "o", time.Hour, "elsewhere:rw")
	if code := getJSON(t, "POST", httpURL(ts)+"/v1/docs/d/edits", map[string]any{"edits": [][]any{{0, 0, "x"}}}, rw, nil); code != 200 {
		t.Fatalf("write with rw: %d", code)
	}
	for _, c := range []struct {
		method, path, tok string
		want              int
	}{
		{"GET", "/v1/docs/d", "", 401},
		{"GET", "/v1/docs/d/text", other, 403},
		{"GET", "/v1/docs/d/events", other, 403},
		{"GET", "/v1/docs/d/changes?wait=0s", "", 401},
		{"POST", "/v1/docs/d/edits", ro, 403},
		{"PUT", "/v1/docs/d/snapshot", ro, 403},
		{"DELETE", "/v1/docs/d", ro, 403},
		{"GET", "/v1/docs/d/snapshot", ro, 200},
		{"GET", "/v1/docs/d/text", ro, 200},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"edits": [][]any{{0, 0, "y"}}}
		}
		if code := getJSON(t, c.method, httpURL(ts)+c.path, body, c.tok, nil); code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, code, c.want)
		}
	}
	// The token query parameter works for EventSource, which cannot set headers.
	s := openSSE(t, httpURL(ts)+"/v1/docs/d/events?token="+url.QueryEscape(ro), nil)
	if ev := s.next(true); ev.name != "snapshot" {
		t.Fatalf("SSE with ?token=: %s", ev.name)
	}
}

// Heartbeat comments keep an idle stream alive; a deleted document ends the
// stream with a "deleted" event.
func TestSSEHeartbeatAndDeleted(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{SSEHeartbeat: 20 * time.Millisecond})
	a := dial(t, ts.url, 1)
	a.join("hb")
	a.edit("hb", 1, func(x *crdt.Text) error { return x.Insert(0, "x") })
	a.read()
	resp, err := http.Get(httpURL(ts) + "/v1/docs/hb/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 256)
	go func() { // ends when the body ends
		defer close(lines)
		r := bufio.NewReader(resp.Body)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimRight(l, "\n")
		}
	}()
	waitLine := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("stream ended before %s", what)
				}
				if ok(l) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s", what)
			}
		}
	}
	waitLine("heartbeat", func(l string) bool { return l == ": heartbeat" })
	req, _ := http.NewRequest("DELETE", httpURL(ts)+"/v1/docs/hb", nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 204 {
		t.Fatalf("DELETE: %v", err)
	}
	waitLine("deleted event", func(l string) bool { return l == "event: deleted" })
	for range lines { // the server ends the stream
	}
}

// A follower that does not read is dropped (its queue is bounded), the
// editors are not slowed (resuming is TestSSEFollowsAndResumes).
func TestSSESlowFollowerDropped(t *testing.T) {
	// The write timeout applies to the editor's WebSocket too: 200 ms was
	// short enough for a write to the editor to miss it on a loaded machine
	// under -race (the editor's connection closed: "broken pipe"). The
	// follower is dropped when its queue fills, which does not depend on
	// the timeout; the timeout only bounds how long its last write waits.
	ts := startServerWith(t, t.TempDir(), server.Config{FollowerQueue: 4, WriteTimeout: 2 * time.Second, OpRate: 1e9, OpBurst: 1 << 30})
	a := dial(t, ts.url, 1)
	a.join("slow")
	resp, err := http.Get(httpURL(ts) + "/v1/docs/slow/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	big := strings.Repeat("z", 32<<10)
	for i := range 300 { // ~10 MB of changes the follower never reads
		a.edit("slow", uint64(i+1), func(x *crdt.Text) error { return x.Insert(0, big) })
		for {
			if m, ok := a.read().(*protocol.Ack); ok && m.Batch == uint64(i+1) && m.Status == protocol.AckApplied {
				break
			}
		}
	}
	// The server has given up on the stream: reading it reaches its end.
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow stream was not ended")
	}
}
