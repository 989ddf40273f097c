package owner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/protocol"
)

// fakeEngine is a replica whose ops are strings: an update is one op
// (appended to the text of root "t"), except:
//   - "panic": Apply panics;
//   - "bad": Apply fails (ErrInvalid);
//   - "corrupt": Apply finds the stored state corrupt (ErrCorrupt);
//   - "wait:X": op X waits in the pending buffer until an update "release".
type fakeEngine struct {
	kind    Kind
	ops     []string
	pending []string
}

func newFakeEngine(kind Kind, snapshot []byte) (Engine, error) {
	e := &fakeEngine{kind: kind}
	if len(snapshot) > 0 {
		e.ops = strings.Split(string(snapshot), "\n")
	}
	return e, nil
}

func (e *fakeEngine) Version() uint64 { return uint64(len(e.ops)) }
func (e *fakeEngine) Pending() int    { return len(e.pending) }

func (e *fakeEngine) Apply(update []byte, author Author) (Applied, error) {
	s := string(update)
	if author != nil {
		if err := author.Admit([]uint64{1}, 1, len(s)); err != nil {
			return Applied{}, err
		}
	}
	switch {
	case s == "panic":
		panic("fake engine: injected panic")
	case s == "bad":
		return Applied{}, fmt.Errorf("%w: bad", ErrInvalid)
	case s == "corrupt":
		return Applied{}, fmt.Errorf("%w: structure failed its check", ErrCorrupt)
	case strings.HasPrefix(s, "wait:"):
		if op := strings.TrimPrefix(s, "wait:"); !slices.Contains(e.pending, op) {
			e.pending = append(e.pending, op)
			return Applied{New: true}, nil
		}
		return Applied{}, nil
	case s == "release":
		var res Applied
		for _, p := range e.pending {
			res.Changes = append(res.Changes, e.push(p))
		}
		e.pending = nil
		res.Released, res.Fanout, res.New, res.Visible = true, []byte("released"), true, true
		return res, nil
	}
	return Applied{Changes: []Change{e.push(s)}, New: true, Visible: true}, nil
}

func (e *fakeEngine) push(op string) Change {
	c := Change{Root: "t", Pos: len(e.text()), Ins: op}
	e.ops = append(e.ops, op)
	return c
}

func (e *fakeEngine) text() string { return strings.Join(e.ops, "") }

func (e *fakeEngine) StateVector() []byte { return []byte(strconv.Itoa(len(e.ops))) }

func (e *fakeEngine) Diff(sv []byte) ([]byte, error) {
	n, _ := strconv.Atoi(string(sv))
	return []byte(strings.Join(e.ops[min(n, len(e.ops)):], "\n")), nil
}

func (e *fakeEngine) PendingUpdate() []byte            { return nil }
func (e *fakeEngine) Snapshot() []byte                 { return []byte(strings.Join(e.ops, "\n")) }
func (e *fakeEngine) Roots() []string                  { return []string{"t"} }
func (e *fakeEngine) Clock() map[string]uint64         { return map[string]uint64{"fake": uint64(len(e.ops))} }
func (e *fakeEngine) ResolveCursor(string, []byte) int { return -1 }
func (e *fakeEngine) Split(u []byte) [][]byte          { return [][]byte{u} }

func (e *fakeEngine) Text(root string) (string, bool) {
	if root != "t" {
		return "", false
	}
	return e.text(), true
}

func (e *fakeEngine) Edit(root string, edits []Prim) ([]byte, []Change, error) {
	var ins []string
	var changes []Change
	for _, p := range edits {
		ins = append(ins, p.Ins)
		changes = append(changes, e.push(p.Ins))
	}
	return []byte(strings.Join(ins, "")), changes, nil
}

func (e *fakeEngine) Merge(from Engine) ([][]byte, []Change, error) {
	var updates [][]byte
	var changes []Change
	for _, op := range from.(*fakeEngine).ops {
		updates = append(updates, []byte(op))
		changes = append(changes, e.push(op))
	}
	return updates, changes, nil
}

// fakePending completes when the test says so (or at once, in auto mode).
type fakePending struct {
	done chan struct{}
	seq  uint64
	err  error
}

func (p *fakePending) Done() <-chan struct{}   { return p.done }
func (p *fakePending) Result() (uint64, error) { <-p.done; return p.seq, p.err }

// fakeStore keeps one document's log in memory.
type fakeStore struct {
	mu        sync.Mutex // guards everything below
	auto      bool       // complete every write at once
	refuse    error      // Submit fails with it
	loadErr   error      // Load fails with it
	log       []string   // durable entries
	snapshot  []byte
	deleted   bool
	seq       uint64
	waiting   []*fakePending // submitted, not completed (manual mode)
	queued    []string       // their payloads
	compacted []uint64       // through of every Compact
}

func (s *fakeStore) Load(_ context.Context, doc string) (Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return Stored{}, s.loadErr
	}
	if s.deleted {
		return Stored{}, ErrDeleted
	}
	if s.snapshot == nil && len(s.log) == 0 {
		return Stored{}, ErrNotFound
	}
	var tail []Entry
	for i, e := range s.log {
		tail = append(tail, Entry{Seq: uint64(i + 1), Data: []byte(e)})
	}
	return Stored{Snapshot: s.snapshot, Tail: tail, LastSeq: s.seq}, nil
}

func (s *fakeStore) Submit(_ string, update []byte) (Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		return nil, s.refuse
	}
	p := &fakePending{done: make(chan struct{})}
	if s.auto {
		s.seq++
		s.log = append(s.log, string(update))
		p.seq = s.seq
		close(p.done)
		return p, nil
	}
	s.waiting = append(s.waiting, p)
	s.queued = append(s.queued, string(update))
	return p, nil
}

// complete makes the i-th waiting write durable (in any order: the owner
// must still ack in submission order).
func (s *fakeStore) complete(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.log = append(s.log, s.queued[i])
	s.waiting[i].seq = s.seq
	close(s.waiting[i].done)
}

func (s *fakeStore) Compact(_ context.Context, _ string, snap []byte, through uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = append(s.compacted, through)
	return nil
}

func (s *fakeStore) Delete(string) (Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = true
	p := &fakePending{done: make(chan struct{})}
	close(p.done)
	return p, nil
}

// fakeSub records what it is delivered. With slow set it refuses every
// delivery (a session that fell behind: closed); with behind set it drops
// soft deliveries only.
type fakeSub struct {
	id     string
	mu     sync.Mutex // guards the fields below
	events []Event
	slow   bool
	behind bool
	silent time.Time // non-zero: the peer showed no life since then
}

func (s *fakeSub) ID() string { return s.id }

func (s *fakeSub) Seen() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.silent.IsZero() {
		return s.silent
	}
	return time.Now()
}

func (s *fakeSub) Deliver(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slow {
		return false
	}
	s.events = append(s.events, ev)
	return true
}

func (s *fakeSub) DeliverSoft(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.behind || s.slow {
		return false
	}
	s.events = append(s.events, ev)
	return true
}

// take returns and clears what was delivered.
func (s *fakeSub) take() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}

// acks filters the acks of events with status st, as batch numbers.
func acks(evs []Event, st protocol.AckStatus) []uint64 {
	var out []uint64
	for _, e := range evs {
		if a, ok := e.(*AckEvent); ok && a.Status == st {
			out = append(out, a.Batch)
		}
	}
	return out
}

func errorsOf(evs []Event) []*ErrorEvent {
	var out []*ErrorEvent
	for _, e := range evs {
		if x, ok := e.(*ErrorEvent); ok {
			out = append(out, x)
		}
	}
	return out
}

func presenceOf(evs []Event) []*PresenceEvent {
	var out []*PresenceEvent
	for _, e := range evs {
		if x, ok := e.(*PresenceEvent); ok {
			out = append(out, x)
		}
	}
	return out
}

// countingMetrics counts panics.
type countingMetrics struct {
	noMetrics
	mu     sync.Mutex
	panics int
}

func (m *countingMetrics) Panic() {
	m.mu.Lock()
	m.panics++
	m.mu.Unlock()
}

// testRegistry is a registry over store with test defaults; it is shut down
// when the test ends.
func testRegistry(t *testing.T, store Store, edit func(*Config)) *Registry {
	t.Helper()
	cfg := Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store, NewEngine: newFakeEngine,
		IdleUnload: time.Minute, CompactEntries: 1000, PresenceInterval: 50 * time.Millisecond,
		PresenceTTL: 30 * time.Second, ChangeLogEntries: 100, ChangeLogBytes: 1 << 20,
		MaxReplicaBytes: 1 << 30, MaxColdJoinBytes: 1 << 20,
	}
	if edit != nil {
		edit(&cfg)
	}
	r := NewRegistry(cfg, RegistryLimits{MaxDocs: 100, MaxBytes: 1 << 30, EvictWait: time.Second})
	t.Cleanup(func() {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// send delivers m to the owner of doc (holding a reference for the test).
func send(t *testing.T, r *Registry, doc string, m Msg) *Owner {
	t.Helper()
	o, err := r.Acquire(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Send(context.Background(), m) {
		t.Fatal("owner gone")
	}
	return o
}
