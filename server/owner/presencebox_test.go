package owner

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

func metaState(v string) presence.State { return presence.State{Meta: map[string]string{"i": v}} }

// lastMoved is the state of session id in the last presence event of evs
// that lists it ("" if none does).
func lastMoved(evs []Event, id string) (state string, events int) {
	for _, p := range presenceOf(evs) {
		events++
		for _, l := range [][]presence.Peer{p.Msg.Peers, p.Msg.Moved} {
			for _, peer := range l {
				if peer.Session == id {
					state = peer.Meta["i"]
				}
			}
		}
	}
	return state, events
}

// joinedPair joins a mover and an observer and lets the join's presence go out.
func joinedPair(t *testing.T, r *Registry) (o *Owner, mover, obs *fakeSub) {
	t.Helper()
	mover, obs = &fakeSub{id: "mover"}, &fakeSub{id: "obs"}
	o = send(t, r, "d", Join{Sub: mover})
	o.Send(context.Background(), Join{Sub: obs})
	time.Sleep(time.Second)
	synctest.Wait()
	mover.take()
	obs.take()
	return o, mover, obs
}

// Presence posted to a slot goes out like presence sent in the inbox: the
// first change after a quiet interval at once, the later ones of the
// interval together at its end, with the latest state.
func TestPresenceBoxFlushTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		o, mover, obs := joinedPair(t, r)
		slot := NewPresenceSlot(mover)
		o.Send(context.Background(), SetPresence{Sub: mover, State: metaState("1"), Slot: slot})
		synctest.Wait()
		if got, n := lastMoved(obs.take(), "mover"); n != 1 || got != "1" {
			t.Fatalf("first change after a quiet period: %d events, state %q; want 1 at once with state 1", n, got)
		}
		for _, v := range []string{"2", "3", "4"} {
			time.Sleep(10 * time.Millisecond)
			if !o.PostPresence(slot, metaState(v)) {
				t.Fatal("PostPresence: owner gone")
			}
			synctest.Wait()
		}
		if _, n := lastMoved(obs.take(), "mover"); n != 0 {
			t.Fatalf("%d presence events within the interval, want 0", n)
		}
		time.Sleep(20 * time.Millisecond) // the interval ends 50 ms after the first flush
		synctest.Wait()
		if got, n := lastMoved(obs.take(), "mover"); n != 1 || got != "4" {
			t.Fatalf("at the end of the interval: %d events, state %q; want 1 with the latest (4)", n, got)
		}
		time.Sleep(time.Second) // quiet again: the next post goes out at once
		synctest.Wait()
		o.PostPresence(slot, metaState("5"))
		synctest.Wait()
		if got, n := lastMoved(obs.take(), "mover"); n != 1 || got != "5" {
			t.Fatalf("a post after a quiet period: %d events, state %q; want 1 at once with state 5", n, got)
		}
		if e := errorsOf(mover.take()); len(e) != 0 {
			t.Fatalf("the mover got errors: %v", e)
		}
	})
}

// A state posted before the owner has handled the SetPresence that
// registers its slot (still in the inbox) waits for it, and then wins: it
// is the newer one.
func TestPresenceBoxWaitsForRegistration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		o, mover, obs := joinedPair(t, r)
		other := &fakeSub{id: "other"}
		o.Send(context.Background(), Join{Sub: other})
		otherSlot := NewPresenceSlot(other)
		o.Send(context.Background(), SetPresence{Sub: other, State: metaState("o1"), Slot: otherSlot})
		time.Sleep(time.Second)
		synctest.Wait()
		obs.take()
		slot := NewPresenceSlot(mover)
		o.PostPresence(slot, metaState("new"))     // as if its registration were still queued
		o.PostPresence(otherSlot, metaState("o2")) // a flush that takes the box
		synctest.Wait()
		if got, _ := lastMoved(obs.take(), "mover"); got != "" {
			t.Fatalf("a state of an unregistered slot went out: %q", got)
		}
		o.Send(context.Background(), SetPresence{Sub: mover, State: metaState("old"), Slot: slot})
		time.Sleep(time.Second)
		synctest.Wait()
		if got, _ := lastMoved(obs.take(), "mover"); got != "new" {
			t.Fatalf("after the registration: mover's state %q, want the posted one (new)", got)
		}
		if e := errorsOf(mover.take()); len(e) != 0 {
			t.Fatalf("the mover got errors: %v", e)
		}
	})
}

// A Leave retires the slot: what it still holds is dropped with the peer
// (no error to the leaver), and a rejoin's new slot works.
func TestPresenceBoxLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		o, mover, obs := joinedPair(t, r)
		slot := NewPresenceSlot(mover)
		o.Send(context.Background(), SetPresence{Sub: mover, State: metaState("1"), Slot: slot})
		o.PostPresence(slot, metaState("2"))
		o.Send(context.Background(), Leave{Sub: mover})
		time.Sleep(time.Second)
		synctest.Wait()
		var gone bool
		for _, p := range presenceOf(obs.take()) {
			for _, g := range p.Msg.Gone {
				gone = gone || g == "mover"
			}
		}
		if !gone {
			t.Fatal("the peer that left is still present")
		}
		if e := errorsOf(mover.take()); len(e) != 0 {
			t.Fatalf("the leaver got errors: %v", e)
		}
		o.Send(context.Background(), Join{Sub: mover})
		rejoinedPosts(t, o, mover, obs)
	})
}

// rejoinedPosts: after mover's rejoin, a new slot registered with state 3
// and a post of 4 reach obs at the next flush (in a synctest bubble).
func rejoinedPosts(t *testing.T, o *Owner, mover, obs *fakeSub) {
	t.Helper()
	slot := NewPresenceSlot(mover)
	o.Send(context.Background(), SetPresence{Sub: mover, State: metaState("3"), Slot: slot})
	o.PostPresence(slot, metaState("4"))
	time.Sleep(time.Second)
	synctest.Wait()
	if got, _ := lastMoved(obs.take(), "mover"); got != "4" {
		t.Fatalf("after the rejoin: state %q, want 4", got)
	}
}

// After the owner dropped its state (a panic: everyone told to rejoin), a
// post to a slot of the old subscription is refused as retryable, as a
// SetPresence would be; a rejoin with a new slot works.
func TestPresenceBoxAfterReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		o, mover, obs := joinedPair(t, r)
		slot := NewPresenceSlot(mover)
		o.Send(context.Background(), SetPresence{Sub: mover, State: metaState("1"), Slot: slot})
		o.Send(context.Background(), Update{Sub: obs, Batch: 1, Update: []byte("panic")})
		time.Sleep(time.Second)
		synctest.Wait()
		mover.take()
		o.PostPresence(slot, metaState("2"))
		time.Sleep(time.Second)
		synctest.Wait()
		if e := errorsOf(mover.take()); len(e) != 1 || e[0].Code != protocol.CodeDocUnloading || !e[0].Code.Retry() {
			t.Fatalf("a post after the reload: %v, want one retryable CodeDocUnloading", e)
		}
		o.Send(context.Background(), Join{Sub: mover})
		o.Send(context.Background(), Join{Sub: obs})
		rejoinedPosts(t, o, mover, obs)
	})
}

// A read-only peer's cursor is refused through the box as in the inbox
// (HideReadOnlyCursors), and its metadata still goes out.
func TestPresenceBoxReadOnlyCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.HideReadOnlyCursors = true })
		ro, obs := &fakeSub{id: "ro"}, &fakeSub{id: "obs"}
		o := send(t, r, "d", Join{Sub: ro, ReadOnly: true})
		o.Send(context.Background(), Join{Sub: obs})
		slot := NewPresenceSlot(ro)
		o.Send(context.Background(), SetPresence{Sub: ro, State: metaState("1"), Slot: slot})
		cursor := metaState("2")
		cursor.Cursor = presence.Cursor{Root: "t", Anchor: []byte{1}, Head: []byte{1}}
		o.PostPresence(slot, cursor)
		time.Sleep(time.Second)
		synctest.Wait()
		if e := errorsOf(ro.take()); len(e) != 1 || e[0].Code != protocol.CodeReadOnly {
			t.Fatalf("a read-only cursor posted: %v, want one CodeReadOnly", e)
		}
		if got, _ := lastMoved(obs.take(), "ro"); got != "1" {
			t.Fatalf("the read-only peer's state %q, want the last one accepted (1)", got)
		}
	})
}

// PostPresence reports false once the owner has exited.
func TestPresenceBoxOwnerGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		slot := NewPresenceSlot(s)
		o.Send(context.Background(), SetPresence{Sub: s, State: metaState("1"), Slot: slot})
		synctest.Wait()
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-o.Done()
		if o.PostPresence(slot, metaState("2")) {
			t.Fatal("PostPresence to an exited owner reported true")
		}
	})
}
