package owner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
)

func errorCodes(evs []Event) []protocol.Code {
	var out []protocol.Code
	for _, e := range errorsOf(evs) {
		out = append(out, e.Code)
	}
	return out
}

// The first door decides a new document's kind; its records carry it, a
// reload reads it back, and the other kind's door is refused with a typed,
// terminal error.
func TestKindFixedByFirstWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		r := testRegistry(t, st, nil)
		y := &fakeSub{id: "y"}
		o := send(t, r, "d", Join{Sub: y, Kind: KindYjs})
		o.Send(context.Background(), Update{Sub: y, Batch: 1, Update: []byte("a")})
		synctest.Wait()
		if got := errorsOf(y.take()); len(got) != 0 {
			t.Fatalf("yjs join of a new document: errors %v", got[0].Message)
		}
		st.mu.Lock()
		rec := st.log[0]
		st.mu.Unlock()
		if k, data, err := RecordKind([]byte(rec)); err != nil || k != KindYjs || string(data) != "a" {
			t.Fatalf("stored record %q: kind %v data %q err %v", rec, k, data, err)
		}

		n := &fakeSub{id: "n"}
		o.Send(context.Background(), Join{Sub: n, Kind: KindNative})
		synctest.Wait()
		errs := errorsOf(n.take())
		if len(errs) != 1 || errs[0].Code != protocol.CodeWrongKind || !errs[0].End {
			t.Fatalf("native join of a yjs document: %+v", errs)
		}

		// Unload and reload: the kind comes back from the records.
		o.Send(context.Background(), Leave{Sub: y})
		r.Release(o)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		o2 := send(t, r, "d", Read{What: ReadInfo, Reply: make(chan ReadResult, 1)})
		defer r.Release(o2)
		reply := make(chan ReadResult, 1)
		o2.Send(context.Background(), Read{Root: "t", What: ReadInfo, Reply: reply})
		if res := <-reply; res.Kind != KindYjs || res.Text != "a" {
			t.Fatalf("reloaded: kind %v text %q", res.Kind, res.Text)
		}
		o2.Send(context.Background(), Join{Sub: n, Kind: KindNative})
		synctest.Wait()
		if got := errorCodes(n.take()); len(got) != 1 || got[0] != protocol.CodeWrongKind {
			t.Fatalf("native join after reload: %v", got)
		}
	})
}

// An unwritten document a session has joined keeps its kind: a session of
// the other kind is refused, even before anything is stored.
func TestKindOfJoinedEmptyDocument(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		a, b := &fakeSub{id: "a"}, &fakeSub{id: "b"}
		o := send(t, r, "d", Join{Sub: a, Kind: KindNative})
		defer r.Release(o)
		o.Send(context.Background(), Join{Sub: b, Kind: KindYjs})
		synctest.Wait()
		if got := errorCodes(b.take()); len(got) != 1 || got[0] != protocol.CodeWrongKind {
			t.Fatalf("yjs join of a joined native document: %v", got)
		}
		// Once nobody holds it and nothing was written, the next door decides again.
		o.Send(context.Background(), Leave{Sub: a})
		o.Send(context.Background(), Join{Sub: b, Kind: KindYjs})
		synctest.Wait()
		if got := errorCodes(b.take()); len(got) != 0 {
			t.Fatalf("yjs join of an empty, unjoined document: %v", got)
		}
		reply := make(chan ImportResult, 1)
		from, _ := newFakeEngine(KindNative, []byte("x"))
		o.Send(context.Background(), Import{Kind: KindNative, From: from, Reply: reply})
		var ref *Refused
		if res := <-reply; !errors.As(res.Err, &ref) || ref.Code != protocol.CodeWrongKind {
			t.Fatalf("native import into a joined yjs document: %v", res.Err)
		}
	})
}

// Records of an unknown kind, or of two kinds in one document, are refused
// as corrupt, never read as native.
func TestStoredKindCorrupt(t *testing.T) {
	if _, _, err := RecordKind([]byte{0xC1, 'z', 1, 'a'}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown prefix: %v", err)
	}
	if k, d, err := RecordKind(nil); err != nil || k != KindNative || d != nil {
		t.Fatalf("empty record: %v %q %v", k, d, err)
	}
	mixed := Stored{Snapshot: record(KindYjs, []byte("s")), Tail: []Entry{{Seq: 1, Data: []byte("native")}}}
	if _, err := storedKind(&mixed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mixed kinds: %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true, log: []string{string(record(KindYjs, []byte("a"))), "b"}, seq: 2}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s, Kind: KindYjs})
		defer r.Release(o)
		synctest.Wait()
		if got := errorCodes(s.take()); len(got) != 1 || got[0] != protocol.CodeDocCorrupt {
			t.Fatalf("join of a mixed-kind document: %v", got)
		}
	})
}

func awarenessOf(evs []Event) []*AwarenessEvent {
	var out []*AwarenessEvent
	for _, e := range evs {
		if a, ok := e.(*AwarenessEvent); ok {
			out = append(out, a)
		}
	}
	return out
}

// states decodes the awareness events' updates into client -> state, the
// last word for each client winning.
func states(t *testing.T, evs []*AwarenessEvent) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, ev := range evs {
		entries, err := yproto.DecodeAwareness(ev.Update, yproto.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out[e.Client] = e.State
		}
	}
	return out
}

func awUpdate(client, clock uint64, state string) []byte {
	return yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{{Client: client, Clock: clock, State: state}})
}

// Awareness is relayed to the document's sessions, coalesced to one flush
// per interval; a joiner gets every state; a session's states are removed
// the moment it leaves; states nobody renews expire.
func TestAwarenessRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		a, b := &fakeSub{id: "a"}, &fakeSub{id: "b"}
		o := send(t, r, "d", Join{Sub: a, Kind: KindYjs})
		defer r.Release(o)
		o.Send(context.Background(), Join{Sub: b, Kind: KindYjs})
		for clock := uint64(1); clock <= 5; clock++ {
			o.Send(context.Background(), Awareness{Sub: a, Update: awUpdate(7, clock, `{"cursor":`+string(rune('0'+clock))+`}`)})
		}
		time.Sleep(60 * time.Millisecond)
		synctest.Wait()
		evs := awarenessOf(b.take())
		if len(evs) > 2 {
			t.Fatalf("5 awareness updates in one interval made %d flushes", len(evs))
		}
		if got := states(t, evs); got[7] != `{"cursor":5}` {
			t.Fatalf("b sees %v", got)
		}

		c := &fakeSub{id: "c"}
		o.Send(context.Background(), Join{Sub: c, Kind: KindYjs})
		time.Sleep(60 * time.Millisecond)
		synctest.Wait()
		evs = awarenessOf(c.take())
		if len(evs) != 1 || !evs[0].Full || states(t, evs)[7] != `{"cursor":5}` {
			t.Fatalf("joiner got %d events: %v", len(evs), states(t, evs))
		}

		o.Send(context.Background(), Leave{Sub: a})
		synctest.Wait()
		time.Sleep(60 * time.Millisecond)
		synctest.Wait()
		if got := states(t, awarenessOf(b.take())); got[7] != "null" {
			t.Fatalf("after a's leave b sees %v, want client 7 removed", got)
		}

		// b's state, never renewed, expires after y-protocols' timeout.
		o.Send(context.Background(), Awareness{Sub: b, Update: awUpdate(9, 1, `{}`)})
		time.Sleep(time.Second)
		synctest.Wait()
		c.take()
		time.Sleep(yproto.OutdatedTimeout + 30*time.Second)
		synctest.Wait()
		if got := states(t, awarenessOf(c.take())); got[9] != "null" {
			t.Fatalf("after the timeout c sees %v, want client 9 expired", got)
		}
	})
}

// Awareness is refused on native documents and malformed updates are
// refused without changing anything.
func TestAwarenessRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		n := &fakeSub{id: "n"}
		o := send(t, r, "native", Join{Sub: n})
		defer r.Release(o)
		o.Send(context.Background(), Awareness{Sub: n, Update: awUpdate(1, 1, "{}")})
		synctest.Wait()
		if got := errorCodes(n.take()); len(got) != 1 || got[0] != protocol.CodeWrongKind {
			t.Fatalf("awareness on a native document: %v", got)
		}
		y := &fakeSub{id: "y"}
		o2 := send(t, r, "yjs", Join{Sub: y, Kind: KindYjs})
		defer r.Release(o2)
		o2.Send(context.Background(), Awareness{Sub: y, Update: []byte{5, 1}})
		o2.Send(context.Background(), Awareness{Sub: y, Update: awUpdate(1, 1, "{not json")})
		synctest.Wait()
		for _, e := range errorsOf(y.take()) {
			if e.Code != protocol.CodePresenceRefused || !strings.Contains(e.Message, "awareness") {
				t.Fatalf("malformed awareness: %+v", e)
			}
		}
		reply := make(chan ReadResult, 1)
		o2.Send(context.Background(), Read{What: ReadInfo, Reply: reply})
		if res := <-reply; len(res.Awareness) != 0 {
			t.Fatalf("malformed updates left states %v", res.Awareness)
		}
	})
}

// A crowded document flushes presence less often: one more interval per
// 50 peers (100 peers: every 100 ms at a 50 ms interval), so its frames
// per second grow with the peers, not with their square.
func TestPresenceIntervalGrowsWithPeers(t *testing.T) {
	for _, c := range []struct {
		peers, wantMax int
	}{{2, 21}, {100, 11}} {
		synctest.Test(t, func(t *testing.T) {
			r := testRegistry(t, &fakeStore{auto: true}, func(cfg *Config) { cfg.PresenceLimits.MaxPeers = 1000 })
			subs := make([]*fakeSub, c.peers)
			var o *Owner
			for i := range subs {
				subs[i] = &fakeSub{id: fmt.Sprintf("s%d", i)}
				o = send(t, r, "d", Join{Sub: subs[i]})
				r.Release(o)
			}
			synctest.Wait()
			time.Sleep(time.Second)
			synctest.Wait()
			subs[1].take()
			for i := range 100 { // 100 moves over one second
				o.Send(context.Background(), SetPresence{Sub: subs[0], State: presence.State{Meta: map[string]string{"i": fmt.Sprint(i)}}})
				time.Sleep(10 * time.Millisecond)
				synctest.Wait()
			}
			if got := len(presenceOf(subs[1].take())); got > c.wantMax || got < c.wantMax/2 {
				t.Fatalf("%d peers: %d presence flushes in a second, want about %d", c.peers, got, c.wantMax-1)
			}
		})
	}
}
