package presence

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func caret(root string, pos byte) State {
	return State{Cursor: Cursor{Root: root, Anchor: []byte{pos}, Head: []byte{pos}}}
}

func TestJoinMoveLeaveFlush(t *testing.T) {
	s := New(Limits{}, 0)
	alice := User{ID: "u1", Name: "Alice", Color: "#e5484d"}
	if err := s.Join("s1", alice, false, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Join("s1", alice, false, t0); !errors.Is(err, ErrJoined) {
		t.Fatalf("second join: %v", err)
	}
	ch := s.Flush()
	if len(ch) != 1 || ch[0].Removed || !ch[0].New || ch[0].Peer.User != alice || !ch[0].Peer.Cursor.IsZero() {
		t.Fatalf("flush after join: %+v", ch)
	}
	if s.Flush() != nil || s.Dirty() {
		t.Fatal("second flush not empty")
	}
	for i := range 10 {
		if err := s.Set("s1", caret("body", byte(i)), t0); err != nil {
			t.Fatal(err)
		}
	}
	ch = s.Flush()
	if len(ch) != 1 || ch[0].New || ch[0].Peer.Cursor.Head[0] != 9 {
		t.Fatalf("coalesced flush: %+v", ch)
	}
	// Same state again: a heartbeat, nothing to send.
	if err := s.Set("s1", caret("body", 9), t0.Add(time.Second)); err != nil || s.Dirty() {
		t.Fatalf("unchanged set marked dirty: %v", err)
	}
	if !s.Leave("s1") || s.Leave("s1") {
		t.Fatal("leave")
	}
	ch = s.Flush()
	if len(ch) != 1 || !ch[0].Removed || ch[0].Peer.Session != "s1" || s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("flush after leave: %+v, len %d, bytes %d", ch, s.Len(), s.Bytes())
	}
}

// A peer that moves, leaves and comes back within one flush interval is
// reported once, with its new state.
func TestLeaveRejoinWithinOneFlush(t *testing.T) {
	s := New(Limits{}, 0)
	_ = s.Join("s1", User{Name: "A"}, false, t0)
	s.Flush()
	_ = s.Set("s1", caret("body", 1), t0)
	s.Leave("s1")
	_ = s.Join("s1", User{Name: "A"}, false, t0)
	ch := s.Flush()
	if len(ch) != 1 || ch[0].Removed || !ch[0].New || !ch[0].Peer.Cursor.IsZero() {
		t.Fatalf("got %+v", ch)
	}
}

// 50 peers each moving 60 times between two flushes give one flush with 50
// entries, each the peer's latest position.
func TestFlushKeepsOnlyLatest(t *testing.T) {
	s := New(Limits{}, 0)
	for p := range 50 {
		_ = s.Join(fmt.Sprintf("s%02d", p), User{Name: fmt.Sprint(p)}, false, t0)
	}
	s.Flush()
	for move := range 60 {
		for p := range 50 {
			if err := s.Set(fmt.Sprintf("s%02d", p), caret("body", byte(move+p)), t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	ch := s.Flush()
	if len(ch) != 50 {
		t.Fatalf("%d changes, want 50", len(ch))
	}
	for i, c := range ch {
		if want := fmt.Sprintf("s%02d", i); c.Peer.Session != want || c.Peer.Cursor.Head[0] != byte(59+i) {
			t.Fatalf("change %d: %s at %d, want %s at %d", i, c.Peer.Session, c.Peer.Cursor.Head[0], want, 59+i)
		}
	}
}

// Expire under a fake clock (testing/synctest): a peer whose heartbeats stop
// is gone after the TTL, one that keeps sending stays.
func TestExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Limits{}, 30*time.Second)
		_ = s.Join("quiet", User{}, false, time.Now())
		_ = s.Join("busy", User{}, false, time.Now())
		s.Flush()
		tick := time.NewTicker(10 * time.Second) // the bubble's fake clock jumps to each tick
		defer tick.Stop()
		for range 4 {
			<-tick.C
			if !s.Touch("busy", time.Now()) {
				t.Fatal("busy is gone")
			}
			s.Expire(time.Now())
		}
		if _, ok := s.Get("quiet"); ok {
			t.Fatal("quiet peer still listed 40 s after its last heartbeat")
		}
		if _, ok := s.Get("busy"); !ok {
			t.Fatal("busy peer expired")
		}
		ch := s.Flush()
		if len(ch) != 1 || !ch[0].Removed || ch[0].Peer.Session != "quiet" {
			t.Fatalf("flush after expiry: %+v", ch)
		}
	})
}

func TestExpireExactlyAtTTL(t *testing.T) {
	s := New(Limits{}, 30*time.Second)
	_ = s.Join("a", User{}, false, t0)
	if gone := s.Expire(t0.Add(30 * time.Second)); len(gone) != 0 {
		t.Fatalf("expired at exactly the TTL: %v", gone)
	}
	if gone := s.Expire(t0.Add(30*time.Second + 1)); len(gone) != 1 {
		t.Fatalf("not expired after the TTL: %v", gone)
	}
}

func TestLimits(t *testing.T) {
	s := New(Limits{MaxPeers: 2, MaxDocBytes: 300}, 0)
	_ = s.Join("a", User{Name: "A"}, false, t0)
	_ = s.Join("b", User{Name: "B"}, false, t0)
	var le *LimitError
	if err := s.Join("c", User{}, false, t0); !errors.As(err, &le) || le.Limit != "peers" {
		t.Fatalf("third peer: %v", err)
	}
	many := map[string]string{}
	for i := range 33 {
		many[fmt.Sprint(i)] = ""
	}
	cases := []struct {
		name  string
		st    State
		limit string
	}{
		{"meta keys", State{Meta: many}, "meta keys"},
		{"meta bytes", State{Meta: map[string]string{"k": strings.Repeat("x", 1024)}}, "meta bytes"},
		{"position", State{Cursor: Cursor{Root: "body", Anchor: make([]byte, 65), Head: []byte{1}}}, "position bytes"},
		{"root", State{Cursor: Cursor{Root: strings.Repeat("r", 129), Anchor: []byte{1}, Head: []byte{1}}}, "root bytes"},
		{"document", State{Meta: map[string]string{"k": strings.Repeat("x", 298)}}, "document bytes"},
	}
	for _, c := range cases {
		before, _ := s.Get("a")
		err := s.Set("a", c.st, t0)
		if !errors.As(err, &le) || le.Limit != c.limit || !errors.Is(err, ErrLimit) {
			t.Errorf("%s: got %v, want limit %q", c.name, err, c.limit)
		}
		if after, _ := s.Get("a"); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: a refused state changed the peer", c.name)
		}
	}
	for _, st := range []State{
		{Cursor: Cursor{Anchor: []byte{1}, Head: []byte{1}}}, // no root
		{Cursor: Cursor{Root: "body", Anchor: []byte{1}}},    // no head
		{Meta: map[string]string{"k": "\xff"}},               // not UTF-8
		{Cursor: Cursor{Root: "\xff", Anchor: []byte{1}, Head: []byte{1}}},
	} {
		if err := s.Set("a", st, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("invalid state %+v: %v", st, err)
		}
	}
}

// A client can only set its own state: Set names the session (the server
// passes the caller's own), carries no identity, and cannot reach another
// session's entry or change anyone's user.
func TestNoSpoofing(t *testing.T) {
	s := New(Limits{}, 0)
	_ = s.Join("alice-session", User{ID: "alice", Name: "Alice"}, false, t0)
	if err := s.Set("mallory-session", caret("body", 1), t0); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("set for a session not joined: %v", err)
	}
	_ = s.Join("mallory-session", User{ID: "mallory", Name: "Mallory"}, false, t0)
	_ = s.Set("mallory-session", State{Meta: map[string]string{"name": "Alice"}}, t0)
	a, _ := s.Get("alice-session")
	m, _ := s.Get("mallory-session")
	if a.User.Name != "Alice" || m.User.Name != "Mallory" || !a.Cursor.IsZero() {
		t.Fatalf("identities changed: %+v / %+v", a, m)
	}
}

// The state returned by Flush and Peers is a copy: changing it (or the
// caller's state after Set) does not change the Set.
func TestNoAliasing(t *testing.T) {
	s := New(Limits{}, 0)
	_ = s.Join("a", User{}, false, t0)
	st := State{Cursor: Cursor{Root: "body", Anchor: []byte{1}, Head: []byte{2}}, Meta: map[string]string{"k": "v"}}
	_ = s.Set("a", st, t0)
	st.Cursor.Head[0], st.Meta["k"] = 9, "changed"
	ch := s.Flush()
	ch[0].Peer.Cursor.Anchor[0] = 7
	p, _ := s.Get("a")
	if p.Cursor.Head[0] != 2 || p.Cursor.Anchor[0] != 1 || p.Meta["k"] != "v" {
		t.Fatalf("aliasing: %+v", p)
	}
}

func TestColorFor(t *testing.T) {
	if ColorFor("alice") != ColorFor("alice") || !strings.HasPrefix(ColorFor(""), "#") {
		t.Fatal("ColorFor not stable")
	}
	seen := map[string]bool{}
	for i := range 100 {
		seen[ColorFor(fmt.Sprint("user", i))] = true
	}
	if len(seen) < 8 {
		t.Fatalf("only %d colors for 100 users", len(seen))
	}
}
