package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// mintToken returns a token of user sub with display name name for every
// document under "team/".
func mintToken(t *testing.T, secret []byte, sub, name string) string {
	t.Helper()
	tok, err := server.NewToken(secret, server.Claims{Name: name, Docs: []string{"team/*:rw"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialToken connects a client with a token, with fast backoff, through sw
// (may be nil).
func dialToken(t *testing.T, url, token string, sw *netSwitch) *collab.Client {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if sw != nil {
		d.NetDialContext = sw.dial
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := collab.Dial(ctx, url, collab.Options{Token: token, Dialer: d, BackoffBase: 2 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitPeers waits until cond holds for d's peers, waking on presence and
// text changes, for at most 10 s.
func waitPeers(t *testing.T, d *collab.Document, what string, cond func([]collab.Peer) bool) []collab.Peer {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ps := d.Peers()
		if cond(ps) {
			return ps
		}
		select {
		case <-d.PresenceChanges():
		case <-d.Changes():
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; peers: %s", what, fmtPeers(ps))
		}
	}
}

func fmtPeers(ps []collab.Peer) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "[%s %q self=%v cursor=%+v meta=%v] ", p.Session, p.User.Name, p.Self, p.Cursor, p.Meta)
	}
	return b.String()
}

func peerOf(ps []collab.Peer, session string) (collab.Peer, bool) {
	for _, p := range ps {
		if p.Session == session {
			return p, true
		}
	}
	return collab.Peer{}, false
}

// hasCursor reports whether session's cursor resolves to anchor..head.
func hasCursor(session string, anchor, head int) func([]collab.Peer) bool {
	return func(ps []collab.Peer) bool {
		p, ok := peerOf(ps, session)
		return ok && p.Cursor.Resolved && p.Cursor.Anchor == anchor && p.Cursor.Head == head
	}
}

func gone(session string) func([]collab.Peer) bool {
	return func(ps []collab.Peer) bool { _, ok := peerOf(ps, session); return !ok }
}

// Join: others see the peer with the name from its token; moves reach them
// resolved against their own replica; Leave removes the peer at once.
func TestPresenceJoinMoveLeave(t *testing.T) {
	secret := []byte("presence-secret-at-least-32-bytes!")
	ts := startServer(t, server.Config{AuthSecret: secret})
	alice := join(t, dialToken(t, ts.url(), mintToken(t, secret, "u-alice", "Alice"), nil), "team/p")
	bob := join(t, dialToken(t, ts.url(), mintToken(t, secret, "u-bob", "Bob"), nil), "team/p")
	as := alice.Self()
	if as == "" || as == bob.Self() {
		t.Fatalf("sessions: alice %q, bob %q; want distinct, non-empty", as, bob.Self())
	}

	ps := waitPeers(t, bob, "alice listed", func(ps []collab.Peer) bool { _, ok := peerOf(ps, as); return ok })
	if p, _ := peerOf(ps, as); p.User.Name != "Alice" || p.User.ID != "u-alice" || p.User.Color == "" || p.Self || p.Cursor.Root != "" {
		t.Fatalf("bob sees alice as %+v, want Alice (u-alice) with a color and no cursor", p)
	}
	waitPeers(t, alice, "alice sees herself", func(ps []collab.Peer) bool {
		p, ok := peerOf(ps, as)
		return ok && p.Self && p.User.Name == "Alice"
	})

	if err := alice.Insert("body", 0, "hello world"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetCursor("body", 5, 5); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, bob, "alice's caret at 5", hasCursor(as, 5, 5))
	if err := alice.SetCursor("body", 6, 11); err != nil { // select "world"
		t.Fatal(err)
	}
	waitPeers(t, bob, "alice's selection 6..11", hasCursor(as, 6, 11))
	if err := alice.SetMeta(map[string]string{"typing": "1"}); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, bob, "alice typing", func(ps []collab.Peer) bool { p, _ := peerOf(ps, as); return p.Meta["typing"] == "1" })
	if err := alice.ClearCursor(); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, bob, "alice's cursor cleared", func(ps []collab.Peer) bool {
		p, ok := peerOf(ps, as)
		return ok && p.Cursor.Root == "" && p.Meta["typing"] == "1"
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := alice.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, bob, "alice gone after Leave", gone(as))
	if err := alice.SetCursor("body", 0, 0); !errors.Is(err, collab.ErrLeft) {
		t.Fatalf("SetCursor after Leave = %v, want ErrLeft", err)
	}
}

// An abrupt TCP close removes the peer at once (not after the ping timeout
// or the TTL); the dropped client forgets the others until it is back, then
// resends its cursor on the new session.
func TestPresenceAbruptClose(t *testing.T) {
	ts := startServer(t, server.Config{})
	sw := &netSwitch{}
	alice := join(t, dialClient(t, ts.url(), 0, sw), "doc")
	bob := join(t, dialClient(t, ts.url(), 0, nil), "doc")
	if err := alice.Insert("body", 0, "abc"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetCursor("body", 2, 2); err != nil {
		t.Fatal(err)
	}
	old := alice.Self()
	waitPeers(t, bob, "alice's caret", hasCursor(old, 2, 2))
	waitPeers(t, alice, "alice sees bob", func(ps []collab.Peer) bool { return len(ps) == 2 })

	sw.setOffline(true)
	start := time.Now()
	sw.cut()
	waitPeers(t, bob, "alice gone after the cut", gone(old))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("alice vanished after %v, want promptly (well within the ping timeout)", d)
	}
	waitPeers(t, alice, "alice forgets the others while disconnected", func(ps []collab.Peer) bool { return len(ps) == 0 })

	sw.setOffline(false)
	ps := waitPeers(t, bob, "alice back with her caret", func(ps []collab.Peer) bool {
		for _, p := range ps {
			if p.Session != old && !p.Self && p.Cursor.Resolved && p.Cursor.Head == 2 {
				return true
			}
		}
		return false
	})
	if len(ps) != 2 {
		t.Fatalf("bob sees %s, want bob and alice's new session only", fmtPeers(ps))
	}
}

// A caret placed before a character stays on it while two other clients
// insert and delete before it concurrently: after convergence every
// observer resolves it to the same character.
func TestPresenceCursorStability(t *testing.T) {
	ts := startServer(t, server.Config{})
	const text = "abcdefghijklmnopqrstuvwxyz"
	a := join(t, dialClient(t, ts.url(), 0, nil), "doc")
	if err := a.Insert("body", 0, text); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	b := join(t, dialClient(t, ts.url(), 0, nil), "doc")
	c := join(t, dialClient(t, ts.url(), 0, nil), "doc")
	d := join(t, dialClient(t, ts.url(), 0, nil), "doc") // observer only
	x := strings.IndexByte(text, 'x')
	if err := a.SetCursor("body", x, x); err != nil {
		t.Fatal(err)
	}
	self := a.Self()
	for _, o := range []*collab.Document{b, c, d} {
		waitPeers(t, o, "a's caret before x", hasCursor(self, x, x))
	}

	// b and c edit the first characters concurrently; the characters before
	// the caret never run out (each inserts as much as it deletes, and at
	// most 10 are deleted by the other).
	errs := make(chan error, 2)
	for i, doc := range []*collab.Document{b, c} {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			for k := range 20 {
				var err error
				if k%2 == 0 {
					err = doc.Insert("body", rng.IntN(6), string(rune('A'+i)))
				} else {
					err = doc.Delete("body", rng.IntN(6), 1)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- doc.WaitDurable(ctx)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	docs := []*collab.Document{a, b, c, d}
	sv := b.StateVector()
	for ag, n := range c.StateVector() {
		sv[ag] = max(sv[ag], n)
	}
	for _, o := range docs {
		if err := waitSV(ctx, o, sv); err != nil {
			t.Fatalf("converge: %v", err)
		}
	}
	want := a.String("body")
	for i, o := range docs {
		if got := o.String("body"); got != want {
			t.Fatalf("replica %d = %q, want %q", i, got, want)
		}
		ps := waitPeers(t, o, "a's caret", func(ps []collab.Peer) bool { p, ok := peerOf(ps, self); return ok && p.Cursor.Resolved })
		p, _ := peerOf(ps, self)
		if r := []rune(want); p.Cursor.Head >= len(r) || r[p.Cursor.Head] != 'x' || p.Cursor.Anchor != p.Cursor.Head {
			t.Fatalf("replica %d resolves a's caret to %d..%d in %q, want just before x", i, p.Cursor.Anchor, p.Cursor.Head, want)
		}
		if j, ok := o.Resolve("body", p.Cursor.HeadPos); !ok || j != p.Cursor.Head {
			t.Fatalf("replica %d: Resolve(HeadPos) = %d, %v; want %d", i, j, ok, p.Cursor.Head)
		}
	}
}

// Identity comes from the token only: metadata cannot change the displayed
// name, and a PresenceSet frame with extra identity fields is a bad frame.
func TestPresenceSpoofing(t *testing.T) {
	secret := []byte("presence-secret-at-least-32-bytes!")
	ts := startServer(t, server.Config{AuthSecret: secret})
	mallory := join(t, dialToken(t, ts.url(), mintToken(t, secret, "u-mallory", "Mallory"), nil), "team/s")
	obs := join(t, dialToken(t, ts.url(), mintToken(t, secret, "u-obs", "Observer"), nil), "team/s")
	ms := mallory.Self()
	if err := mallory.SetMeta(map[string]string{"name": "Alice", "user": "u-alice", "color": "#000000"}); err != nil {
		t.Fatal(err)
	}
	ps := waitPeers(t, obs, "mallory's meta", func(ps []collab.Peer) bool { p, _ := peerOf(ps, ms); return p.Meta["name"] == "Alice" })
	if p, _ := peerOf(ps, ms); p.User.Name != "Mallory" || p.User.ID != "u-mallory" || p.User.Color == "#000000" {
		t.Fatalf("mallory is shown as %+v, want her token's identity", p.User)
	}

	// A raw connection with a valid token sends a PresenceSet with a name
	// and a color appended: [32, doc, root, anchor, head, meta, name, color].
	conn, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := &bare{t: t, conn: conn}
	raw.send(&protocol.Hello{Version: protocol.Version, Token: mintToken(t, secret, "u-raw", "Raw"), Client: "raw"})
	if _, ok := raw.read().(*protocol.Welcome); !ok {
		t.Fatal("no welcome")
	}
	raw.joinSync("team/s")
	frame := protocol.Encode(&protocol.PresenceSet{Doc: "team/s"})
	if frame[0] != 0x96 {
		t.Fatalf("PresenceSet frame starts with %#x, want a 6-element array", frame[0])
	}
	frame[0] = 0x98
	frame = append(frame, 0xa5, 'A', 'd', 'm', 'i', 'n', 0xa7, '#', '0', '0', '0', '0', '0', '0')
	if err := conn.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue // presence or the error frame before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != int(protocol.CodeBadFrame) {
			t.Fatalf("after a PresenceSet with identity fields: %v, want close %d (bad frame)", err, protocol.CodeBadFrame)
		}
		break
	}
	for _, p := range obs.Peers() {
		if p.User.Name == "Admin" {
			t.Fatalf("the observer shows a spoofed name: %s", fmtPeers(obs.Peers()))
		}
	}
}

// frameCounter reads a raw connection of session self that has just joined
// a document and records when each Presence frame arrived, until the
// connection is closed. ready is closed once the full presence answering
// the join and the delta announcing self to everyone have arrived (neither
// is recorded): from then on every frame comes from a later change.
func frameCounter(conn *websocket.Conn, self string) (ready <-chan struct{}, arrivals <-chan []time.Time) {
	rd := make(chan struct{})
	out := make(chan []time.Time, 1)
	go func() {
		var at []time.Time
		full, announced := false, false
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				out <- at
				return
			}
			m, err := protocol.Decode(b, protocol.DecodeLimits{})
			if err != nil || m.Type() != protocol.TypePresence {
				continue
			}
			p := m.(*protocol.Presence)
			switch {
			case !full || !announced:
				// The full presence after the join (which lists this session
				// itself), or a later delta announcing it: counting starts after.
				full = full || p.Full
				for _, peer := range p.Peers {
					announced = announced || peer.Session == self
				}
				if full && announced {
					close(rd)
				}
			default:
				at = append(at, time.Now())
			}
		}
	}()
	return rd, out
}

// 50 peers move at 60 Hz for a second through the real client: an observer
// gets at most 20 Presence frames a second (+1), and ends with every peer's
// final position.
func TestPresenceCoalescing50Peers(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	ts := startServer(t, server.Config{})
	const doc, n, ticks, textLen = "load", 50, 60, 100
	w := join(t, dialClient(t, ts.url(), 0, nil), doc)
	if err := w.Insert("body", 0, strings.Repeat(".", textLen)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	peers := make([]*collab.Document, n)
	sessions := make([]string, n)
	for i := range peers {
		peers[i] = join(t, dialClient(t, ts.url(), 0, nil), doc)
		sessions[i] = peers[i].Self()
	}
	obs := join(t, dialClient(t, ts.url(), 0, nil), doc)
	waitPeers(t, obs, "every peer listed", func(ps []collab.Peer) bool { return len(ps) == n+2 })

	conn, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := &bare{t: t, conn: conn}
	raw.send(&protocol.Hello{Version: protocol.Version, Client: "counter"})
	welcome, ok := raw.read().(*protocol.Welcome)
	if !ok {
		t.Fatal("no welcome")
	}
	raw.joinSync(doc)
	ready, counted := frameCounter(conn, welcome.Session)
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("no full presence after the raw join")
	}

	start := time.Now()
	final := make([]int, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / 60)
			defer tick.Stop()
			for k := range ticks {
				pos := (i*7 + k) % (textLen + 1)
				if err := p.SetCursor("body", pos, pos); err != nil {
					errs <- err
					return
				}
				final[i] = pos
				if k < ticks-1 {
					<-tick.C
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitPeers(t, obs, "every peer's final position", func(ps []collab.Peer) bool {
		for i, s := range sessions {
			if !hasCursor(s, final[i], final[i])(ps) {
				return false
			}
		}
		return true
	})
	end := time.Now()
	_ = conn.Close()
	var frames int
	for _, at := range <-counted {
		if !at.Before(start) && !at.After(end) {
			frames++
		}
	}
	elapsed := end.Sub(start)
	// Flushes fire at least 50 ms apart: at most 20/s + 1 fire in the window,
	// plus one that fired just before it and arrived inside.
	limit := int(elapsed.Seconds()*20) + 2
	t.Logf("%d presence frames in %v (limit %d)", frames, elapsed, limit)
	if frames > limit {
		t.Fatalf("observer got %d presence frames in %v, want at most %d (20/s + 2)", frames, elapsed, limit)
	}
	if frames == 0 {
		t.Fatal("observer got no presence frames during the load")
	}
}

// A refused presence (over a limit, or a cursor of a read-only session on a
// server that hides them) is reported by PresenceErr and never ends the
// document.
func TestPresenceRefusedKeepsDocument(t *testing.T) {
	secret := []byte("presence-secret-at-least-32-bytes!")
	ts := startServer(t, server.Config{AuthSecret: secret, HideReadOnlyCursors: true})
	w := join(t, dialToken(t, ts.url(), mintToken(t, secret, "u-w", "Writer"), nil), "team/r")
	tok, err := server.NewToken(secret, server.Claims{Name: "Reader", Docs: []string{"team/*:r"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-r", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	r := join(t, dialToken(t, ts.url(), tok, nil), "team/r")

	refused := func(d *collab.Document, code protocol.Code) {
		t.Helper()
		deadline := time.NewTimer(10 * time.Second)
		defer deadline.Stop()
		for {
			var pe *protocol.Error
			if err := d.PresenceErr(); errors.As(err, &pe) && pe.Code == code {
				return
			}
			select {
			case <-d.PresenceChanges():
			case <-deadline.C:
				t.Fatalf("PresenceErr = %v, want code %d", d.PresenceErr(), code)
			}
		}
	}
	if err := w.SetMeta(map[string]string{"big": strings.Repeat("x", 4<<10)}); err == nil {
		t.Fatal("SetMeta of a 4 KiB value: want an error from the client (the server would close the connection)")
	}
	big := strings.Repeat("x", 700) // each under the string limit, together over the 1 KiB per peer
	if err := w.SetMeta(map[string]string{"a": big, "b": big}); err != nil {
		t.Fatal(err)
	}
	refused(w, protocol.CodePresenceRefused)
	if err := r.SetCursor("body", 0, 0); err != nil {
		t.Fatal(err)
	}
	refused(r, protocol.CodeReadOnly)

	if err := w.Insert("body", 0, "still here"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitSV(ctx, r, w.StateVector()); err != nil {
		t.Fatal(err)
	}
	if r.String("body") != "still here" || w.Err() != nil || r.Err() != nil || !w.Status().Live || !r.Status().Live {
		t.Fatalf("after refusals: reader %q, errs %v %v, live %v %v; want both documents alive",
			r.String("body"), w.Err(), r.Err(), w.Status().Live, r.Status().Live)
	}
	ps := waitPeers(t, w, "the reader listed read-only", func(ps []collab.Peer) bool {
		p, ok := peerOf(ps, r.Self())
		return ok && p.ReadOnly && p.User.Name == "Reader"
	})
	if p, _ := peerOf(ps, r.Self()); p.Cursor.Root != "" {
		t.Fatalf("the reader's refused cursor is shown: %+v", p.Cursor)
	}
}

// Regression: a PresenceSet whose metadata value is over 1 KiB was a decode
// error that closed the whole connection (4500). Presence limits are the
// server's: it refuses such a state with 4516 and the document stays joined.
func TestPresenceLongMetaValueRefused(t *testing.T) {
	ts := startServer(t, server.Config{})
	raw := dialBare(t, ts.url())
	raw.joinSync("doc")
	raw.send(&protocol.PresenceSet{Doc: "doc", State: presence.State{Meta: map[string]string{"status": strings.Repeat("x", 2<<10)}}})
	_ = raw.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := raw.conn.ReadMessage()
		if err != nil {
			t.Fatalf("connection closed (%v), want a 4516 presence refused error and the document still joined", err)
		}
		m, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := m.(*protocol.Error); ok {
			if e.Code != protocol.CodePresenceRefused {
				t.Fatalf("error %v, want code %d (presence refused)", e, protocol.CodePresenceRefused)
			}
			return
		}
	}
}
