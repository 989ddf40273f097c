package collab

import (
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// testDoc is a live document on a welcomed fake connection (nothing is
// written: frames stay in the send queue).
func testDoc(t *testing.T, text string) (*Client, *docState) {
	t.Helper()
	c := &Client{cn: &conn{welcome: true}, session: "self", docs: make(map[string]*docState)}
	d := &docState{id: "d", doc: crdt.NewDoc(crdt.Options{Agent: 7}), live: true, joining: true,
		changes: make(chan struct{}, 1), pres: newDocPresence()}
	if text != "" {
		if err := d.doc.Text("body").Insert(0, text); err != nil {
			t.Fatal(err)
		}
	}
	c.docs[d.id] = d
	return c, d
}

func caret(t *testing.T, doc *crdt.Doc, i int) presence.Cursor {
	t.Helper()
	p, err := relPos(doc, "body", i, crdt.AssocBefore)
	if err != nil {
		t.Fatal(err)
	}
	b := crdt.EncodeRelPos(p)
	return presence.Cursor{Root: "body", Anchor: b, Head: b}
}

func sessions(ps []Peer) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Session)
	}
	return s
}

func TestPresenceApplyFullAndDelta(t *testing.T) {
	_, d := testDoc(t, "hello")
	peer := func(s string) presence.Peer { return presence.Peer{Session: s, User: presence.User{Name: "n" + s}} }
	steps := []struct {
		m    protocol.Presence
		want []string
	}{
		{protocol.Presence{Full: true, Peers: []presence.Peer{peer("a"), peer("self"), peer("b")}}, []string{"a", "b", "self"}},
		{protocol.Presence{Peers: []presence.Peer{peer("c")}, Gone: []string{"a"}}, []string{"b", "c", "self"}},
		{protocol.Presence{Gone: []string{"nobody"}}, []string{"b", "c", "self"}},
		// Moved: state only, for peers already known; an unknown one is ignored.
		{protocol.Presence{Moved: []presence.Peer{{Session: "b", State: presence.State{Meta: map[string]string{"k": "v"}}}, {Session: "x"}}},
			[]string{"b", "c", "self"}},
		{protocol.Presence{Full: true, Peers: []presence.Peer{peer("self")}}, []string{"self"}},
	}
	for i, s := range steps {
		d.pres.apply(&s.m)
		got := sessions(d.peerList("self"))
		if len(got) != len(s.want) {
			t.Fatalf("step %d: peers = %v, want %v", i, got, s.want)
		}
		for j := range got {
			if got[j] != s.want[j] {
				t.Fatalf("step %d: peers = %v, want %v", i, got, s.want)
			}
		}
		if b, ok := d.pres.peers["b"]; ok && len(s.m.Moved) > 0 && (b.User.Name != "nb" || b.Meta["k"] != "v") {
			t.Fatalf("step %d: moved peer = %+v, want its identity kept and the new state", i, b)
		}
		select {
		case <-d.pres.changes:
		default:
			t.Fatalf("step %d: no change signal", i)
		}
	}
	if ps := d.peerList("self"); !ps[0].Self || ps[0].User.Name != "nself" {
		t.Fatalf("own entry = %+v, want Self with the server's name", ps[0])
	}
	if _, ok := d.pres.peers["b"]; ok {
		t.Fatal("b still listed after a full presence without it")
	}
	d.disconnected()
	if ps := d.peerList(""); len(ps) != 0 {
		t.Fatalf("peers after a drop = %v, want none", sessions(ps))
	}
}

func TestPresenceResolveAfterEdits(t *testing.T) {
	_, d := testDoc(t, "abcdef")
	cur := caret(t, d.doc, 3) // between c and d, stuck to c
	d.pres.apply(&protocol.Presence{Full: true, Peers: []presence.Peer{{Session: "p", State: presence.State{Cursor: cur}}}})
	text := d.doc.Text("body")
	if err := text.Insert(0, "XY"); err != nil { // before: moves it
		t.Fatal(err)
	}
	if err := text.Insert(5, "Z"); err != nil { // at the caret: lands after it
		t.Fatal(err)
	}
	c := d.peerList("")[0].Cursor
	if !c.Resolved || c.Anchor != 5 || c.Head != 5 {
		t.Fatalf("cursor = %+v, want resolved at 5 (after c in %q)", c, text.String())
	}

	// A cursor naming a character this replica has not seen is unresolved
	// until the character arrives.
	other := crdt.NewDoc(crdt.Options{Agent: 9})
	if err := other.Text("body").Insert(0, "q"); err != nil {
		t.Fatal(err)
	}
	d.pres.apply(&protocol.Presence{Peers: []presence.Peer{{Session: "p", State: presence.State{Cursor: caret(t, other, 1)}}}})
	if c := d.peerList("")[0].Cursor; c.Resolved || c.Anchor != -1 {
		t.Fatalf("cursor on an unseen character = %+v, want unresolved", c)
	}
	if err := d.doc.ApplyUpdate(other.EncodeDiff(nil)); err != nil {
		t.Fatal(err)
	}
	if c := d.peerList("")[0].Cursor; !c.Resolved {
		t.Fatalf("cursor after the character arrived = %+v, want resolved", c)
	}
}

// presenceSends counts the PresenceSet frames in the send queue.
func presenceSends(t *testing.T, c *Client) []protocol.PresenceSet {
	t.Helper()
	var out []protocol.PresenceSet
	for _, b := range c.cn.sendq {
		m, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if ps, ok := m.(*protocol.PresenceSet); ok {
			out = append(out, *ps)
		}
	}
	c.cn.sendq = nil
	return out
}

func TestPresenceCoalescing(t *testing.T) {
	c, d := testDoc(t, "0123456789")
	t0 := time.Now()
	set := func(i int, now time.Time) {
		d.pres.own = presence.State{Cursor: caret(t, d.doc, i)}
		d.pres.dirty = true
		c.flushPresence(d, now)
	}
	set(1, t0) // first move: at once
	if n := len(presenceSends(t, c)); n != 1 {
		t.Fatalf("first move sent %d frames, want 1", n)
	}
	for i := 2; i <= 9; i++ { // a burst within the interval: held
		set(i, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(presenceSends(t, c)); n != 0 {
		t.Fatalf("burst sent %d frames, want 0 before the interval ends", n)
	}
	if w := c.presenceWake(); !w.Equal(t0.Add(PresenceInterval)) {
		t.Fatalf("wake = %v after t0, want %v", w.Sub(t0), PresenceInterval)
	}
	c.flushPresence(d, t0.Add(PresenceInterval))
	sent := presenceSends(t, c)
	if len(sent) != 1 || string(sent[0].State.Cursor.Head) != string(caret(t, d.doc, 9).Head) {
		t.Fatalf("end of interval sent %+v, want the last state of the burst", sent)
	}
	// Idle: nothing until the heartbeat, which resends the state.
	c.flushPresence(d, t0.Add(PresenceHeartbeat))
	if n := len(presenceSends(t, c)); n != 0 {
		t.Fatalf("idle sent %d frames before the heartbeat", n)
	}
	c.flushPresence(d, t0.Add(PresenceInterval+PresenceHeartbeat))
	if n := len(presenceSends(t, c)); n != 1 {
		t.Fatalf("heartbeat sent %d frames, want 1", n)
	}
	// A server rate limit holds the next send past its hint.
	now := t0.Add(time.Hour)
	c.presenceError(d, &protocol.Error{Code: protocol.CodeRateLimited, Doc: "d", RetryAfterMs: 1000})
	d.pres.holdUntil = now.Add(time.Second)
	c.flushPresence(d, now)
	if n := len(presenceSends(t, c)); n != 0 {
		t.Fatalf("sent %d frames while rate limited", n)
	}
	c.flushPresence(d, now.Add(time.Second))
	if n := len(presenceSends(t, c)); n != 1 {
		t.Fatalf("sent %d frames after the hold, want the latest state again", n)
	}
	// Not live: nothing is sent, and there is nothing to wake for.
	d.live = false
	set(3, now.Add(time.Hour))
	if n := len(presenceSends(t, c)); n != 0 || !c.presenceWake().IsZero() {
		t.Fatalf("sent %d frames while not live", n)
	}
}

func TestPresenceSelectionAssoc(t *testing.T) {
	_, d := testDoc(t, "abcdef")
	a, err := relPos(d.doc, "body", 1, crdt.AssocAfter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relPos(d.doc, "nothere", 1, crdt.AssocBefore); err == nil {
		t.Fatal("relPos of index 1 in a missing root: want an error")
	}
	if i, ok := resolve(d.doc, "nothere", crdt.RelPos{Assoc: crdt.AssocBefore}); !ok || i != 0 {
		t.Fatalf("resolve in a missing root = %d, %v; want 0, true", i, ok)
	}
	if err := d.doc.Text("body").Insert(1, "XX"); err != nil { // at a selection start: outside it
		t.Fatal(err)
	}
	if i, _ := resolve(d.doc, "body", a); i != 3 {
		t.Fatalf("selection start = %d, want 3 (still on b)", i)
	}
}
