package trace

import (
	"fmt"
	"slices"
	"time"

	"github.com/collabd/collabd/crdt/yjs"
)

// RunYjs replays t through the Yjs engine (crdt/yjs) with the same checks as
// Run: local replay with server-side edits (one Yjs update per patch),
// remote apply of those updates one at a time into a fresh document,
// EncodeState and Load + read text. Positions are code points in traces and
// UTF-16 units in Yjs, so a trace with characters outside the BMP is refused.
func RunYjs(t *Trace) (Result, error) {
	res := Result{Name: t.Name, Edits: t.Edits()}
	for _, txn := range t.Txns {
		for _, p := range txn.Patches {
			for _, r := range p.Ins {
				if r >= 0x10000 {
					return res, fmt.Errorf("%s: the yjs engine replays BMP-only traces", t.Name)
				}
			}
		}
	}
	var (
		updates [][]byte
		final   *yjs.Doc
		err     error
	)
	start := time.Now()
	if t.Concurrent() {
		final, updates, err = yjsConcurrent(t)
	} else {
		final, updates, err = yjsSequential(t)
	}
	res.Local = time.Since(start)
	if err != nil {
		return res, err
	}
	if err := check(t, "local replay", final.Text(Root)); err != nil {
		return res, err
	}
	remote := yjs.New(yjs.Limits{})
	start = time.Now()
	for i, u := range updates {
		if _, err := remote.Apply(u); err != nil {
			return res, fmt.Errorf("%s: remote apply of update %d: %w", t.Name, i, err)
		}
	}
	res.Remote = time.Since(start)
	if err := check(t, "remote apply", remote.Text(Root)); err != nil {
		return res, err
	}
	if s := remote.Stats(); s.Pending != 0 || s.PendingDeletes != 0 {
		return res, fmt.Errorf("%s: remote apply left %d structs and %d deletes pending", t.Name, s.Pending, s.PendingDeletes)
	}
	if !slices.Equal(remote.StateVector(), final.StateVector()) {
		return res, fmt.Errorf("%s: remote state vector differs from the replay's", t.Name)
	}
	start = time.Now()
	snap := final.EncodeState()
	res.Encode = time.Since(start)
	res.SnapshotBytes = len(snap)
	start = time.Now()
	loaded, err := yjs.Load(snap, yjs.Limits{})
	if err != nil {
		return res, fmt.Errorf("%s: load state: %w", t.Name, err)
	}
	text := loaded.Text(Root)
	res.Load = time.Since(start)
	if err := check(t, "state round trip", text); err != nil {
		return res, err
	}
	return res, nil
}

// yjsSplice applies one patch as server-side edits of client and collects the updates.
func yjsSplice(d *yjs.Doc, client uint64, p Patch, out [][]byte) ([][]byte, error) {
	if p.Del > 0 {
		u, err := d.DeleteText(client, Root, p.Pos, p.Del)
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
	if p.Ins != "" {
		u, err := d.InsertText(client, Root, p.Pos, p.Ins)
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
	return out, nil
}

func yjsSequential(t *Trace) (*yjs.Doc, [][]byte, error) {
	d := yjs.New(yjs.Limits{})
	var updates [][]byte
	var err error
	if t.StartContent != "" {
		if updates, err = yjsSplice(d, 1, Patch{Ins: t.StartContent}, updates); err != nil {
			return nil, nil, err
		}
	}
	for i, txn := range t.Txns {
		for j, p := range txn.Patches {
			if updates, err = yjsSplice(d, 1, p, updates); err != nil {
				return nil, nil, fmt.Errorf("%s: txn %d patch %d: %w", t.Name, i, j, err)
			}
		}
	}
	return d, updates, nil
}

// yjsConcurrent keeps one replica per agent (TRACES.md, "How to replay").
func yjsConcurrent(t *Trace) (*yjs.Doc, [][]byte, error) {
	n := len(t.Txns)
	perTxn := make([][][]byte, n)
	type replica struct {
		doc  *yjs.Doc
		seen []bool
	}
	reps := make([]*replica, t.NumAgents)
	var stack, todo []int
	for i, txn := range t.Txns {
		r := reps[txn.Agent]
		if r == nil {
			r = &replica{doc: yjs.New(yjs.Limits{}), seen: make([]bool, n)}
			reps[txn.Agent] = r
		}
		stack, todo = t.unseenAncestors(txn.Parents, r.seen, stack, todo)
		for _, p := range todo {
			for _, u := range perTxn[p] {
				if _, err := r.doc.Apply(u); err != nil {
					return nil, nil, fmt.Errorf("%s: txn %d: merge txn %d: %w", t.Name, i, p, err)
				}
			}
		}
		var err error
		for j, p := range txn.Patches {
			if perTxn[i], err = yjsSplice(r.doc, uint64(txn.Agent)+1, p, perTxn[i]); err != nil {
				return nil, nil, fmt.Errorf("%s: txn %d patch %d: %w", t.Name, i, j, err)
			}
		}
		r.seen[i] = true
	}
	var updates [][]byte
	for _, us := range perTxn {
		updates = append(updates, us...)
	}
	final := yjs.New(yjs.Limits{})
	for i, u := range updates {
		if _, err := final.Apply(u); err != nil {
			return nil, nil, fmt.Errorf("%s: final merge of update %d: %w", t.Name, i, err)
		}
	}
	return final, updates, nil
}
