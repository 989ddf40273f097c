package trace

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
)

// Root is the name of the text root traces are replayed into.
const Root = "text"

// Result is what one replay measured.
type Result struct {
	Name          string
	Edits         int
	Local         time.Duration // local replay (concurrent: every agent's replica, merges included)
	Remote        time.Duration // applying the recorded updates one at a time to a fresh replica
	SnapshotBytes int
	Encode        time.Duration // snapshot encode
	Load          time.Duration // snapshot decode and read back the text
}

// Line is the stable one-line summary the trace command prints.
func (r Result) Line() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }
	return fmt.Sprintf("trace=%s edits=%d local_ms=%s remote_ms=%s snapshot_bytes=%d encode_ms=%s load_ms=%s ok",
		r.Name, r.Edits, ms(r.Local), ms(r.Remote), r.SnapshotBytes, ms(r.Encode), ms(r.Load))
}

// MismatchError is a failed check: which check and where the texts first differ.
type MismatchError struct {
	Trace string
	Check string
	Got   string
	Want  string
}

func (e *MismatchError) Error() string {
	g, w := []rune(e.Got), []rune(e.Want)
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	excerpt := func(r []rune) string {
		lo, hi := max(0, i-20), min(len(r), i+20)
		return fmt.Sprintf("%q", string(r[lo:hi]))
	}
	return fmt.Sprintf("%s: %s: text differs at code point %d (got length %d, want %d): got %s, want %s",
		e.Trace, e.Check, i, len(g), len(w), excerpt(g), excerpt(w))
}

func check(t *Trace, name, got string) error {
	if got != t.EndContent {
		return &MismatchError{Trace: t.Name, Check: name, Got: got, Want: t.EndContent}
	}
	return nil
}

// Run replays t through every check: local replay, remote apply of the
// recorded updates, snapshot round trip and (concurrent traces) replica
// convergence. It returns the first failure.
func Run(t *Trace) (Result, error) {
	res := Result{Name: t.Name, Edits: t.Edits()}
	var (
		updates [][]byte
		final   *crdt.Doc
		err     error
	)
	if t.Concurrent() {
		final, updates, res.Local, err = replayConcurrent(t)
	} else {
		final, updates, res.Local, err = replaySequential(t)
	}
	if err != nil {
		return res, err
	}

	remote := crdt.NewDoc(crdt.Options{Agent: 1 << 40})
	start := time.Now()
	for i, u := range updates {
		if err := remote.ApplyUpdate(u); err != nil {
			return res, fmt.Errorf("%s: remote apply of update %d: %w", t.Name, i, err)
		}
	}
	res.Remote = time.Since(start)
	if err := check(t, "remote apply", remote.Text(Root).String()); err != nil {
		return res, err
	}
	if remote.Pending() != 0 {
		return res, fmt.Errorf("%s: remote apply left %d ops pending", t.Name, remote.Pending())
	}
	if !remote.StateVector().Equal(final.StateVector()) {
		return res, fmt.Errorf("%s: remote state vector %v differs from the replay's %v", t.Name, remote.StateVector(), final.StateVector())
	}

	start = time.Now()
	snap := final.EncodeSnapshot()
	res.Encode = time.Since(start)
	res.SnapshotBytes = len(snap)
	start = time.Now()
	loaded, err := crdt.LoadSnapshot(snap, crdt.Options{})
	if err != nil {
		return res, fmt.Errorf("%s: load snapshot: %w", t.Name, err)
	}
	text := loaded.Text(Root).String()
	res.Load = time.Since(start)
	if err := check(t, "snapshot round trip", text); err != nil {
		return res, err
	}
	if !loaded.StateVector().Equal(final.StateVector()) {
		return res, fmt.Errorf("%s: snapshot state vector differs", t.Name)
	}
	// The load read the cached text; the structure is built on first use.
	// Build it, and check that it holds the same text and history: a fresh
	// replica applying its whole diff reads the end content too.
	if err := loaded.Verify(); err != nil {
		return res, fmt.Errorf("%s: snapshot structure: %w", t.Name, err)
	}
	if err := check(t, "snapshot structure", loaded.Text(Root).String()); err != nil {
		return res, err
	}
	again := crdt.NewDoc(crdt.Options{Agent: 1 << 41})
	if err := again.ApplyUpdate(loaded.EncodeDiff(nil)); err != nil {
		return res, fmt.Errorf("%s: diff of the loaded snapshot: %w", t.Name, err)
	}
	if err := check(t, "diff of the loaded snapshot", again.Text(Root).String()); err != nil {
		return res, err
	}
	return res, nil
}

// splice applies one patch to x.
func splice(x *crdt.Text, p Patch) error {
	if p.Del > 0 {
		if err := x.Delete(p.Pos, p.Del); err != nil {
			return err
		}
	}
	if p.Ins != "" {
		if !utf8.ValidString(p.Ins) {
			return fmt.Errorf("insert is not valid UTF-8")
		}
		return x.Insert(p.Pos, p.Ins)
	}
	return nil
}

func replaySequential(t *Trace) (*crdt.Doc, [][]byte, time.Duration, error) {
	// Pass 1, timed: the local replay alone.
	doc := crdt.NewDoc(crdt.Options{Agent: 1})
	x := doc.Text(Root)
	if err := x.Insert(0, t.StartContent); err != nil {
		return nil, nil, 0, err
	}
	start := time.Now()
	for i, txn := range t.Txns {
		for j, p := range txn.Patches {
			if err := splice(x, p); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: txn %d patch %d: %w", t.Name, i, j, err)
			}
		}
	}
	local := time.Since(start)
	if err := check(t, "local replay", x.String()); err != nil {
		return nil, nil, 0, err
	}
	// Pass 2: the same edits, recording one update per txn.
	rec := crdt.NewDoc(crdt.Options{Agent: 1})
	rx := rec.Text(Root)
	updates := make([][]byte, 0, len(t.Txns)+1)
	if err := rx.Insert(0, t.StartContent); err != nil {
		return nil, nil, 0, err
	}
	if u := rec.TakeUpdate(); u != nil {
		updates = append(updates, u)
	}
	for _, txn := range t.Txns {
		for _, p := range txn.Patches {
			if err := splice(rx, p); err != nil {
				return nil, nil, 0, err
			}
		}
		if u := rec.TakeUpdate(); u != nil {
			updates = append(updates, u)
		}
	}
	return doc, updates, local, nil
}

// replayConcurrent keeps one replica per agent (TRACES.md, "How to replay").
func replayConcurrent(t *Trace) (*crdt.Doc, [][]byte, time.Duration, error) {
	n := len(t.Txns)
	updates := make([][]byte, n)
	type replica struct {
		doc  *crdt.Doc
		seen []bool
	}
	reps := make([]*replica, t.NumAgents)
	var stack, todo []int
	start := time.Now()
	for i, txn := range t.Txns {
		r := reps[txn.Agent]
		if r == nil {
			r = &replica{doc: crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(txn.Agent + 1)}), seen: make([]bool, n)}
			reps[txn.Agent] = r
		}
		// Bring the replica to exactly the parents' version.
		stack, todo = t.unseenAncestors(txn.Parents, r.seen, stack, todo)
		for _, p := range todo {
			if err := r.doc.ApplyUpdate(updates[p]); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: txn %d: merge txn %d: %w", t.Name, i, p, err)
			}
		}
		x := r.doc.Text(Root)
		for j, p := range txn.Patches {
			if err := splice(x, p); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: txn %d patch %d: %w", t.Name, i, j, err)
			}
		}
		r.seen[i] = true
		updates[i] = r.doc.TakeUpdate()
		if updates[i] == nil {
			updates[i] = emptyUpdate(r.doc)
		}
	}
	// Every replica merges everything and must converge on endContent.
	var final *crdt.Doc
	for a, r := range reps {
		if r == nil {
			continue
		}
		for i := range n {
			if !r.seen[i] {
				if err := r.doc.ApplyUpdate(updates[i]); err != nil {
					return nil, nil, 0, fmt.Errorf("%s: agent %d final merge of txn %d: %w", t.Name, a, i, err)
				}
			}
		}
		if err := check(t, fmt.Sprintf("replica of agent %d", a), r.doc.Text(Root).String()); err != nil {
			return nil, nil, 0, err
		}
		if final != nil && !final.StateVector().Equal(r.doc.StateVector()) {
			return nil, nil, 0, fmt.Errorf("%s: replicas converged on text but not on state vectors", t.Name)
		}
		final = r.doc
	}
	local := time.Since(start)
	if final == nil {
		final = crdt.NewDoc(crdt.Options{Agent: 1})
	}
	return final, updates, local, nil
}

// emptyUpdate is a valid update with no ops (a pure merge txn).
func emptyUpdate(d *crdt.Doc) []byte {
	return d.EncodeDiff(d.StateVector())
}

// unseenAncestors returns, in file order, the txns among parents and their
// ancestors that seen does not mark yet, and marks them: what a replica
// must apply to reach exactly the parents' version. stack and todo are
// scratch slices, returned for reuse.
func (t *Trace) unseenAncestors(parents []int, seen []bool, stack, todo []int) ([]int, []int) {
	stack, todo = append(stack[:0], parents...), todo[:0]
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		todo = append(todo, p)
		stack = append(stack, t.Txns[p].Parents...)
	}
	slices.Sort(todo)
	return stack, todo
}
