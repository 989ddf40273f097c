package cluster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
)

// listEngine is an owner.Engine whose ops are strings appended to the text
// of root "t"; an update is one or more ops joined by NUL. Enough to run
// the real owner on the replicated store.
type listEngine struct {
	ops  []string
	seen map[string]bool
}

func newListEngine(_ owner.Kind, snapshot []byte) (owner.Engine, error) {
	e := &listEngine{seen: map[string]bool{}}
	if len(snapshot) > 0 {
		for _, op := range strings.Split(string(snapshot), "\x00") {
			e.push(op)
		}
	}
	return e, nil
}

func (e *listEngine) push(op string) owner.Change {
	c := owner.Change{Root: "t", Pos: len(e.text()), Ins: op}
	e.ops = append(e.ops, op)
	e.seen[op] = true
	return c
}

func (e *listEngine) text() string    { return strings.Join(e.ops, "") }
func (e *listEngine) Version() uint64 { return uint64(len(e.ops)) }
func (e *listEngine) Pending() int    { return 0 }

func (e *listEngine) Apply(update []byte, _ owner.Author) (owner.Applied, error) {
	var res owner.Applied
	for _, op := range strings.Split(string(update), "\x00") {
		if op == "" {
			return owner.Applied{}, owner.ErrInvalid
		}
		if !e.seen[op] {
			res.Changes = append(res.Changes, e.push(op))
			res.New, res.Visible = true, true
		}
	}
	return res, nil
}

func (e *listEngine) StateVector() []byte { return []byte(strconv.Itoa(len(e.ops))) }
func (e *listEngine) Diff(sv []byte) ([]byte, error) {
	n, _ := strconv.Atoi(string(sv))
	return []byte(strings.Join(e.ops[min(n, len(e.ops)):], "\x00")), nil
}
func (e *listEngine) PendingUpdate() []byte                                { return nil }
func (e *listEngine) Snapshot() []byte                                     { return []byte(strings.Join(e.ops, "\x00")) }
func (e *listEngine) Roots() []string                                      { return []string{"t"} }
func (e *listEngine) Clock() map[string]uint64                             { return map[string]uint64{"list": uint64(len(e.ops))} }
func (e *listEngine) ResolveCursor(string, []byte) int                     { return -1 }
func (e *listEngine) Split(u []byte) [][]byte                              { return [][]byte{u} }
func (e *listEngine) Merge(owner.Engine) ([][]byte, []owner.Change, error) { return nil, nil, nil }

func (e *listEngine) Text(root string) (string, bool) {
	if root != "t" {
		return "", false
	}
	return e.text(), true
}

func (e *listEngine) Edit(_ string, edits []owner.Prim) ([]byte, []owner.Change, error) {
	var ins strings.Builder
	for _, p := range edits {
		ins.WriteString(p.Ins)
	}
	op := ins.String()
	if op == "" || e.seen[op] {
		return nil, nil, nil
	}
	return []byte(op), []owner.Change{e.push(op)}, nil
}

func registry(t *testing.T, store owner.Store) *owner.Registry {
	t.Helper()
	r := owner.NewRegistry(owner.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store, NewEngine: newListEngine,
		IdleUnload: time.Minute, CompactEntries: 3, PresenceInterval: 50 * time.Millisecond,
		PresenceTTL: 30 * time.Second, ChangeLogEntries: 100, ChangeLogBytes: 1 << 20,
		MaxReplicaBytes: 1 << 30, MaxColdJoinBytes: 1 << 20,
	}, owner.RegistryLimits{MaxDocs: 10, MaxBytes: 1 << 30, EvictWait: time.Second})
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // the deposed owner's shutdown may report its refusal
	return r
}

// edit sends an append to the document's owner and waits for its durable
// reply.
func edit(t *testing.T, r *owner.Registry, doc, ins string) error {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	o, err := r.Acquire(ctx, doc)
	if err != nil {
		return err
	}
	defer r.Release(o)
	reply := make(chan owner.EditResult, 1)
	if !o.Send(ctx, owner.Edit{Root: "t", Edits: []owner.Splice{{Ins: ins}}, Reply: reply}) {
		return errors.New("owner gone")
	}
	select {
	case res := <-reply:
		return res.Err
	case <-ctx.Done():
		t.Fatalf("edit %q: no reply", ins)
		return nil
	}
}

func text(t *testing.T, r *owner.Registry, doc string) (string, error) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	o, err := r.Acquire(ctx, doc)
	if err != nil {
		return "", err
	}
	defer r.Release(o)
	reply := make(chan owner.ReadResult, 1)
	if !o.Send(ctx, owner.Read{Root: "t", What: owner.ReadText, Reply: reply}) {
		return "", errors.New("owner gone")
	}
	select {
	case res := <-reply:
		return res.Text, res.Err
	case <-ctx.Done():
		t.Fatal("read: no reply")
		return "", nil
	}
}

// TestOwnerOnCluster runs the real document owner on the replicated
// store: edits acked durable (with compactions on the way) survive a
// takeover by another node, and the deposed owner's next edit fails and is
// nowhere in the log.
func TestOwnerOnCluster(t *testing.T) {
	c := natstest.Single(t)
	renew := make(chan time.Time)
	a := newNode(t, c.Connect(), cluster.LeaseOptions{Node: "a", TTL: time.Second, Renew: renew})
	b := newNode(t, c.Connect(), cluster.LeaseOptions{Node: "b", TTL: time.Second})
	ctx := ctxT(t, 30*time.Second)
	const doc = "owned"

	// a's renewals run while it is "alive".
	pause := make(chan struct{})
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-pause:
				return
			case now := <-tk.C:
				select {
				case renew <- now:
				case <-pause:
					return
				}
			}
		}
	}()
	la, err := a.leases.Acquire(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	ra := registry(t, a.store)
	var want string
	for i := range 7 {
		op := "a" + strconv.Itoa(i) + "."
		if err := edit(t, ra, doc, op); err != nil {
			t.Fatalf("edit %s on a: %v", op, err)
		}
		want += op
	}

	// a pauses: its lease expires and b takes the document over.
	close(pause)
	<-ticking
	if err := b.leases.AwaitFree(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := b.leases.Acquire(ctx, doc); err != nil {
		t.Fatal(err)
	}
	rb := registry(t, b.store)
	if got, err := text(t, rb, doc); err != nil || got != want {
		t.Fatalf("b reads %q, %v; want %q", got, err, want)
	}
	if err := edit(t, rb, doc, "b0."); err != nil {
		t.Fatalf("edit on b: %v", err)
	}
	want += "b0."

	// a resumes, unaware: its edit is refused.
	if err := edit(t, ra, doc, "late."); err == nil {
		t.Fatal("the deposed owner's edit was acked")
	}
	renew <- time.Now()
	waitClosed(t, la.Lost(), "deposed owner's lease")

	if err := edit(t, rb, doc, "b1."); err != nil {
		t.Fatalf("edit on b: %v", err)
	}
	want += "b1."
	if got, err := text(t, rb, doc); err != nil || got != want {
		t.Errorf("b reads %q, %v; want %q", got, err, want)
	}
	st, err := b.js.Load(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newListEngine(owner.KindNative, st.Snapshot)
	for _, u := range st.Tail {
		if _, err := e.Apply(u.Data, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := e.Text("t"); got != want {
		t.Errorf("the log replays to %q, want %q", got, want)
	}
	if st.Snapshot == nil {
		t.Error("no compaction happened (CompactEntries 3)")
	}
}
