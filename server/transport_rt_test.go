package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// rtClient speaks the protocol over the SSE + POST fallback.
type rtClient struct {
	t       *testing.T
	base    string
	created struct {
		Session, Key, Events, Frames string
	}
	stream *sseStream
	last   string // last event id seen
	post   uint64
	doc    *crdt.Doc
}

func dialRT(t *testing.T, base string, agent crdt.AgentID) *rtClient {
	t.Helper()
	c := &rtClient{t: t, base: base, doc: crdt.NewDoc(crdt.Options{Agent: agent})}
	if code := getJSON(t, "POST", base+"/v1/rt", nil, "", &c.created); code != 201 {
		t.Fatalf("create: %d", code)
	}
	c.attach()
	c.send(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{agent}})
	if _, ok := c.read().(*protocol.Welcome); !ok {
		t.Fatal("no welcome")
	}
	return c
}

func (c *rtClient) attach() {
	h := http.Header{}
	if c.last != "" {
		h.Set("Last-Event-ID", c.last)
	}
	c.stream = openSSE(c.t, c.base+c.created.Events, h)
}

func (c *rtClient) postFrames(seq uint64, ms ...protocol.Message) int {
	var body []byte
	for _, m := range ms {
		f := protocol.Encode(m)
		body = binary.BigEndian.AppendUint32(body, uint32(len(f)))
		body = append(body, f...)
	}
	resp, err := http.Post(c.base+c.created.Frames+"&seq="+strconv.FormatUint(seq, 10), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (c *rtClient) send(ms ...protocol.Message) {
	c.t.Helper()
	c.post++
	if code := c.postFrames(c.post, ms...); code != 204 {
		c.t.Fatalf("POST frames: %d", code)
	}
}

// read returns the next frame other than presence.
func (c *rtClient) read() protocol.Message {
	c.t.Helper()
	for {
		ev := c.stream.nextRaw()
		if ev.name == "close" {
			c.t.Fatalf("session closed: %s", ev.data)
		}
		c.last = ev.id
		b, err := base64.StdEncoding.DecodeString(string(ev.data))
		if err != nil {
			c.t.Fatal(err)
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Type() != protocol.TypePresence {
			return m
		}
	}
}

func (s *sseStream) nextRaw() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event in 10 s")
	}
	return sseEvent{}
}

func (c *rtClient) join(doc string) {
	c.t.Helper()
	c.send(&protocol.Join{Doc: doc, SV: c.doc.StateVector()})
	for {
		if s, ok := c.read().(*protocol.Sync); ok {
			_ = c.doc.ApplyUpdate(s.Update)
			if s.Final {
				return
			}
		}
	}
}

// The fallback carries the whole protocol: hello, join, updates with both
// acks, fan-out from WebSocket editors, resume of the stream without gap,
// and POST retries that are not applied twice.
func TestFallbackTransport(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	c := dialRT(t, httpURL(ts), 5)
	c.join("fb")
	ws := dial(t, ts.url, 6)
	ws.join("fb")
	_ = c.doc.Text("body").Insert(0, "over http ")
	c.send(&protocol.Update{Doc: "fb", Batch: 1, Update: c.doc.TakeUpdate()})
	for durable := false; !durable; {
		if a, ok := c.read().(*protocol.Ack); ok && a.Batch == 1 {
			durable = a.Status == protocol.AckDurable
		}
	}
	for ws.doc.Text("body").String() != "over http " {
		if u, ok := ws.read().(*protocol.Update); ok {
			_ = ws.doc.ApplyUpdate(u.Update)
		}
	}
	// The stream drops; the WebSocket editor keeps typing; the fallback
	// client resumes from its last event id and misses nothing.
	c.stream.close()
	for i := range 5 {
		ws.edit("fb", uint64(i+1), func(x *crdt.Text) error { return x.Insert(x.Len(), fmt.Sprint(i)) })
	}
	c.attach()
	for c.doc.Text("body").String() != ws.doc.Text("body").String() {
		if u, ok := c.read().(*protocol.Update); ok {
			_ = c.doc.ApplyUpdate(u.Update)
		}
	}
	// A retried POST (same number) is acknowledged, not applied again; a
	// gap is refused.
	if code := c.postFrames(c.post, &protocol.Ping{Nonce: 1}); code != 200 {
		t.Fatalf("repeated POST: %d", code)
	}
	if code := c.postFrames(c.post+2, &protocol.Ping{Nonce: 1}); code != http.StatusConflict {
		t.Fatalf("POST out of order: %d", code)
	}
	c.send(&protocol.Ping{Nonce: 42})
	for {
		if p, ok := c.read().(*protocol.Pong); ok {
			if p.Nonce != 42 {
				t.Fatalf("pong %d: the repeated POST was applied", p.Nonce)
			}
			break
		}
	}
	// A wrong key gets nothing.
	var e struct{ Code protocol.Code }
	if code := getJSON(t, "GET", httpURL(ts)+"/v1/rt/"+c.created.Session+"/events?key=nope", nil, "", &e); code != http.StatusGone {
		t.Fatalf("wrong key: %d", code)
	}
}

// A fallback session with no stream and no POST for the liveness window
// ends, and its peer leaves the document at once.
func TestFallbackSessionExpires(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	c := dialRT(t, httpURL(ts), 5)
	c.join("x")
	obs, ov := dialPresence(t, ts.url, "", 6)
	obs.join("x")
	// The observer must stay alive itself: answer the server's pings.
	ov.until(t, obs, "the fallback peer", func() bool { _, ok := ov.peers[c.created.Session]; return ok })
	c.stream.close()
	ov.until(t, obs, "the fallback peer gone", func() bool { _, ok := ov.peers[c.created.Session]; return !ok })
	var e struct{ Code protocol.Code }
	if code := getJSON(t, "POST", httpURL(ts)+c.created.Frames+"&seq=99", nil, "", &e); code != http.StatusGone {
		t.Fatalf("POST to an expired session: %d", code)
	}
}
