package collab

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// TestJoinNotAnsweredIsRetried: a server that never answers a Join (no
// sync, no error: an answer lost on a cluster's forwarding) gets the Join
// again after JoinTimeout, a Leave first; the second Join's sync makes the
// document live.
func TestJoinNotAnsweredIsRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan protocol.Message, 16) // what the server read after the Hello
	srvDone := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(srvDone)
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		send := func(m protocol.Message) bool {
			return ws.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)) == nil
		}
		joins := 0
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return // the client closed
			}
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				t.Errorf("server: %v", err)
				return
			}
			switch m := m.(type) {
			case *protocol.Hello:
				if !send(&protocol.Welcome{Session: "s"}) {
					return
				}
				continue
			case *protocol.Join:
				if joins++; joins == 2 { // the first one is never answered
					empty := crdt.NewDoc(crdt.Options{Agent: 9})
					if !send(&protocol.Sync{Doc: m.Doc, Final: true, Update: empty.EncodeDiff(nil), SV: empty.StateVector()}) {
						return
					}
				}
			}
			select {
			case got <- m:
			default:
			}
		}
	}))
	defer func() { hs.Close(); <-srvDone }()

	const timeout = 300 * time.Millisecond
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), Options{JoinTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	d, err := c.Join(ctx, "doc")
	if err != nil {
		t.Fatalf("join whose first Join went unanswered: %v", err)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("joined after %v: the Join was sent again before JoinTimeout (%v)", took, timeout)
	}
	if !d.Status().Live {
		t.Error("document not live after the answered rejoin")
	}
	var kinds []string
	for len(kinds) < 3 {
		select {
		case m := <-got:
			kinds = append(kinds, m.Type().String())
		case <-ctx.Done():
			t.Fatalf("server read %v, want Join, Leave, Join", kinds)
		}
	}
	if want := []string{"join", "leave", "join"}; strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Errorf("server read %v, want %v", kinds, want)
	}
}
