package server_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/mp"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// peerView is what one client knows of a document's presence, built from
// the Presence frames it receives.
type peerView struct {
	session string
	peers   map[string]presence.Peer
	frames  int
}

func dialPresence(t *testing.T, url, tok string, agent crdt.AgentID) (*client, *peerView) {
	t.Helper()
	c, m, code := dialRaw(t, url, nil, tok, agent)
	w, ok := m.(*protocol.Welcome)
	if !ok {
		t.Fatalf("no welcome: %T %d", m, code)
	}
	return c, &peerView{session: w.Session, peers: map[string]presence.Peer{}}
}

func (v *peerView) apply(p *protocol.Presence) {
	v.frames++
	if p.Full {
		clear(v.peers)
	}
	for _, peer := range p.Peers {
		v.peers[peer.Session] = peer
	}
	for _, m := range p.Moved {
		peer := v.peers[m.Session]
		peer.Session, peer.State = m.Session, m.State
		v.peers[m.Session] = peer
	}
	for _, g := range p.Gone {
		delete(v.peers, g)
	}
}

// until reads frames, applying presence, until cond holds (5 s deadline per frame).
func (v *peerView) until(t *testing.T, c *client, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; view %+v", what, v.peers)
		}
		if p, ok := c.readAny().(*protocol.Presence); ok {
			v.apply(p)
		}
	}
}

func caretAt(pos uint64) presence.State {
	b := binary.BigEndian.AppendUint64(nil, pos)
	return presence.State{Cursor: presence.Cursor{Root: "body", Anchor: b, Head: b}}
}

func posOf(p presence.Peer) uint64 {
	if len(p.Cursor.Head) != 8 {
		return 1<<64 - 1
	}
	return binary.BigEndian.Uint64(p.Cursor.Head)
}

func TestPresenceJoinMoveLeave(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret})
	tokA := namedToken(t, "alice", "Alice", "#123456")
	a, av := dialPresence(t, ts.url, tokA, 1)
	b, bv := dialPresence(t, ts.url, token(t, "bob", time.Hour, "*:rw"), 2)
	a.join("p")
	b.join("p")
	bv.until(t, b, "both peers", func() bool { return len(bv.peers) == 2 })
	if p := bv.peers[av.session]; p.User != (presence.User{ID: "alice", Name: "Alice", Color: "#123456"}) {
		t.Fatalf("alice as bob sees her: %+v", p.User)
	}
	if p := bv.peers[bv.session]; p.User.Name != "bob" || p.User.Color != presence.ColorFor("bob") {
		t.Fatalf("bob's defaults (name = subject, color from subject): %+v", p.User)
	}
	a.send(&protocol.PresenceSet{Doc: "p", State: caretAt(7)})
	bv.until(t, b, "alice's caret", func() bool { return posOf(bv.peers[av.session]) == 7 })
	// A meta field named "name" is just metadata: the displayed name stays.
	a.send(&protocol.PresenceSet{Doc: "p", State: presence.State{Meta: map[string]string{"name": "Bob"}}})
	bv.until(t, b, "alice's meta", func() bool { return bv.peers[av.session].Meta["name"] == "Bob" })
	if bv.peers[av.session].User.Name != "Alice" {
		t.Fatal("metadata changed the displayed name")
	}
	a.send(&protocol.Leave{Doc: "p"})
	bv.until(t, b, "alice gone", func() bool { _, ok := bv.peers[av.session]; return !ok })
}

// A connection that drops without a close frame removes its peer at once:
// the server sees the read fail, not a timeout.
func TestPresenceAbruptClose(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{PingInterval: time.Hour})
	a, av := dialPresence(t, ts.url, "", 1)
	b, bv := dialPresence(t, ts.url, "", 2)
	a.join("p")
	b.join("p")
	bv.until(t, b, "alice", func() bool { _, ok := bv.peers[av.session]; return ok })
	start := time.Now()
	_ = a.conn.UnderlyingConn().Close() // TCP close, no WebSocket close frame
	bv.until(t, b, "alice gone", func() bool { _, ok := bv.peers[av.session]; return !ok })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("peer removed after %v", d)
	}
}

// The TTL is the fallback for a connection that is open but shows no life
// (no frames, no pongs): its peer is removed, while a peer that answers pings
// stays, however long it sends no presence.
func TestPresenceTTLFallback(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{PresenceTTL: 300 * time.Millisecond, PingInterval: 50 * time.Millisecond, PongTimeout: time.Hour})
	dead, dv := dialPresence(t, ts.url, "", 1)
	idle, iv := dialPresence(t, ts.url, "", 2)
	obs, ov := dialPresence(t, ts.url, "", 3)
	dead.join("p")
	// idle answers the server's Ping frames with Pongs (its only writer from
	// here on) and counts them.
	pings := make(chan struct{}, 1024)
	idle.join("p")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends when the connection closes at cleanup
		defer wg.Done()
		for {
			_, b, err := idle.conn.ReadMessage()
			if err != nil {
				return
			}
			if m, err := protocol.Decode(b, protocol.DecodeLimits{}); err == nil {
				if p, ok := m.(*protocol.Ping); ok {
					_ = idle.conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Pong{Nonce: p.Nonce}))
					pings <- struct{}{}
				}
			}
		}
	}()
	t.Cleanup(func() { _ = idle.conn.Close(); wg.Wait() })
	// The observer stays alive by answering the server's pings while it
	// reads (readAny does).
	obs.join("p")
	ov.until(t, obs, "dead peer expired", func() bool { _, ok := ov.peers[dv.session]; return !ok && ov.frames > 0 })
	// The idle peer has answered pings for more than the TTL by now; wait
	// for a few more, then rejoin the observer: the full presence it gets
	// must still list the idle peer.
	for range 8 {
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatal("no pings to the idle session")
		}
	}
	obs.send(&protocol.Join{Doc: "p", SV: obs.doc.StateVector()})
	ov.frames = 0
	ov.until(t, obs, "full presence after rejoin", func() bool { return ov.frames > 0 && len(ov.peers) > 0 })
	if _, ok := ov.peers[iv.session]; !ok {
		t.Fatalf("idle peer that answers pings was expired: %+v", ov.peers)
	}
}

// 50 peers moving at 60 Hz for a second give the observer at most one
// presence frame per 50 ms, each naming a peer at most once, and the
// observer ends with every peer's final position.
func TestPresenceCoalescing(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	const movers, hz, moves = 50, 60, 60
	obs, ov := dialPresence(t, ts.url, "", 1000)
	obs.join("hot")
	sessions := make([]string, movers)
	conns := make([]*client, movers)
	for i := range movers {
		c, v := dialPresence(t, ts.url, "", crdt.AgentID(i+1))
		c.join("hot")
		conns[i], sessions[i] = c, v.session
	}
	ov.until(t, obs, "every mover", func() bool { return len(ov.peers) == movers+1 })

	var raw [][]byte // every presence frame the observer gets, for the checks below
	done := make(chan struct{})
	frames := make(chan []byte, 4096)
	go func() { // the observer's reader; ends when done is closed and the read deadline passes
		for {
			_ = obs.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := obs.conn.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			select {
			case frames <- b:
			case <-done:
				close(frames)
				return
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() { // mover: paced by a ticker, bounded to `moves` sends
			defer wg.Done()
			tk := time.NewTicker(time.Second / hz)
			defer tk.Stop()
			for n := 1; n <= moves; n++ {
				<-tk.C
				_ = c.conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.PresenceSet{Doc: "hot", State: caretAt(uint64(i*1000 + n))}))
			}
		}()
	}
	wg.Wait()
	final := func() bool {
		for i, s := range sessions {
			if posOf(ov.peers[s]) != uint64(i*1000+moves) {
				return false
			}
		}
		return true
	}
	deadline := time.After(10 * time.Second)
	for !final() {
		select {
		case b, ok := <-frames:
			if !ok {
				t.Fatal("observer connection ended")
			}
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := m.(*protocol.Presence); ok {
				raw = append(raw, b)
				seen := map[string]bool{}
				for _, peer := range append(p.Peers, p.Moved...) {
					if seen[peer.Session] {
						t.Fatalf("a frame names %s twice", peer.Session)
					}
					seen[peer.Session] = true
				}
				ov.apply(p)
			}
		case <-deadline:
			t.Fatalf("observer never saw the final positions")
		}
	}
	elapsed := time.Since(start)
	close(done)
	// Flushes fire at least 50 ms apart: at most elapsed/50ms + 1 fire in the
	// window, plus one that fired just before it and arrived inside.
	maxFrames := int(elapsed/(50*time.Millisecond)) + 2
	t.Logf("%d movers x %d moves at %d Hz: %d presence frames in %v (bound %d), %d bytes", movers, moves, hz, len(raw), elapsed.Round(time.Millisecond), maxFrames, totalLen(raw))
	if len(raw) > maxFrames {
		t.Fatalf("%d presence frames in %v: more than one per 50 ms", len(raw), elapsed)
	}
}

func totalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

func TestPresenceRefusals(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), server.Config{})
	a, _ := dialPresence(t, ts.url, "", 1)
	// Not joined.
	a.send(&protocol.PresenceSet{Doc: "p", State: caretAt(1)})
	if e, ok := a.read().(*protocol.Error); !ok || e.Code != protocol.CodeNotJoined {
		t.Fatalf("presence for a document not joined: %+v", e)
	}
	a.join("p")
	// Over a limit: refused with a typed code; the document stays joined.
	many := map[string]string{}
	for i := range 40 {
		many[fmt.Sprint("k", i)] = "v"
	}
	a.send(&protocol.PresenceSet{Doc: "p", State: presence.State{Meta: many}})
	if e, ok := a.read().(*protocol.Error); !ok || e.Code != protocol.CodePresenceRefused || e.Doc != "p" {
		t.Fatalf("40 meta keys: %+v", e)
	}
	a.send(&protocol.PresenceSet{Doc: "p", State: presence.State{Cursor: presence.Cursor{Root: "body", Head: []byte{1}}}})
	if e, ok := a.read().(*protocol.Error); !ok || e.Code != protocol.CodePresenceRefused {
		t.Fatalf("cursor without anchor: %+v", e)
	}
	a.edit("p", 1, func(x *crdt.Text) error { return x.Insert(0, "still joined") })
	if ack, ok := a.read().(*protocol.Ack); !ok || ack.Status != protocol.AckApplied {
		t.Fatalf("edit after a refused presence: %+v", ack)
	}
	// A frame that tries to carry an identity does not decode: the
	// connection is closed as a bad frame.
	b := mp.AppendArrayLen(nil, 7)
	b = append(b, byte(protocol.TypePresenceSet))
	b = mp.AppendString(b, "p")
	b = mp.AppendString(b, "")
	b = mp.AppendBin(b, nil)
	b = mp.AppendBin(b, nil)
	b = mp.AppendNil(b)
	b = mp.AppendString(b, "Alice")
	if err := a.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
	if code := a.closeCode(); code != int(protocol.CodeBadFrame) {
		t.Fatalf("presence frame with an identity field: close %d", code)
	}
}

func TestPresenceReadOnlyCursors(t *testing.T) {
	for _, hide := range []bool{false, true} {
		t.Run(fmt.Sprint("hide=", hide), func(t *testing.T) {
			ts := startServerWith(t, t.TempDir(), server.Config{AuthSecret: secret, HideReadOnlyCursors: hide})
			r, rv := dialPresence(t, ts.url, token(t, "reader", time.Hour, "doc:r"), 1)
			w, wv := dialPresence(t, ts.url, token(t, "writer", time.Hour, "doc:rw"), 2)
			r.join("doc")
			w.join("doc")
			wv.until(t, w, "reader listed", func() bool { return wv.peers[rv.session].ReadOnly })
			r.send(&protocol.PresenceSet{Doc: "doc", State: caretAt(3)})
			if hide {
				if e, ok := r.read().(*protocol.Error); !ok || e.Code != protocol.CodeReadOnly {
					t.Fatalf("read-only cursor with HideReadOnlyCursors: %+v", e)
				}
				return
			}
			wv.until(t, w, "reader's cursor", func() bool { return posOf(wv.peers[rv.session]) == 3 })
		})
	}
}

// namedToken mints a read-write token for every document with a display
// name and color.
func namedToken(t *testing.T, sub, name, color string) string {
	t.Helper()
	tok, err := server.NewToken(secret, server.Claims{Name: name, Color: color, Docs: []string{"*:rw"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
