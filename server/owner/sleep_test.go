package owner

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/collabd/collabd/protocol"
)

// A quiet document with a subscriber sleeps (no goroutine); a message
// wakes it, is handled in order, and it sleeps again once its commits have
// landed.
func TestOwnerSleepsAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		r := testRegistry(t, st, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		synctest.Wait()
		if !o.Asleep() || r.Sleeping() != 1 {
			t.Fatalf("after the join: asleep %v, sleeping %d; want a sleeping owner", o.Asleep(), r.Sleeping())
		}
		if got := ownerGoroutines(); got != 0 {
			t.Fatalf("%d goroutines running an owner with the owner asleep, want 0", got)
		}
		s.take()
		for i, u := range []string{"a", "b", "c"} {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte(u)})
		}
		synctest.Wait()
		if o.Asleep() {
			t.Fatal("asleep with three commits in flight")
		}
		if got := ownerGoroutines(); got != 1 {
			t.Fatalf("%d goroutines running an owner with three commits in flight, want 1", got)
		}
		if got := acks(s.take(), protocol.AckApplied); fmt.Sprint(got) != "[1 2 3]" {
			t.Fatalf("applied acks %v, want [1 2 3]", got)
		}
		st.complete(0)
		st.complete(1)
		st.complete(2)
		synctest.Wait()
		if got := acks(s.take(), protocol.AckDurable); fmt.Sprint(got) != "[1 2 3]" {
			t.Fatalf("durable acks %v, want [1 2 3]", got)
		}
		if !o.Asleep() {
			t.Fatal("awake after its commits landed")
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
		synctest.Wait()
		if o.Asleep() {
			t.Fatal("asleep without subscribers: it must stay awake to unload")
		}
		time.Sleep(2 * time.Minute) // IdleUnload is a minute
		synctest.Wait()
		select {
		case <-o.Done():
		default:
			t.Fatal("not unloaded after the idle timeout")
		}
	})
}

// A sleeping owner still expires presence: its alarm wakes it for the
// expiry pass, so a peer whose connection died leaves after the TTL.
func TestSleepingOwnerExpiresPresence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.PresenceTTL = 30 * time.Second })
		dead, obs := &fakeSub{id: "dead"}, &fakeSub{id: "obs"}
		o := send(t, r, "d", Join{Sub: dead})
		o.Send(context.Background(), Join{Sub: obs})
		synctest.Wait()
		dead.mu.Lock()
		dead.silent = time.Now()
		dead.mu.Unlock()
		obs.take()
		for range 4 { // 40 s in 10 s steps: asleep between the passes
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if !o.Asleep() {
				t.Fatalf("awake at %v with nothing to do", time.Now())
			}
		}
		var gone []string
		for _, p := range presenceOf(obs.take()) {
			gone = append(gone, p.Msg.Gone...)
		}
		if fmt.Sprint(gone) != "[dead]" {
			t.Fatalf("after the TTL: gone %v, want [dead]", gone)
		}
	})
}

// A document edited, then quiet, sleeps before its automatic version is
// due; the alarm wakes it to take the version.
func TestSleepingOwnerTakesQuietVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.Versions, c.VersionQuiet = vs, time.Minute })
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		synctest.Wait()
		if !o.Asleep() {
			t.Fatal("awake while only the version's quiet timer runs")
		}
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if n := len(vs.list()); n != 0 {
			t.Fatalf("%d versions before the quiet period ended", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if v := vs.list(); len(v) != 1 || v[0].Version != 1 {
			t.Fatalf("versions %+v, want one of version 1", v)
		}
		if !o.Asleep() {
			t.Fatal("awake after the version landed")
		}
	})
}

// Shutdown wakes sleeping owners: each takes the version it owes, and
// exits.
func TestShutdownWakesSleepingOwners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) { c.Versions, c.VersionQuiet = vs, time.Hour })
		var owners []*Owner
		for i := range 3 {
			s := &fakeSub{id: fmt.Sprint("s", i)}
			o := send(t, r, fmt.Sprint("d", i), Join{Sub: s})
			o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("x")})
			owners = append(owners, o)
		}
		synctest.Wait()
		if r.Sleeping() != 3 {
			t.Fatalf("%d owners asleep, want 3", r.Sleeping())
		}
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i, o := range owners {
			select {
			case <-o.Done():
			default:
				t.Fatalf("owner %d not done after Shutdown", i)
			}
		}
		if n := len(vs.list()); n != 3 {
			t.Fatalf("%d versions taken at shutdown, want 3", n)
		}
	})
}

// durableSub reports its durable acks on a channel (buffered: Deliver
// never blocks).
type durableSub struct {
	fakeSub
	durable chan uint64
}

func (s *durableSub) Deliver(ev Event) bool {
	if a, ok := ev.(*AckEvent); ok && a.Status == protocol.AckDurable {
		s.durable <- a.Batch
	}
	return true
}

// Many senders racing with an owner that keeps falling asleep: every
// message is handled once, each sender's in its order, and (under -race)
// never by two goroutines at once.
func TestSleepWakeRace(t *testing.T) {
	r := testRegistry(t, &fakeStore{auto: true}, nil)
	const senders, each = 8, 200
	o, err := r.Acquire(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release(o)
	subs := make([]*durableSub, senders)
	for i := range subs {
		subs[i] = &durableSub{fakeSub: fakeSub{id: fmt.Sprint("s", i)}, durable: make(chan uint64, each)}
		o.Send(context.Background(), Join{Sub: subs[i]})
	}
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() {
			for b := range each {
				if !o.Send(context.Background(), Update{Sub: s, Batch: uint64(b + 1), Update: fmt.Appendf(nil, "%d.%d", i, b)}) {
					t.Error("owner gone")
					return
				}
				if b%16 == 0 {
					runtime.Gosched() // let it fall asleep now and then
				}
			}
		})
	}
	wg.Wait()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for i, s := range subs {
		for want := uint64(1); want <= each; want++ {
			select {
			case got := <-s.durable:
				if got != want {
					t.Fatalf("sender %d: durable ack %d, want %d (out of order)", i, got, want)
				}
			case <-deadline.C:
				t.Fatalf("sender %d: durable acks stopped before %d of %d", i, want, each)
			}
		}
	}
}

// A document never written sleeps without a replica (a new, empty one is
// made when a message needs it): a read, a sync and a write after the
// sleep see the document as a fresh one would.
func TestBlankDocumentSleepsWithoutReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		synctest.Wait()
		blank := func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return o.asleep && o.blank && o.doc == nil
		}
		if !blank() {
			t.Fatal("a never-written document sleeps with its replica")
		}
		reply := make(chan ReadResult, 1)
		o.Send(context.Background(), Read{Root: "t", What: ReadText, Reply: reply})
		if res := <-reply; !errors.Is(res.Err, ErrNoDocument) {
			t.Fatalf("read of the blank document: %v, want ErrNoDocument", res.Err)
		}
		synctest.Wait()
		if !blank() {
			t.Fatal("a read made it keep its replica")
		}
		s.take()
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		o.Send(context.Background(), Sync{Sub: s, SV: []byte("0")})
		synctest.Wait()
		evs := s.take()
		if got := acks(evs, protocol.AckDurable); fmt.Sprint(got) != "[1]" {
			t.Fatalf("durable acks %v, want [1]", got)
		}
		var synced []string
		for _, e := range evs {
			if se, ok := e.(*SyncEvent); ok {
				synced = append(synced, string(se.Update))
			}
		}
		if fmt.Sprint(synced) != "[a]" {
			t.Fatalf("sync after the write: %q, want [a]", synced)
		}
		if o.mu.Lock(); !o.asleep || o.blank || o.doc == nil {
			o.mu.Unlock()
			t.Fatal("a written document must sleep with its replica")
		}
		o.mu.Unlock()
	})
}

// ownerGoroutines counts the goroutines of the process that are in an
// Owner's method. (runtime.NumGoroutine counts goroutines outside the
// test's bubble too: one of the testing package's, still exiting after an
// earlier test, made a before/after comparison fail now and then.)
func ownerGoroutines() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "owner.(*Owner).") {
			count++
		}
	}
	return count
}
