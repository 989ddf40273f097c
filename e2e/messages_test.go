package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/server"
)

// Broadcast messages: the app posts one over HTTP and every client of the
// document gets it (Go clients, an SSE follower, a waiting long poll);
// clients send them to each other; nothing is stored.
func TestBroadcastMessages(t *testing.T) {
	ts := startServer(t, server.Config{})
	a := join(t, dialClient(t, ts.url(), 1, nil), "m")
	b := join(t, dialClient(t, ts.url(), 2, nil), "m")

	// An SSE follower, read line by line.
	resp, err := http.Get(ts.base() + "/v1/docs/m/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := make(chan string, 64)
	go func() { // ends when the body is closed
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sse <- sc.Text()
		}
		close(sse)
	}()
	waitSSE := func(prefix string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-sse:
				if !ok {
					t.Fatal("SSE stream ended")
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no SSE line %q", prefix)
			}
		}
	}
	waitSSE("event: snapshot")

	// A long poll waiting for the next change.
	type pollAns struct {
		Messages []struct {
			From string
			Data json.RawMessage
		}
	}
	polled := make(chan pollAns, 1)
	go func() {
		var ans pollAns
		r, err := http.Get(ts.base() + "/v1/docs/m/changes?since=0&wait=20s")
		if err == nil {
			_ = json.NewDecoder(r.Body).Decode(&ans)
			r.Body.Close()
		}
		polled <- ans
	}()

	waitMsg := func(name string, ch <-chan collab.Message) collab.Message {
		t.Helper()
		select {
		case m := <-ch:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("%s got no message", name)
		}
		return collab.Message{}
	}

	// The app posts; wait until the long poll is registered (it answers
	// with the message, or times out after 20 s and the test fails).
	var delivered struct{ Delivered int }
	deadline := time.Now().Add(10 * time.Second)
	for delivered.Delivered < 4 && time.Now().Before(deadline) {
		code, body := do(t, "POST", docURL(ts, "m", "/messages"), []byte(`{"kind":"ping","n":1}`), jsonHdr)
		if code != 202 || json.Unmarshal(body, &delivered) != nil {
			t.Fatalf("POST message = %d %s", code, body)
		}
		if delivered.Delivered < 4 {
			// not every subscriber there yet: drain what arrived and retry
			for _, ch := range []<-chan collab.Message{a.Messages(), b.Messages()} {
				select {
				case <-ch:
				default:
				}
			}
		}
	}
	if delivered.Delivered != 4 {
		t.Fatalf("delivered to %d subscribers, want 4 (two sessions, the SSE follower, the long poll)", delivered.Delivered)
	}
	for name, ch := range map[string]<-chan collab.Message{"a": a.Messages(), "b": b.Messages()} {
		if m := waitMsg(name, ch); m.From != "" || string(m.Data) != `{"kind":"ping","n":1}` {
			t.Fatalf("%s got %+v", name, m)
		}
	}
	if l := waitSSE("event: message"); l == "" {
		t.Fatal("no SSE message")
	}
	if l := waitSSE("data: "); !strings.Contains(l, `"data":{"kind":"ping","n":1}`) {
		t.Fatalf("SSE message data %q", l)
	}
	select {
	case ans := <-polled:
		if len(ans.Messages) == 0 || string(ans.Messages[0].Data) != `{"kind":"ping","n":1}` {
			t.Fatalf("long poll answered %+v", ans)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("long poll did not answer")
	}

	// Client to client: the sender does not get its own message.
	if err := a.SendMessage(map[string]string{"hello": "b"}); err != nil {
		t.Fatal(err)
	}
	for {
		// skip copies of the app's message (the POST above was repeated)
		m := waitMsg("b", b.Messages())
		if m.From == "" && string(m.Data) == `{"kind":"ping","n":1}` {
			continue
		}
		if m.From == "" || string(m.Data) != `{"hello":"b"}` {
			t.Fatalf("b got %+v", m)
		}
		break
	}
	// b answers; once a has b's answer, a would have had its own message
	// before it (one connection, in order) if the server sent it back.
	if err := b.SendMessage("ack"); err != nil {
		t.Fatal(err)
	}
	for {
		m := waitMsg("a", a.Messages())
		if string(m.Data) == `{"hello":"b"}` {
			t.Fatalf("the sender got its own message %+v", m)
		}
		if string(m.Data) == `"ack"` {
			break
		}
		// earlier copies of the app's message (the POST above was repeated)
	}
	// Nothing was stored.
	if code, body := do(t, "GET", docURL(ts, "m", ""), nil, nil); code != 404 {
		t.Fatalf("a document with only messages: GET = %d %s, want 404 (never written)", code, body)
	}

	// Refusals: not JSON, too large, past the app's rate.
	if code, _ := do(t, "POST", docURL(ts, "m", "/messages"), []byte(`{nope`), jsonHdr); code != 400 {
		t.Errorf("non-JSON message = %d, want 400", code)
	}
	if code, _ := do(t, "POST", docURL(ts, "m", "/messages"), []byte(`"`+strings.Repeat("x", 17<<10)+`"`), jsonHdr); code != 413 {
		t.Errorf("17 KiB message = %d, want 413", code)
	}
	limited := 0
	for range 60 {
		if code, _ := do(t, "POST", docURL(ts, "m", "/messages"), []byte(`1`), jsonHdr); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Error("60 messages at once: none rate limited (20/s, burst 40)")
	}
}
