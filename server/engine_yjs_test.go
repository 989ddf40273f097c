package server

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// recSub records what an owner delivers.
type recSub struct {
	id string
	mu sync.Mutex
	ch chan owner.Event
}

func newRecSub(id string) *recSub { return &recSub{id: id, ch: make(chan owner.Event, 256)} }

func (r *recSub) ID() string                      { return r.id }
func (r *recSub) Seen() time.Time                 { return time.Now() }
func (r *recSub) Deliver(ev owner.Event) bool     { r.ch <- ev; return true }
func (r *recSub) DeliverSoft(ev owner.Event) bool { return true }

// next waits for the next event of type E.
func next[E owner.Event](t *testing.T, r *recSub) E {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.ch:
			if e, ok := ev.(E); ok {
				return e
			}
		case <-deadline:
			var zero E
			t.Fatalf("%s: no %T", r.id, zero)
			return zero
		}
	}
}

// The Yjs engine behind a real owner and the bbolt store: a client's
// updates (inserts, and a delete that moves no state vector) reach the
// other subscriber and are acked durable; a REST-style edit is made as the
// server's Yjs client; everything reloads from storage as it was.
func TestYjsEngineBehindTheOwner(t *testing.T) {
	store, err := storage.Open(filepath.Join(t.TempDir(), "c.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := bareServer(Config{})
	srv.agent = 0x1234
	newReg := func() *owner.Registry {
		return owner.NewRegistry(owner.Config{Logger: srv.cfg.Logger, Store: ownerStore{store}, NewEngine: srv.newEngine,
			IdleUnload: time.Minute, CompactEntries: 3, PresenceInterval: time.Millisecond, PresenceTTL: time.Minute,
			ChangeLogEntries: 100, ChangeLogBytes: 1 << 20, MaxReplicaBytes: 1 << 30, MaxColdJoinBytes: 1 << 20,
			MessageRate: 10, MessageBurst: 10}, owner.RegistryLimits{MaxDocs: 10, MaxBytes: 1 << 30, EvictWait: time.Second})
	}
	reg := newReg()
	ctx := context.Background()
	o, err := reg.Acquire(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := newRecSub("s1"), newRecSub("s2")
	o.Send(ctx, owner.Join{Sub: s1, Kind: owner.KindYjs})
	o.Send(ctx, owner.Join{Sub: s2, Kind: owner.KindYjs})
	next[*owner.SyncEvent](t, s1)
	next[*owner.SyncEvent](t, s2)

	lim := yjs.Limits{}
	a, b := yjs.New(lim), yjs.New(lim)
	ins, err := a.InsertText(1, "body", 0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	del, err := a.DeleteText(1, "body", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range [][]byte{ins, del} {
		o.Send(ctx, owner.Update{Sub: s1, Batch: uint64(i + 1), Update: u})
		ev := next[*owner.UpdateEvent](t, s2)
		for _, x := range ev.Updates {
			if _, err := b.Apply(x); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b.Text("body") != "ello" {
		t.Fatalf("the other subscriber has %q, want \"ello\" (the delete moved no state vector and still went out)", b.Text("body"))
	}
	for batch := uint64(1); batch <= 2; {
		if ack := next[*owner.AckEvent](t, s1); ack.Status == 2 && ack.Batch == batch {
			batch++
		}
	}
	// A server-side edit in code points (an emoji is 2 UTF-16 units).
	edit := make(chan owner.EditResult, 1)
	o.Send(ctx, owner.Edit{Root: "body", Edits: []owner.Splice{{Pos: 0, Ins: "😀 "}, {Pos: 6, Ins: "!"}}, Reply: edit})
	if r := <-edit; r.Err != nil {
		t.Fatal(r.Err)
	}
	// each subscriber's replica applies the server's update it was sent
	deliver := func(check func(*owner.UpdateEvent)) {
		t.Helper()
		for _, p := range []struct {
			sub *recSub
			doc *yjs.Doc
		}{{s1, a}, {s2, b}} {
			ev := next[*owner.UpdateEvent](t, p.sub)
			if check != nil {
				check(ev)
			}
			for _, x := range ev.Updates {
				if _, err := p.doc.Apply(x); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	deliver(nil)
	if a.Text("body") != "😀 ello!" || b.Text("body") != "😀 ello!" {
		t.Fatalf("after the server edit: %q / %q", a.Text("body"), b.Text("body"))
	}
	// An edit that changes nothing (a zero-length delete) is answered and
	// sends nothing: the next update anyone sees is the edit after it.
	o.Send(ctx, owner.Edit{Root: "body", Edits: []owner.Splice{{Pos: 1}}, Reply: edit})
	if r := <-edit; r.Err != nil {
		t.Fatal(r.Err)
	}
	o.Send(ctx, owner.Edit{Root: "body", Edits: []owner.Splice{{Pos: 6, Del: 1}}, Reply: edit})
	if r := <-edit; r.Err != nil {
		t.Fatal(r.Err)
	}
	deliver(func(ev *owner.UpdateEvent) {
		if len(ev.Changes) != 1 || ev.Changes[0].Del != 1 || ev.Changes[0].Pos != 6 {
			t.Fatalf("next update after a no-op edit: %+v", ev.Changes)
		}
	})
	if a.Text("body") != "😀 ello" || b.Text("body") != "😀 ello" {
		t.Fatalf("after the delete: %q / %q", a.Text("body"), b.Text("body"))
	}
	read := func(o *owner.Owner) string {
		res := make(chan owner.ReadResult, 1)
		o.Send(ctx, owner.Read{Root: "body", What: owner.ReadText, Reply: res})
		r := <-res
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Text
	}
	if got := read(o); got != "😀 ello" {
		t.Fatalf("owner reads %q", got)
	}
	reg.Release(o)
	if err := reg.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	reg = newReg()
	defer func() { _ = reg.Shutdown(ctx) }()
	o, err = reg.Acquire(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Release(o)
	if got := read(o); got != "😀 ello" {
		t.Fatalf("after a reload from storage: %q", got)
	}
	// A join from an empty state vector gets the whole document.
	s3 := newRecSub("s3")
	o.Send(ctx, owner.Join{Sub: s3, Kind: owner.KindYjs})
	c := yjs.New(lim)
	if _, err := c.Apply(next[*owner.SyncEvent](t, s3).Update); err != nil {
		t.Fatal(err)
	}
	if c.Text("body") != "😀 ello" {
		t.Fatalf("cold join: %q", c.Text("body"))
	}
}

// An update that goes pending (its dependency has not arrived) and is
// released by a later one reaches the other replicas: the releasing
// apply's fan-out carries both (found by the Yjs doors' convergence test:
// a provider's edit sent before its reconnect's sync step 2 went pending,
// and the others never got it).
func TestYjsEngineReleasedPendingFansOut(t *testing.T) {
	srv := bareServer(Config{})
	writer := yjs.New(yjs.Limits{})
	u1, err := writer.InsertText(5, "t", 0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	u2, err := writer.InsertText(5, "t", 5, " world") // depends on u1
	if err != nil {
		t.Fatal(err)
	}
	e, err := srv.newEngine(owner.KindYjs, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(u2, nil)
	if err != nil || res.Visible || e.Pending() == 0 {
		t.Fatalf("u2 before u1: %+v, %v, pending %d; want it pending", res, err, e.Pending())
	}
	res, err = e.Apply(u1, nil)
	if err != nil || !res.Released || res.Fanout == nil {
		t.Fatalf("u1 released u2: %+v, %v; want Released with a fan-out", res, err)
	}
	observer := yjs.New(yjs.Limits{})
	if _, err := observer.Apply(res.Fanout); err != nil {
		t.Fatal(err)
	}
	if got := observer.Text("t"); got != "hello world" {
		t.Fatalf("a replica that got the fan-out has %q, want %q", got, "hello world")
	}
	// Deletes waiting for their structs are released the same way.
	del, err := writer.DeleteText(5, "t", 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	writer2 := yjs.New(yjs.Limits{})
	_, _ = writer2.Apply(u1)
	_, _ = writer2.Apply(u2)
	e2, _ := srv.newEngine(owner.KindYjs, nil)
	if _, err := e2.Apply(u1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Apply(del, nil); err != nil { // deletes " world"'s neighbour range, part of it not there yet
		t.Fatal(err)
	}
	res, err = e2.Apply(u2, nil)
	if err != nil {
		t.Fatal(err)
	}
	fan := u2
	if res.Released {
		fan = res.Fanout
	}
	if _, err := writer2.Apply(fan); err != nil {
		t.Fatal(err)
	}
	obs := yjs.New(yjs.Limits{})
	_, _ = obs.Apply(u1)
	_, _ = obs.Apply(fan)
	want, _ := e2.Text("t")
	if got := obs.Text("t"); got != want {
		t.Fatalf("after a released delete a replica has %q, the server %q", got, want)
	}
}

// authorOf is an Author with a token subject.
type authorOf string

func (authorOf) Admit([]uint64, int, int) error { return nil }
func (a authorOf) Subject() string              { return string(a) }

// In auth mode a Yjs client id belongs to the subject that first wrote it:
// another user writing under it (or under the server's own id) is refused
// as forged and nothing applies; its own writer goes on, and development
// mode (no subjects) binds nothing.
func TestYjsEngineClientClaims(t *testing.T) {
	srv := bareServer(Config{})
	srv.agent = 0x77
	e, _ := srv.newEngine(owner.KindYjs, nil)
	alice, mallory := yjs.New(yjs.Limits{}), yjs.New(yjs.Limits{})
	a1, _ := alice.InsertText(10, "t", 0, "alice")
	if _, err := e.Apply(a1, authorOf("alice")); err != nil {
		t.Fatal(err)
	}
	_, _ = mallory.Apply(a1)
	forged, _ := mallory.InsertText(10, "t", 5, " (forged)") // alice's client id, next clock
	var ref *owner.Refused
	if _, err := e.Apply(forged, authorOf("mallory")); !errors.As(err, &ref) || ref.Code != protocol.CodeForgedAgent {
		t.Fatalf("structs under alice's client id from mallory: %v, want 4509", err)
	}
	if got, _ := e.Text("t"); got != "alice" {
		t.Fatalf("after a refused forgery the text is %q", got)
	}
	server, _ := mallory.InsertText(0x77, "t", 0, "x")
	if _, err := e.Apply(server, authorOf("mallory")); !errors.As(err, &ref) || ref.Code != protocol.CodeForgedAgent {
		t.Fatalf("structs under the server's client id: %v, want 4509", err)
	}
	a2, _ := alice.InsertText(10, "t", 5, "!")
	if _, err := e.Apply(a2, authorOf("alice")); err != nil {
		t.Fatalf("alice's next update: %v", err)
	}
	// A resend of alice's structs by someone else brings nothing new: admitted.
	if _, err := e.Apply(a1, authorOf("bob")); err != nil {
		t.Fatalf("a resend of known structs: %v", err)
	}
	dev, _ := srv.newEngine(owner.KindYjs, nil)
	if _, err := dev.Apply(a1, authorOf("")); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Apply(forged, authorOf("")); err != nil {
		t.Fatalf("development mode binds nothing: %v", err)
	}
}

// A struct stuck in the pending buffer (its dependency never comes) does
// not turn later updates into releases: their fan-out stays the update
// itself, not a diff carrying the document's whole delete set.
func TestYjsEngineStuckPendingFansOutUpdatesAsThey(t *testing.T) {
	srv := bareServer(Config{})
	e, _ := srv.newEngine(owner.KindYjs, nil)
	ghost := yjs.New(yjs.Limits{})
	g1, _ := ghost.InsertText(66, "t", 0, "never")
	g2, _ := ghost.InsertText(66, "t", 5, " sent") // depends on g1, which never arrives
	if _, err := e.Apply(g2, nil); err != nil || e.Pending() == 0 {
		t.Fatalf("g2 should wait: %v, pending %d", err, e.Pending())
	}
	_ = g1
	w := yjs.New(yjs.Limits{})
	for i := range 5 {
		u, _ := w.InsertText(7, "x", i, "a")
		res, err := e.Apply(u, nil)
		if err != nil || res.Released || !res.Visible {
			t.Fatalf("update %d with a stuck struct pending: %+v, %v; want a plain visible update", i, res, err)
		}
	}
}
