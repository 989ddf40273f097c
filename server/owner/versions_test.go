package owner

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/collabd/collabd/protocol"
)

// fakeVersions keeps versions in memory; with manual set a version stays
// pending until release.
type fakeVersions struct {
	mu      sync.Mutex // guards everything below
	manual  bool
	saved   []NewVersion
	waiting []*fakePending
}

func (f *fakeVersions) SubmitVersion(_ string, v NewVersion) (Pending, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saved = append(f.saved, v)
	p := &fakePending{done: make(chan struct{}), seq: uint64(len(f.saved))}
	if f.manual {
		f.waiting = append(f.waiting, p)
	} else {
		close(p.done)
	}
	return p, nil
}

func (f *fakeVersions) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.waiting {
		close(p.done)
	}
	f.waiting = nil
}

func (f *fakeVersions) list() []NewVersion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.saved)
}

// authoredSub is a session with a token subject.
type authoredSub struct {
	fakeSub
	subject string
}

func (s *authoredSub) Subject() string { return s.subject }

func versionRegistry(t *testing.T, vs *fakeVersions, quiet time.Duration, every int) *Registry {
	return testRegistry(t, &fakeStore{auto: true}, func(c *Config) {
		c.Versions, c.VersionQuiet, c.VersionEvery = vs, quiet, every
	})
}

// An automatic version comes after the quiet period without a change (the
// timer restarts with every change), names the authors, and is taken only
// when the document moved since the last one.
func TestVersionAfterQuietPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := versionRegistry(t, vs, time.Minute, 0)
		a := &authoredSub{fakeSub: fakeSub{id: "a"}, subject: "alice"}
		b := &authoredSub{fakeSub: fakeSub{id: "b"}, subject: "bob"}
		o := send(t, r, "d", Join{Sub: a})
		o.Send(context.Background(), Join{Sub: b})
		o.Send(context.Background(), Update{Sub: a, Batch: 1, Update: []byte("x")})
		time.Sleep(50 * time.Second)
		o.Send(context.Background(), Update{Sub: b, Batch: 1, Update: []byte("y")})
		time.Sleep(50 * time.Second) // 100 s after the first change, 50 after the last
		synctest.Wait()
		if got := vs.list(); len(got) != 0 {
			t.Fatalf("versions %+v before a quiet minute", got)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		got := vs.list()
		if len(got) != 1 || got[0].Version != 2 || got[0].Named || !slices.Equal(got[0].Authors, []string{"alice", "bob"}) || string(got[0].Snapshot) != "x\ny" {
			t.Fatalf("versions after a quiet minute = %+v, want one at version 2 by alice and bob", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := vs.list(); len(got) != 1 {
			t.Fatalf("%d versions without a change since the last", len(got))
		}
		o.Send(context.Background(), Leave{Sub: a})
		o.Send(context.Background(), Leave{Sub: b})
		r.Release(o)
	})
}

// Every VersionEvery changes make a version, quiet or not.
func TestVersionEveryN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := versionRegistry(t, vs, time.Hour, 3)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		for i := range 7 {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte{'a' + byte(i)}})
		}
		synctest.Wait()
		got := vs.list()
		if len(got) != 2 || got[0].Version != 3 || got[1].Version != 6 {
			t.Fatalf("versions %+v, want at 3 and 6", got)
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
	})
}

// A named version is answered once it is durable, with its sequence.
func TestNamedVersionAckedWhenDurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{manual: true}
		r := versionRegistry(t, vs, time.Hour, 0)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		reply := make(chan CheckpointResult, 1)
		o.Send(context.Background(), Checkpoint{Label: "v1", Author: "carol", Reply: reply})
		synctest.Wait()
		select {
		case res := <-reply:
			t.Fatalf("answered %+v before the version was durable", res)
		default:
		}
		vs.release()
		synctest.Wait()
		res := <-reply
		if res.Err != nil || res.Seq != 1 || res.Version != 1 {
			t.Fatalf("checkpoint = %+v, want seq 1 at version 1", res)
		}
		if got := vs.list(); len(got) != 1 || !got[0].Named || got[0].Label != "v1" || !slices.Equal(got[0].Authors, []string{"carol"}) {
			t.Fatalf("stored %+v", got)
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
	})
}

// A version that does not land (in cluster mode: the versions stream lost
// its quorum) holds no update's durable ack back; the document does not
// unload before it is answered.
func TestStuckVersionHoldsNoAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{manual: true}
		r := versionRegistry(t, vs, time.Hour, 2)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		for i := range 5 {
			o.Send(context.Background(), Update{Sub: s, Batch: uint64(i + 1), Update: []byte{'a' + byte(i)}})
		}
		synctest.Wait()
		if got := vs.list(); len(got) != 2 {
			t.Fatalf("%d versions submitted, want 2 (every 2 changes)", len(got))
		}
		if got := acks(s.take(), protocol.AckDurable); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
			t.Fatalf("durable acks %v with two versions in flight, want 1..5", got)
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
		time.Sleep(time.Hour) // past the idle unload
		synctest.Wait()
		select {
		case <-o.Done():
			t.Fatal("owner exited with versions in flight")
		default:
		}
		vs.release()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-o.Done():
		default:
			t.Fatal("owner did not unload once its versions landed")
		}
	})
}

// A document that unloads takes the automatic version it owes first, and
// a named version of a document never written is refused.
func TestVersionBeforeUnload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := testRegistry(t, &fakeStore{auto: true}, func(c *Config) {
			c.Versions, c.VersionQuiet, c.IdleUnload = vs, time.Hour, 30*time.Second
		})
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		select {
		case <-o.Done():
		default:
			t.Fatal("not unloaded")
		}
		if got := vs.list(); len(got) != 1 || got[0].Version != 1 {
			t.Fatalf("versions %+v, want one at version 1 before the unload", got)
		}
		// (the fake store holds one document: a new registry for a new one)
		r2 := versionRegistry(t, &fakeVersions{}, time.Hour, 0)
		reply := make(chan CheckpointResult, 1)
		o2 := send(t, r2, "empty", Checkpoint{Label: "x", Reply: reply})
		if res := <-reply; res.Err != ErrNoDocument {
			t.Fatalf("checkpoint of a new document = %+v, want ErrNoDocument", res)
		}
		r2.Release(o2)
	})
}

// DiffText's splices, applied in order, turn a into b; the common prefix
// and suffix are kept; a diff over budget is one replacement.
func TestDiffText(t *testing.T) {
	apply := func(s string, ss []Splice) string {
		r := []rune(s)
		for _, x := range ss {
			r = append(r[:x.Pos], append([]rune(x.Ins), r[x.Pos+x.Del:]...)...)
		}
		return string(r)
	}
	cases := [][2]string{
		{"", ""}, {"", "abc"}, {"abc", ""}, {"abc", "abc"}, {"kitten", "sitting"},
		{"héllo wörld", "hello world!"}, {"a😀b", "ab😀"}, {"the quick brown fox", "the slow brown dog"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	letters := []rune("ab😀é ")
	rs := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteRune(letters[rng.IntN(len(letters))])
		}
		return b.String()
	}
	for range 300 {
		cases = append(cases, [2]string{rs(rng.IntN(40)), rs(rng.IntN(40))})
	}
	for _, c := range cases {
		ss := DiffText(c[0], c[1], DiffBudget)
		if got := apply(c[0], ss); got != c[1] {
			t.Fatalf("DiffText(%q, %q) = %+v, applies to %q", c[0], c[1], ss, got)
		}
	}
	// Minimal on a simple case: one code point changed.
	if ss := DiffText("kitten", "sitten", DiffBudget); len(ss) != 1 || ss[0] != (Splice{Pos: 0, Del: 1, Ins: "s"}) {
		t.Fatalf("DiffText(kitten, sitten) = %+v", ss)
	}
	// Over budget: one replacement of the middle, still correct.
	a, b := "<"+rs(5000)+">", "<"+rs(5000)+">"
	ss := DiffText(a, b, 1000)
	if len(ss) != 1 || ss[0].Pos != 1 || apply(a, ss) != b {
		t.Fatalf("over budget: %d splices, first at %d", len(ss), ss[0].Pos)
	}
	if n := utf8.RuneCountInString(a); ss[0].Del > n-2 {
		t.Fatalf("replacement deletes %d of %d", ss[0].Del, n)
	}
}

// A restore first keeps the state it replaces as an automatic version, also
// right after a load (the owner cannot know whether the stored state was
// ever taken), and answers once its edits are durable.
func TestRestoreKeepsReplacedState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		st := &fakeStore{auto: true, log: []string{"a", "b"}, seq: 2}
		r := testRegistry(t, st, func(c *Config) { c.Versions, c.VersionQuiet = vs, time.Hour })
		reply := make(chan RestoreResult, 1)
		o := send(t, r, "d", Restore{Texts: map[string]string{"t": "abc"}, Reply: reply})
		res := <-reply
		if res.Err != nil || res.Applied == 0 {
			t.Fatalf("restore = %+v", res)
		}
		got := vs.list()
		if len(got) != 1 || string(got[0].Snapshot) != "a\nb" || got[0].Named {
			t.Fatalf("versions before the restore = %+v, want the loaded state", got)
		}
		r.Release(o)
	})
}

// Named versions are rate limited per document: a burst, then one per
// NamedVersionRate; time (synctest's) refills the bucket.
func TestNamedVersionRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vs := &fakeVersions{}
		r := versionRegistry(t, vs, time.Hour, 0)
		s := &fakeSub{id: "s"}
		o := send(t, r, "d", Join{Sub: s})
		o.Send(context.Background(), Update{Sub: s, Batch: 1, Update: []byte("a")})
		ask := func() error {
			reply := make(chan CheckpointResult, 1)
			o.Send(context.Background(), Checkpoint{Label: "x", Reply: reply})
			return (<-reply).Err
		}
		for i := range NamedVersionBurst {
			if err := ask(); err != nil {
				t.Fatalf("named version %d: %v", i, err)
			}
		}
		var ref *Refused
		if err := ask(); !errors.As(err, &ref) || ref.Code != protocol.CodeRateLimited {
			t.Fatalf("past the burst: %v, want rate limited", err)
		}
		time.Sleep(time.Duration(float64(time.Second) / NamedVersionRate))
		if err := ask(); err != nil {
			t.Fatalf("after the refill: %v", err)
		}
		o.Send(context.Background(), Leave{Sub: s})
		r.Release(o)
	})
}

// structEngine is a fakeEngine with a structured root "m" it restores
// itself (a RootRestorer, as a Yjs document's maps and fragments are).
type structEngine struct {
	*fakeEngine
	restored []string // roots RestoreRoot was asked for
}

func (e *structEngine) StructuredRoots(from Engine) []string {
	if _, ok := from.(*structEngine); !ok {
		return nil
	}
	return []string{"m"}
}

func (e *structEngine) RestoreRoot(root string, from Engine) ([]byte, []Change, error) {
	e.restored = append(e.restored, root)
	return []byte("struct:" + root), nil, nil
}

// Version counts the restores too (the text of "t" holds only its ops).
func (e *structEngine) Version() uint64 { return e.fakeEngine.Version() + uint64(len(e.restored)) }

// A RootRestorer's structured roots are restored with RestoreRoot from the
// version the Restore carries, the text roots with text edits; every update
// goes to the store and the subscribers, and the answer comes once durable.
func TestRestoreStructuredRoots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{log: []string{"a", "b"}, seq: 2}
		var eng *structEngine
		r := testRegistry(t, st, func(c *Config) {
			c.NewEngine = func(kind Kind, snap []byte) (Engine, error) {
				e, err := newFakeEngine(kind, snap)
				eng = &structEngine{fakeEngine: e.(*fakeEngine)}
				return eng, err
			}
		})
		from, _ := newFakeEngine(KindNative, nil)
		reply := make(chan RestoreResult, 1)
		o := send(t, r, "d", Restore{Texts: map[string]string{"t": "abx"}, From: &structEngine{fakeEngine: from.(*fakeEngine)}, Reply: reply})
		synctest.Wait()
		select {
		case res := <-reply:
			t.Fatalf("answered before the edits were durable: %+v", res)
		default:
		}
		st.mu.Lock()
		queued := slices.Clone(st.queued)
		n := len(st.waiting)
		st.mu.Unlock()
		if !slices.Contains(queued, "struct:m") || !slices.Contains(queued, "x") {
			t.Fatalf("stored %q, want the text edit and the structured root's update", queued)
		}
		for i := range n {
			st.complete(i)
		}
		res := <-reply
		if res.Err != nil || res.Applied != 2 {
			t.Fatalf("restore = %+v, want 2 applied (one text edit, one structured root)", res)
		}
		if !slices.Equal(eng.restored, []string{"m"}) {
			t.Fatalf("RestoreRoot asked for %q, want [m]", eng.restored)
		}
		// without a version engine (texts only) nothing is restored structurally
		reply2 := make(chan RestoreResult, 1)
		if !o.Send(context.Background(), Restore{Texts: map[string]string{"t": eng.text()}, Reply: reply2}) {
			t.Fatal("owner gone")
		}
		synctest.Wait()
		if res := <-reply2; res.Err != nil || res.Applied != 0 || len(eng.restored) != 1 {
			t.Fatalf("texts-only restore = %+v, RestoreRoot calls %q", res, eng.restored)
		}
		r.Release(o)
	})
}
