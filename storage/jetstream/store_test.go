package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// newStore opens a Store (one replica) on nc, closed by t.Cleanup.
func newStore(t *testing.T, nc *nats.Conn, opts jetstream.Options) *jetstream.Store {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := jetstream.New(ctx, nc, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx) // the test may have closed it already
	})
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wait waits for a Pending with a ceiling and returns its result.
func wait(t *testing.T, p *jetstream.Pending) (uint64, error) {
	t.Helper()
	select {
	case <-p.Done():
		return p.Result()
	case <-time.After(20 * time.Second):
		t.Fatal("write not completed within 20s")
		return 0, nil
	}
}

func submit(t *testing.T, s *jetstream.Store, doc, update string) uint64 {
	t.Helper()
	p, err := s.Submit(doc, []byte(update))
	if err != nil {
		t.Fatalf("Submit(%q, %q): %v", doc, update, err)
	}
	seq, err := wait(t, p)
	if err != nil {
		t.Fatalf("Submit(%q, %q) result: %v", doc, update, err)
	}
	return seq
}

func tail(st jetstream.Stored) string {
	var s []string
	for _, e := range st.Tail {
		s = append(s, string(e.Data))
	}
	return strings.Join(s, ",")
}

// TestConformance: the life of a document: open, append, load, compact,
// reload from another Store instance, delete.
func TestConformance(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{})
	ctx := ctxT(t)
	const doc = "notes/a.b c*>"

	if _, err := s.Load(ctx, doc); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatalf("Load(new) = %v, want ErrNotFound", err)
	}
	if _, err := s.Submit(doc, []byte("x")); !errors.Is(err, jetstream.ErrNotOpen) {
		t.Fatalf("Submit before Open = %v, want ErrNotOpen", err)
	}
	st, err := s.Open(ctx, doc, 1)
	if !errors.Is(err, jetstream.ErrNotFound) || st.LastSeq == 0 {
		t.Fatalf("Open(new) = %+v, %v; want ErrNotFound with the fence's sequence", st, err)
	}
	fence := st.LastSeq
	s1, s2, s3 := submit(t, s, doc, "u1"), submit(t, s, doc, "u2"), submit(t, s, doc, "u3")
	if !(fence < s1 && s1 < s2 && s2 < s3) {
		t.Fatalf("sequences %d %d %d %d not increasing", fence, s1, s2, s3)
	}
	st, err = s.Load(ctx, doc)
	if err != nil || tail(st) != "u1,u2,u3" || st.Snapshot != nil || st.LastSeq != s3 {
		t.Fatalf("Load = %q snap %q last %d, %v; want u1,u2,u3 no snapshot last %d", tail(st), st.Snapshot, st.LastSeq, err, s3)
	}

	if err := s.Compact(ctx, doc, []byte("S12"), s2); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	st, err = s.Load(ctx, doc)
	if err != nil || tail(st) != "u3" || string(st.Snapshot) != "S12" {
		t.Fatalf("Load after Compact = %q snap %q, %v; want u3, S12", tail(st), st.Snapshot, err)
	}
	s4 := submit(t, s, doc, "u4")
	if err := s.Compact(ctx, doc, []byte("S1234"), s4); err != nil {
		t.Fatalf("Compact 2: %v", err)
	}
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, "collabd_snapshots")
	if err != nil {
		t.Fatal(err)
	}
	if infos, err := obs.List(ctx); err != nil || len(infos) != 1 {
		t.Errorf("snapshot objects after two compactions: %d, %v; want 1 (the replaced one deleted)", len(infos), err)
	}
	str, err := js.Stream(ctx, "collabd_ops")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := str.Info(ctx, njs.WithSubjectFilter(s.Subject(doc))); err != nil || info.State.Msgs != 1 {
		t.Errorf("records after compaction through the last: %+v, %v; want the snapshot record only", info.State, err)
	}
	submit(t, s, doc, "u5")

	// Another Store (a restarted node, or the next owner) sees it all.
	s2nd := newStore(t, nc, jetstream.Options{})
	st, err = s2nd.Open(ctx, doc, 2)
	if err != nil || tail(st) != "u5" || string(st.Snapshot) != "S1234" {
		t.Fatalf("Open on a second Store = %q snap %q, %v; want u5, S1234", tail(st), st.Snapshot, err)
	}
	submit(t, s2nd, doc, "u6")

	// The first Store was fenced off by the second's Open.
	p, err := s.Submit(doc, []byte("stale"))
	if err == nil {
		_, err = wait(t, p)
	}
	if !errors.Is(err, jetstream.ErrFenced) {
		t.Fatalf("Submit by the deposed writer = %v, want ErrFenced", err)
	}

	p, err = s2nd.Delete(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, p); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s2nd.Load(ctx, doc); !errors.Is(err, jetstream.ErrDeleted) {
		t.Fatalf("Load after Delete = %v, want ErrDeleted", err)
	}
	if _, err := s2nd.Submit(doc, []byte("x")); !errors.Is(err, jetstream.ErrDeleted) {
		t.Fatalf("Submit after Delete = %v, want ErrDeleted", err)
	}
	if _, err := s.Open(ctx, doc, 3); !errors.Is(err, jetstream.ErrDeleted) {
		t.Fatalf("Open after Delete = %v, want ErrDeleted", err)
	}

	// Release forgets a writer.
	if _, err := s2nd.Open(ctx, "other", 2); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	s2nd.Release("other")
	if _, err := s2nd.Submit("other", []byte("x")); !errors.Is(err, jetstream.ErrNotOpen) {
		t.Errorf("Submit after Release = %v, want ErrNotOpen", err)
	}
}

// TestDocIDs: any bytes make a valid, distinct subject.
func TestDocIDs(t *testing.T) {
	c := natstest.Single(t)
	s := newStore(t, c.Connect(), jetstream.Options{})
	ctx := ctxT(t)
	ids := []string{".", "*", ">", " ", "a/b", "a.b", "a b", "\xff\x00", "é", strings.Repeat("z", jetstream.MaxIDBytes), "$JS.API", "a.*.>"}
	for i, id := range ids {
		if _, err := s.Open(ctx, id, 1); !errors.Is(err, jetstream.ErrNotFound) {
			t.Fatalf("Open(%q) = %v, want ErrNotFound", id, err)
		}
		submit(t, s, id, fmt.Sprint(i))
	}
	for i, id := range ids {
		st, err := s.Load(ctx, id)
		if err != nil || tail(st) != fmt.Sprint(i) {
			t.Errorf("Load(%q) = %q, %v; want %d", id, tail(st), err, i)
		}
	}
	for _, id := range []string{"", strings.Repeat("z", jetstream.MaxIDBytes+1)} {
		if _, err := s.Open(ctx, id, 1); err == nil {
			t.Errorf("Open(id of %d bytes) succeeded", len(id))
		}
	}
}

// TestGrouping: updates submitted while a publish is in flight go out
// together, acked in submission order.
func TestGrouping(t *testing.T) {
	c := natstest.Single(t)
	s := newStore(t, c.Connect(), jetstream.Options{})
	ctx := ctxT(t)
	if _, err := s.Open(ctx, "g", 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	const n = 500
	ps := make([]*jetstream.Pending, n)
	for i := range ps {
		var err error
		if ps[i], err = s.Submit("g", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var prev uint64
	records := 0
	for i, p := range ps {
		seq, err := wait(t, p)
		if err != nil || seq < prev {
			t.Fatalf("update %d: seq %d (prev %d), %v", i, seq, prev, err)
		}
		if seq != prev {
			records++
		}
		prev = seq
	}
	st, err := s.Load(ctx, "g")
	if err != nil || len(st.Tail) != n {
		t.Fatalf("Load = %d updates, %v; want %d", len(st.Tail), err, n)
	}
	for i, e := range st.Tail {
		if string(e.Data) != fmt.Sprint(i) {
			t.Fatalf("update %d = %q", i, e.Data)
		}
	}
	t.Logf("%d updates in %d records", n, records)
	if records == n {
		t.Errorf("no grouping: %d records for %d updates", records, n)
	}
}

// TestBusy: full queues refuse at once (ErrBusy), never wait.
func TestBusy(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{MaxActiveDocs: 1, MaxQueueBytes: 100, WriteTimeout: time.Second})
	ctx := ctxT(t)
	for _, d := range []string{"a", "b"} {
		if _, err := s.Open(ctx, d, 1); !errors.Is(err, jetstream.ErrNotFound) {
			t.Fatal(err)
		}
	}
	c.Kill(0) // publishes now wait for their timeout
	pa, err := s.Submit("a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Submit("b", []byte("1")); !errors.Is(err, jetstream.ErrBusy) {
		t.Errorf("Submit on a second document with MaxActiveDocs 1 = %v, want ErrBusy", err)
	}
	if _, err := s.Submit("a", make([]byte, 100)); !errors.Is(err, jetstream.ErrBusy) {
		t.Errorf("Submit past MaxQueueBytes = %v, want ErrBusy", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusals took %v", d)
	}
	if _, err := wait(t, pa); !errors.Is(err, jetstream.ErrUnavailable) {
		t.Errorf("publish with the server down = %v, want ErrUnavailable", err)
	}
}

// TestCorrupt: a record that does not decode refuses the document.
func TestCorrupt(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{MaxDocBytes: 1000})
	ctx := ctxT(t)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Subject("bad"), []byte{1, 1, 0xff}); err != nil {
		t.Fatal(err)
	}
	var de *jetstream.DecodeError
	if _, err := s.Load(ctx, "bad"); !errors.Is(err, jetstream.ErrCorrupt) || !errors.As(err, &de) {
		t.Errorf("Load(corrupt) = %v, want ErrCorrupt with a DecodeError", err)
	}
	if _, err := s.Open(ctx, "bad", 1); !errors.Is(err, jetstream.ErrCorrupt) {
		t.Errorf("Open(corrupt) = %v, want ErrCorrupt", err)
	}

	// Past MaxDocBytes: refused too.
	if _, err := s.Open(ctx, "big", 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	for range 3 {
		p, err := s.Submit("big", make([]byte, 400))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Load(ctx, "big"); !errors.Is(err, jetstream.ErrTooLarge) {
		t.Errorf("Load past MaxDocBytes = %v, want ErrTooLarge", err)
	}
}

// TestFencing: two writers on one document; once the second has opened
// it, the first cannot append, and nothing it submitted after that is in
// the log. Every update acked to either writer is.
func TestFencing(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	a := newStore(t, nc, jetstream.Options{})
	b := newStore(t, nc, jetstream.Options{})
	ctx := ctxT(t)
	const doc = "contended"
	if _, err := a.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	submit(t, a, doc, "a0")

	// a keeps submitting while b takes over.
	var mu sync.Mutex
	acked := map[string]uint64{"a0": 0}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := fmt.Sprintf("a%d", i)
			p, err := a.Submit(doc, []byte(u))
			if err != nil {
				return // fenced
			}
			<-p.Done()
			if seq, err := p.Result(); err == nil {
				mu.Lock()
				acked[u] = seq
				mu.Unlock()
			} else if errors.Is(err, jetstream.ErrFenced) {
				return
			}
		}
	}()
	st, err := b.Open(ctx, doc, 2)
	if err != nil {
		t.Fatalf("Open by the second writer: %v", err)
	}
	fenceSeq := st.LastSeq
	submit(t, b, doc, "b1")
	close(stop)
	wg.Wait()

	if _, err := a.Submit(doc, []byte("late")); !errors.Is(err, jetstream.ErrFenced) {
		p, _ := a.Submit(doc, []byte("late"))
		if p != nil {
			_, err = wait(t, p)
		}
		if !errors.Is(err, jetstream.ErrFenced) {
			t.Fatalf("Submit by the deposed writer = %v, want ErrFenced", err)
		}
	}
	if err := a.Compact(ctx, doc, []byte("stale snapshot"), fenceSeq); !errors.Is(err, jetstream.ErrFenced) {
		t.Errorf("Compact by the deposed writer = %v, want ErrFenced", err)
	}
	if _, err := a.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrFenced) {
		t.Errorf("Open at an older epoch = %v, want ErrFenced", err)
	}

	st, err = b.Load(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[string]uint64{}
	for _, e := range st.Tail {
		inLog[string(e.Data)] = e.Seq
	}
	for u, seq := range acked {
		if _, ok := inLog[u]; !ok {
			t.Errorf("acked update %s (seq %d) is not in the log", u, seq)
		}
	}
	for u, seq := range inLog {
		if strings.HasPrefix(u, "a") && seq > fenceSeq {
			t.Errorf("update %s of the deposed writer is in the log after the fence (%d > %d)", u, seq, fenceSeq)
		}
	}
	if _, ok := inLog["b1"]; !ok || inLog["late"] != 0 {
		t.Errorf("log = %v: want b1 and not late", inLog)
	}
	t.Logf("the deposed writer had %d updates acked", len(acked))
}

// TestLargeSnapshot: a snapshot larger than the object store's chunks and
// than a record round-trips; one past MaxSnapshotBytes is refused.
func TestLargeSnapshot(t *testing.T) {
	c := natstest.Single(t)
	s := newStore(t, c.Connect(), jetstream.Options{MaxSnapshotBytes: 3 << 20})
	ctx := ctxT(t)
	if _, err := s.Open(ctx, "big", 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	seq := submit(t, s, "big", "u")
	snap := make([]byte, 2<<20+17)
	for i := range snap {
		snap[i] = byte(i * 7)
	}
	if err := s.Compact(ctx, "big", snap, seq); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "big")
	if err != nil || string(st.Snapshot) != string(snap) || len(st.Tail) != 0 {
		t.Fatalf("Load = %d snapshot bytes, %d updates, %v", len(st.Snapshot), len(st.Tail), err)
	}
	if err := s.Compact(ctx, "big", make([]byte, 3<<20+1), seq); !errors.Is(err, jetstream.ErrTooLarge) {
		t.Errorf("Compact past MaxSnapshotBytes = %v, want ErrTooLarge", err)
	}
	// A full 1 MiB update fits a record (natsembed's 8 MiB payloads); one
	// past the payload does not.
	p, err := s.Submit("big", make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, p); err != nil {
		t.Fatalf("a 1 MiB update: %v", err)
	}
	if _, err := s.Submit("big", make([]byte, 8<<20)); !errors.Is(err, jetstream.ErrTooLarge) {
		t.Errorf("Submit of an update past a record = %v, want ErrTooLarge", err)
	}
}

// TestMissingSnapshot: a snapshot record whose object is gone refuses the
// document (ErrCorrupt), never loads it without its snapshot.
func TestMissingSnapshot(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	s := newStore(t, nc, jetstream.Options{})
	ctx := ctxT(t)
	if _, err := s.Open(ctx, "d", 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	seq := submit(t, s, "d", "u")
	if err := s.Compact(ctx, "d", []byte("snap"), seq); err != nil {
		t.Fatal(err)
	}
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, "collabd_snapshots")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if err != nil || len(infos) != 1 {
		t.Fatalf("snapshot objects: %d, %v; want 1", len(infos), err)
	}
	if err := obs.Delete(ctx, infos[0].Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "d"); !errors.Is(err, jetstream.ErrCorrupt) {
		t.Errorf("Load with the snapshot gone = %v, want ErrCorrupt", err)
	}
	if _, err := s.Open(ctx, "d", 2); !errors.Is(err, jetstream.ErrCorrupt) {
		t.Errorf("Open with the snapshot gone = %v, want ErrCorrupt", err)
	}
}
