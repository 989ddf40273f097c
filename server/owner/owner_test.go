package owner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// A document nobody holds unloads after IdleUnload, not before.
func TestIdleUnload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.IdleUnload = 30 * time.Second })
		o, err := r.Acquire(context.Background(), "d")
		if err != nil {
			t.Fatal(err)
		}
		r.Release(o)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if r.Loaded() != 1 {
			t.Fatalf("unloaded after 29 s of a 30 s idle timeout")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case <-o.Done():
		default:
			t.Fatal("not unloaded after the idle timeout")
		}
		if r.Loaded() != 0 || r.Bytes() != 0 {
			t.Fatalf("after unload: %d loaded, %d bytes accounted", r.Loaded(), r.Bytes())
		}
	})
}

// A held document (a subscriber) never unloads.
func TestHeldDocumentStays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.IdleUnload = time.Second })
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-o.Done():
			t.Fatal("a joined document unloaded")
		default:
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
	})
}

// Commits may complete out of order in a store; acks go out in submission
// order, applied at once and durable as each commit (and every one before
// it) lands.
func TestDurableAcksInSubmissionOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		for i, u := range []string{"a", "b", "c"} {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte(u)})
		}
		synctest.Wait()
		evs := s.take()
		if got := acks(evs, protocol.AckApplied); len(got) != 3 {
			t.Fatalf("applied acks %v, want 1 2 3", got)
		}
		if got := acks(evs, protocol.AckDurable); len(got) != 0 {
			t.Fatalf("durable acks %v before any commit", got)
		}
		st.complete(2)
		st.complete(1)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 0 {
			t.Fatalf("durable acks %v while the first commit is pending", got)
		}
		st.complete(0)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Fatalf("durable acks %v, want [1 2 3]", got)
		}
		o.Send(context.Background(), Update{Sub: s, Batch: 4, Update: []byte("wait:x")})
		o.Send(context.Background(), Update{Sub: s, Batch: 5, Update: []byte("bad")})
		synctest.Wait()
		evs = s.take()
		if got := acks(evs, protocol.AckRejected); len(got) != 1 || got[0] != 5 {
			t.Fatalf("rejected %v, want [5]", got)
		}
		if e := errorsOf(evs); len(e) != 1 || e[0].Code != protocol.CodeInvalidOp {
			t.Fatalf("errors %v, want one invalid op", e)
		}
		// An op that waits for a dependency is new: it is stored, but it
		// is durable only once it can show: after a crash that loses the
		// dependency it never would (docs/design/durable-pending.md).
		if got := acks(evs, protocol.AckDurable); len(got) != 0 {
			t.Fatalf("pending op acked durable before its commit: %v", got)
		}
		st.complete(3)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 0 {
			t.Fatalf("durable acks %v for an op still pending", got)
		}
		// After a rejected batch the session's later batches are rejected
		// too (they may build on it) until it rejoins.
		o.Send(context.Background(), Update{Sub: s, Batch: 7, Update: []byte("y")})
		synctest.Wait()
		evs = s.take()
		if got := acks(evs, protocol.AckRejected); len(got) != 1 || got[0] != 7 {
			t.Fatalf("after a rejection: rejected %v, want [7]", got)
		}
		if e := errorsOf(evs); len(e) != 1 || e[0].Code != protocol.CodeResync || !e[0].Code.Retry() {
			t.Fatalf("after a rejection: errors %v, want one retryable resync", e)
		}
		o.Send(context.Background(), Join{Sub: s, SV: []byte("99")})
		synctest.Wait()
		s.take()
		// A resend of what is stored stores nothing; a resend of an op
		// still pending is held like the op.
		o.Send(context.Background(), Update{Sub: s, Batch: 6, Update: []byte("wait:x")})
		synctest.Wait()
		if len(st.waiting) != 4 {
			t.Fatalf("a resend was submitted again")
		}
		if got := acks(s.take(), protocol.AckDurable); len(got) != 0 {
			t.Fatalf("resend of a pending op: durable acks %v, want none yet", got)
		}
		// Another session brings the dependency: once its commit lands,
		// the held batches are durable, in order, then its own.
		s2 := &fakeSub{id: "s2"}
		o.Send(context.Background(), Join{Sub: s2})
		o.Send(context.Background(), Update{Sub: s2, Batch: 1, Update: []byte("release")})
		o.Send(context.Background(), Update{Sub: s, Batch: 8, Update: []byte("z")})
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 0 {
			t.Fatalf("durable acks %v before the releasing commit landed", got)
		}
		st.complete(5) // "z" lands first: acked, the held ones still wait
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 0 {
			t.Fatalf("durable acks %v while the releasing commit is in flight", got)
		}
		st.complete(4)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 3 || got[0] != 4 || got[1] != 6 || got[2] != 8 {
			t.Fatalf("durable acks %v, want [4 6 8]", got)
		}
		if got := acks(s2.take(), protocol.AckDurable); len(got) != 1 || got[0] != 1 {
			t.Fatalf("releasing session: durable acks %v, want [1]", got)
		}
	})
}

// The log is compacted into a snapshot once CompactEntries entries are
// durable, covering exactly those entries.
func TestCompactionThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		r := testRegistry(t, st, func(c *Config) { c.CompactEntries = 3 })
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		for i := range 2 {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte{'a' + byte(i)}})
		}
		synctest.Wait()
		if len(st.compacted) != 0 {
			t.Fatalf("compacted after 2 entries (threshold 3)")
		}
		o.Send(context.Background(), Update{Sub: s, Batch: 3, Update: []byte("c")})
		synctest.Wait()
		if len(st.compacted) != 1 || st.compacted[0] != 3 {
			t.Fatalf("compactions %v, want one through 3", st.compacted)
		}
	})
}

// Presence changes go out at most once per interval, with the latest state.
func TestPresenceFlushTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		a, b := &fakeSub{id: "a"}, &fakeSub{id: "b"}
		o := send(t, r, "d", Join{Sub: a, User: presence.User{Name: "A"}})
		o.Send(context.Background(), Join{Sub: b, User: presence.User{Name: "B"}})
		time.Sleep(time.Second)
		synctest.Wait()
		b.take()
		state := func(i int) presence.State { return presence.State{Meta: map[string]string{"i": string(rune('0' + i))}} }
		o.Send(context.Background(), SetPresence{Sub: a, State: state(1)}) // after a quiet period: at once
		synctest.Wait()
		if n := len(presenceOf(b.take())); n != 1 {
			t.Fatalf("%d presence events after the first change, want 1 at once", n)
		}
		for i := 2; i <= 4; i++ {
			time.Sleep(10 * time.Millisecond)
			o.Send(context.Background(), SetPresence{Sub: a, State: state(i)})
			synctest.Wait()
		}
		if n := len(presenceOf(b.take())); n != 0 {
			t.Fatalf("%d presence events within the interval, want 0", n)
		}
		time.Sleep(20 * time.Millisecond) // the interval ends 50 ms after the first flush
		synctest.Wait()
		p := presenceOf(b.take())
		if len(p) != 1 || len(p[0].Msg.Moved) != 1 || p[0].Msg.Moved[0].Meta["i"] != "4" {
			t.Fatalf("flush at the end of the interval: %+v, want one with the latest state (4)", p)
		}
	})
}

// A subscriber that cannot take a delivery is dropped at once: no more
// events, and its peer leaves presence (no ghost cursor).
func TestSlowSubscriberDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		slow, w := &fakeSub{id: "slow"}, &fakeSub{id: "w"}
		o := send(t, r, "d", Join{Sub: slow})
		o.Send(context.Background(), Join{Sub: w})
		time.Sleep(time.Second)
		synctest.Wait()
		w.take()
		slow.mu.Lock()
		slow.slow = true
		slow.mu.Unlock()
		o.Send(context.Background(), Update{Sub: w, Batch: 1, Update: []byte("x")})
		time.Sleep(time.Second)
		synctest.Wait()
		var gone bool
		for _, p := range presenceOf(w.take()) {
			for _, g := range p.Msg.Gone {
				gone = gone || g == "slow"
			}
		}
		if !gone {
			t.Fatal("the dropped subscriber's peer is still present")
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{What: ReadInfo, Reply: res})
		if got := <-res; got.Sessions != 1 || got.Peers != 1 {
			t.Fatalf("after the drop: %d sessions, %d peers; want 1, 1", got.Sessions, got.Peers)
		}
	})
}

// Under backpressure presence is dropped, never the subscriber; the one
// that missed events gets the whole presence once it keeps up.
func TestPresenceDroppedNotSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		behind, mover := &fakeSub{id: "behind"}, &fakeSub{id: "mover"}
		o := send(t, r, "d", Join{Sub: behind})
		o.Send(context.Background(), Join{Sub: mover})
		o.Send(context.Background(), Update{Sub: mover, Batch: 1, Update: []byte("x")})
		time.Sleep(time.Second)
		synctest.Wait()
		behind.take()
		behind.mu.Lock()
		behind.behind = true
		behind.mu.Unlock()
		for i := range 20 {
			o.Send(context.Background(), SetPresence{Sub: mover, State: presence.State{Meta: map[string]string{"i": string(rune('a' + i))}}})
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if p := presenceOf(behind.take()); len(p) != 0 {
			t.Fatalf("a subscriber that is behind got %d presence events", len(p))
		}
		behind.mu.Lock()
		behind.behind = false
		behind.mu.Unlock()
		time.Sleep(time.Second) // the stale subscriber is retried at the next flush
		synctest.Wait()
		p := presenceOf(behind.take())
		if len(p) != 1 || !p[0].Msg.Full {
			t.Fatalf("after catching up: %d presence events, want one full", len(p))
		}
		for _, peer := range p[0].Msg.Peers {
			if peer.Session == "mover" && peer.Meta["i"] != "t" {
				t.Fatalf("mover's state %q, want the latest (t)", peer.Meta["i"])
			}
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{What: ReadInfo, Reply: res})
		if got := <-res; got.Err != nil || got.Sessions != 2 {
			t.Fatalf("%d sessions (%v), want both (presence never drops a subscriber)", got.Sessions, got.Err)
		}
	})
}

// Shutdown waits for the commits in flight, and their durable acks go out.
func TestShutdownWaitsForCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		r := NewRegistry(Config{Logger: testLogger(), Store: st, NewEngine: newFakeEngine, IdleUnload: time.Minute,
			CompactEntries: 1000, PresenceInterval: time.Millisecond, PresenceTTL: time.Minute, ChangeLogEntries: 10,
			ChangeLogBytes: 1 << 20, MaxReplicaBytes: 1 << 30}, RegistryLimits{MaxDocs: 10, MaxBytes: 1 << 30, EvictWait: time.Second})
		s := &fakeSub{id: "s"}
		send(t, r, "d", Join{Sub: s}).Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("x")})
		synctest.Wait()
		done := make(chan error, 1)
		go func() { done <- r.Shutdown(context.Background()) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Shutdown returned with a commit in flight")
		default:
		}
		st.complete(0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := acks(s.take(), protocol.AckDurable); len(got) != 1 {
			t.Fatalf("durable acks %v after shutdown, want [1]", got)
		}
	})
}

// A panic in the owner reloads the document from storage: subscribers are
// told to rejoin, a request being handled is answered, acked text is there,
// and the owner goes on serving.
func TestPanicReloadsFromStorage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		m := &countingMetrics{}
		r := testRegistry(t, st, func(c *Config) { c.Metrics = m })
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("kept")})
		o.Send(context.Background(), Update{Sub: s, Batch: 2, Update: []byte("panic")})
		synctest.Wait()
		e := errorsOf(s.take())
		if len(e) != 1 || e[0].Code != protocol.CodeDocUnloading || !e[0].End {
			t.Fatalf("after the panic the subscriber got %v, want one CodeDocUnloading", e)
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: res})
		if got := <-res; got.Err != nil || got.Text != "kept" {
			t.Fatalf("after reload: %q %v, want \"kept\"", got.Text, got.Err)
		}
		// A batch the session sent before it rejoined is refused as
		// retryable (never a terminal "not joined"); after the rejoin it
		// applies.
		o.Send(context.Background(), Update{Sub: s, Batch: 3, Update: []byte("again")})
		synctest.Wait()
		evs := s.take()
		if e := errorsOf(evs); len(e) != 1 || e[0].Code != protocol.CodeDocUnloading || !e[0].Code.Retry() || len(acks(evs, protocol.AckRejected)) != 1 {
			t.Fatalf("a batch before the rejoin: %v, want rejected with a retryable CodeDocUnloading", e)
		}
		o.Send(context.Background(), Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 4, Update: []byte("again")})
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 1 || got[0] != 4 {
			t.Fatalf("after the rejoin: durable %v, want [4]", got)
		}
		edit := make(chan EditResult, 1)
		o.Send(context.Background(), Edit{Root: "t", Edits: []Splice{{Ins: "panic"}}, Reply: edit})
		if got := <-edit; got.Err != nil {
			// the fake's Edit does not panic; this checks the owner still serves
			t.Fatalf("edit after reload: %v", got.Err)
		}
		if m.panics != 1 {
			t.Fatalf("%d panics counted, want 1", m.panics)
		}
	})
}

// A write the store refuses (it failed) reloads the document, so memory
// never holds what storage does not; the author is told to resend.
func TestStoreRefusalReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("kept")})
		synctest.Wait()
		st.mu.Lock()
		st.refuse = errors.New("fake store: disk failed")
		st.mu.Unlock()
		o.Send(context.Background(), Update{Sub: s, Batch: 2, Update: []byte("lost")})
		synctest.Wait()
		e := errorsOf(s.take())
		if len(e) != 1 || e[0].Code != protocol.CodeStorageFailed || !e[0].Code.Retry() {
			t.Fatalf("after the refusal: %v, want one retryable CodeStorageFailed", e)
		}
		st.mu.Lock()
		st.refuse = nil
		st.mu.Unlock()
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: res})
		if got := <-res; got.Text != "kept" {
			t.Fatalf("text %q after the refusal, want only what was stored (\"kept\")", got.Text)
		}
	})
}

// A load that failed for a reason that may pass (storage unreachable) is
// tried again when a subscriber asks again: the document is not refused
// until it happens to unload.
func TestFailedLoadRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true, log: []string{"kept"}, seq: 1, loadErr: errors.New("fake store: unreachable")}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		synctest.Wait()
		e := errorsOf(s.take())
		if len(e) != 1 || e[0].Code != protocol.CodeStorageFailed || !e[0].End {
			t.Fatalf("join of an unloadable document: %v, want one CodeStorageFailed that ends it", e)
		}
		st.mu.Lock()
		st.loadErr = nil
		st.mu.Unlock()
		o.Send(context.Background(), Join{Sub: s})
		synctest.Wait()
		if e := errorsOf(s.take()); len(e) != 0 {
			t.Fatalf("rejoin once storage is back: %v", e)
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: res})
		if got := <-res; got.Text != "kept" || got.Err != nil {
			t.Fatalf("read after the retried load = %q, %v; want \"kept\"", got.Text, got.Err)
		}
	})
}

// A full store queue is backpressure, not a failure: updates wait in the
// owner's backlog, unsubmitted, and are stored in order once there is
// room; nothing is refused, acks stay in order.
func TestStoreBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true, refuse: ErrBusy}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		for i, u := range []string{"a", "b", "c"} {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte(u)})
		}
		time.Sleep(time.Second) // the backlog retries every few milliseconds
		synctest.Wait()
		evs := s.take()
		if got := acks(evs, protocol.AckApplied); len(got) != 3 {
			t.Fatalf("applied %v, want all three", got)
		}
		if e := errorsOf(evs); len(e) != 0 || len(acks(evs, protocol.AckDurable)) != 0 {
			t.Fatalf("while the store is full: errors %v, durable %v; want neither", e, acks(evs, protocol.AckDurable))
		}
		st.mu.Lock()
		st.refuse = nil
		st.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Fatalf("once there is room: durable %v, want [1 2 3]", got)
		}
		if strings.Join(st.log, "") != "abc" {
			t.Fatalf("stored %q, want abc in order", st.log)
		}
	})
}

// Delete is answered once the tombstone is durable; subscribers are told,
// and the document is refused from then on.
func TestDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("x")})
		del := make(chan error, 1)
		o.Send(context.Background(), Delete{Reply: del})
		if err := <-del; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		e := errorsOf(s.take())
		if len(e) != 1 || e[0].Code != protocol.CodeDocDeleted {
			t.Fatalf("subscriber told %v, want CodeDocDeleted", e)
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: res})
		if got := <-res; got.Err == nil {
			t.Fatal("read of a deleted document succeeded")
		}
	})
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A peer whose connection shows no life for the TTL leaves presence (no
// ghost cursor after a dead TCP connection); a live but idle one stays,
// whatever its last presence change.
func TestPresenceTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.PresenceTTL = 30 * time.Second })
		dead, idle, obs := &fakeSub{id: "dead"}, &fakeSub{id: "idle"}, &fakeSub{id: "obs"}
		o := send(t, r, "d", Join{Sub: dead})
		o.Send(context.Background(), Join{Sub: idle})
		o.Send(context.Background(), Join{Sub: obs})
		time.Sleep(time.Second)
		synctest.Wait()
		dead.mu.Lock()
		dead.silent = time.Now()
		dead.mu.Unlock()
		obs.take()
		gone := func() []string {
			var g []string
			for _, p := range presenceOf(obs.take()) {
				g = append(g, p.Msg.Gone...)
			}
			return g
		}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if g := gone(); len(g) != 0 {
			t.Fatalf("gone after 29 s of a 30 s TTL: %v", g)
		}
		time.Sleep(12 * time.Second) // the expiry ticker runs every TTL/3
		synctest.Wait()
		if g := gone(); len(g) != 1 || g[0] != "dead" {
			t.Fatalf("after the TTL: gone %v, want [dead] (the idle live peer stays)", g)
		}
	})
}

// A session made read-only (its token refreshed to a read grant) has its
// later updates rejected.
func TestReadOnlyAfterJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		o.Send(context.Background(), ReadOnly{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 2, Update: []byte("b")})
		synctest.Wait()
		evs := s.take()
		if got := acks(evs, protocol.AckRejected); len(got) != 1 || got[0] != 2 {
			t.Fatalf("rejected %v, want [2]", got)
		}
		if e := errorsOf(evs); len(e) != 1 || e[0].Code != protocol.CodeReadOnly {
			t.Fatalf("errors %v, want read only", e)
		}
	})
}

// followerMetrics sums the followers gauge's deltas.
type followerMetrics struct {
	noMetrics
	mu sync.Mutex
	n  int
}

func (m *followerMetrics) Followers(d int) {
	m.mu.Lock()
	m.n += d
	m.mu.Unlock()
}

func (m *followerMetrics) get() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// The followers gauge follows Follow, Unfollow, a follower dropped on a
// failed delivery and a delete, and sessions joining and leaving do not
// move it (the owner keeps a count instead of counting its subscribers on
// every message).
func TestFollowersGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &followerMetrics{}
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.Metrics = m })
		step := func(what string, want int, msgs ...Msg) {
			t.Helper()
			for _, msg := range msgs {
				send(t, r, "d", msg)
			}
			synctest.Wait()
			if got := m.get(); got != want {
				t.Fatalf("%s: followers gauge = %d, want %d", what, got, want)
			}
		}
		f1, f2, f3 := &fakeSub{id: "f1"}, &fakeSub{id: "f2"}, &fakeSub{id: "f3"}
		s := &fakeSub{id: "s"}
		step("two follows", 2, Follow{Sub: f1, Root: "t"}, Follow{Sub: f2, Root: "t"})
		step("the same follower again", 2, Follow{Sub: f1, Root: "t"})
		step("a session joins", 2, Join{Sub: s})
		step("an update", 2, Update{Sub: s, Batch: 1, Update: []byte("a")})
		step("unfollow", 1, Unfollow{Sub: f1})
		step("a session leaves", 1, Leave{Sub: s})
		step("a third", 2, Follow{Sub: f3, Root: "t"})
		f2.mu.Lock()
		f2.slow = true // its next delivery fails: the owner drops it
		f2.mu.Unlock()
		step("a slow follower dropped", 1, Join{Sub: s}, Update{Sub: s, Batch: 2, Update: []byte("b")})
		step("unfollow the last", 0, Unfollow{Sub: f3})
	})
}

// A stored state found corrupt only when it is used (a lazily loaded
// snapshot whose structure fails its check on the first op) refuses the
// document as a failed load does: every subscriber is told it ended
// (CodeDocCorrupt), later requests are refused, acked batches stay acked.
func TestCorruptOnUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{auto: true}
		r := testRegistry(t, st, nil)
		s, s2 := &fakeSub{id: "s"}, &fakeSub{id: "s2"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Join{Sub: s2})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("kept")})
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); len(got) != 1 || got[0] != 1 {
			t.Fatalf("durable %v, want [1]", got)
		}
		s2.take()
		o.Send(context.Background(), Update{Sub: s, Batch: 2, Update: []byte("corrupt")})
		synctest.Wait()
		for _, sub := range []*fakeSub{s, s2} {
			if e := errorsOf(sub.take()); len(e) != 1 || e[0].Code != protocol.CodeDocCorrupt || !e[0].End {
				t.Fatalf("%s got %v, want one CodeDocCorrupt ending the document", sub.id, e)
			}
		}
		o.Send(context.Background(), Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 3, Update: []byte("more")})
		synctest.Wait()
		evs := s.take()
		if e := errorsOf(evs); len(e) != 2 || e[0].Code != protocol.CodeDocCorrupt || e[1].Code != protocol.CodeDocCorrupt {
			t.Fatalf("requests after: %v, want refused with CodeDocCorrupt", e)
		}
		res := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: res})
		if got := <-res; got.Err == nil {
			t.Fatalf("a read of the corrupt document answered %q", got.Text)
		}
		r.Release(o)
	})
}
