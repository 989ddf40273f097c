package crdt_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/collabd/collabd/crdt"
)

// cvReplica is one replica of the rapid network: its doc, a reference that
// has applied exactly the same updates, and an inbox of undelivered messages.
type cvReplica struct {
	agent   crdt.AgentID
	doc     *crdt.Doc
	ref     *refDoc
	inbox   [][]byte
	cursors map[string]int // root -> position after the replica's last edit there
}

// cvDrawAgents draws n distinct agents, small and full-width.
func cvDrawAgents(t *rapid.T, n int) []crdt.AgentID {
	gen := rapid.OneOf(
		rapid.Uint64Range(1, 6),
		rapid.SampledFrom([]uint64{1 << 32, 1<<63 - 1, 1 << 63, 1<<63 + 1, math.MaxUint64 - 1, math.MaxUint64}),
		rapid.Uint64Min(1),
	)
	raw := rapid.SliceOfNDistinct(gen, n, n, rapid.ID[uint64]).Draw(t, "agents")
	out := make([]crdt.AgentID, n)
	for i, a := range raw {
		out[i] = crdt.AgentID(a)
	}
	return out
}

// cvDrawEdit makes one local edit of x chosen by rapid, often at a hot spot,
// and returns the cursor after it (each: see cvEditAt).
func cvDrawEdit(t *rapid.T, x *crdt.Text, hot []int, each func()) int {
	n := x.Len()
	var kind int
	if n > 0 {
		kind = rapid.IntRange(0, cvKinds-1).Draw(t, "edit kind")
	} else {
		kind = rapid.IntRange(0, 1).Draw(t, "insert kind")
	}
	pick := func(lo, hi int, label string) int {
		if len(hot) > 0 && rapid.Bool().Draw(t, "at a hot spot") {
			return min(max(rapid.SampledFrom(hot).Draw(t, "hot spot"), lo), hi)
		}
		return rapid.IntRange(lo, hi).Draw(t, label)
	}
	var cursor int
	switch kind {
	case cvInsert, cvTyping:
		pos := pick(0, n, "pos")
		s := strings.Join(rapid.SliceOfN(rapid.SampledFrom(cvPieces), 1, 6).Draw(t, "text"), "")
		cursor = cvEditAt(t, x, kind, pos, 0, s, each)
	case cvBackspace:
		pos := pick(1, n, "cursor")
		cursor = cvEditAt(t, x, kind, pos, rapid.IntRange(1, min(5, pos)).Draw(t, "count"), "", each)
	default:
		pos := pick(0, n-1, "pos")
		cursor = cvEditAt(t, x, kind, pos, rapid.IntRange(1, min(5, n-pos)).Draw(t, "count"), "", each)
	}
	t.Logf("  %q is now %q", x.Name(), x.String())
	return cursor
}

// cvDeliver applies u to replica r and to its reference, and checks they agree.
func cvDeliver(t *rapid.T, what string, r *cvReplica, u []byte) {
	if err := r.doc.ApplyUpdate(u); err != nil {
		t.Fatalf("%s: ApplyUpdate: %v", what, err)
	}
	if err := r.ref.apply(u); err != nil {
		t.Fatalf("%s: reference: %v", what, err)
	}
	cvMatchRef(t, what, r.doc, r.ref)
}

// TestConvergence is the seeded multi-replica property (C1, C2, C6a): 2–5
// replicas edit random roots and exchange updates through inboxes that
// reorder, duplicate, delay and lose them; some exchanges are EncodeDiff
// against the receiver's state vector (applied later, so they overlap what
// arrived meanwhile); replicas are reloaded from their own snapshot mid-way
// and go on editing. After every delivery a replica must agree with a
// reference fed the same updates (so out-of-order updates wait exactly as
// they should); every local op's update applied to a clone taken just before
// it must give the same state; at quiescence all replicas are identical with
// nothing pending.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 5).Draw(t, "replicas")
		agents := cvDrawAgents(t, n)
		reps := make([]*cvReplica, n)
		for i := range reps {
			reps[i] = &cvReplica{agent: agents[i], doc: crdt.NewDoc(crdt.Options{Agent: agents[i]}), ref: newRefDoc(), cursors: map[string]int{}}
		}
		// Every replica starts from the marker (a hot spot for edits).
		if err := reps[0].doc.Text(cvRoots[0]).Insert(0, string(cvMarker)); err != nil {
			t.Fatalf("marker: %v", err)
		}
		marker := reps[0].doc.TakeUpdate()
		for i, r := range reps {
			cvDeliver(t, fmt.Sprintf("marker to replica %d", i), r, marker)
		}
		cloneAgent := crdt.AgentID(0xC10E)
		for slices.Contains(agents, cloneAgent) {
			cloneAgent++
		}
		replica := func(label string) (int, *cvReplica) {
			i := rapid.IntRange(0, n-1).Draw(t, label)
			return i, reps[i]
		}
		steps := rapid.IntRange(1, 300).Draw(t, "steps")
		for step := range steps {
			switch act := rapid.IntRange(0, 15).Draw(t, "action"); {
			case act < 6: // local edit, broadcast to every inbox
				i, r := replica("editor")
				root := rapid.SampledFrom(cvRoots).Draw(t, "root")
				var clone *crdt.Doc
				if rapid.IntRange(0, 3).Draw(t, "clone") == 0 {
					var err error
					if clone, err = crdt.LoadSnapshot(r.doc.EncodeSnapshot(), crdt.Options{Agent: cloneAgent}); err != nil {
						t.Fatalf("step %d: clone of replica %d: %v", step, i, err)
					}
				}
				// publish takes the replica's pending local ops as one update,
				// checks it against the clone (C6a) and queues it for the others.
				publish := func() {
					u := r.doc.TakeUpdate()
					if u == nil {
						t.Fatalf("step %d: replica %d: TakeUpdate after an edit = nil", step, i)
					}
					cvDeliver(t, fmt.Sprintf("step %d: replica %d, own update", step, i), r, u)
					if clone != nil {
						if err := clone.ApplyUpdate(u); err != nil {
							t.Fatalf("step %d: clone of replica %d: ApplyUpdate: %v", step, i, err)
						}
						cvSame(t, fmt.Sprintf("step %d: replica %d vs its clone after the encoded op (C6a)", step, i), r.doc, clone)
					}
					for j, o := range reps {
						if j != i {
							o.inbox = append(o.inbox, u)
							if rapid.IntRange(0, 5).Draw(t, "duplicate") == 0 {
								o.inbox = append(o.inbox, u)
							}
						}
					}
				}
				// Keystroke by keystroke, an edit's ops are split over several
				// updates while the history merges them into one span (a typing
				// or backspace run), which later diffs send whole: receivers
				// that have part of it must trim the rest.
				var each func()
				if rapid.IntRange(0, 2).Draw(t, "per keystroke") == 0 {
					each = publish
				}
				t.Logf("step %d: replica %d edits (update per keystroke: %v)", step, i, each != nil)
				x := r.doc.Text(root)
				cur, ok := r.cursors[root]
				if !ok {
					cur = -1
				}
				r.cursors[root] = cvDrawEdit(t, x, cvHot(x, cur), each)
				if each == nil {
					publish()
				}
			case act < 12: // deliver one message, in any order; maybe keep it for a duplicate
				j, r := replica("receiver")
				if len(r.inbox) == 0 {
					continue
				}
				if rapid.IntRange(0, 9).Draw(t, "flush inbox") == 9 {
					t.Logf("step %d: replica %d gets its %d queued messages in order", step, j, len(r.inbox))
					for k, u := range r.inbox {
						cvDeliver(t, fmt.Sprintf("step %d: replica %d, flushed message %d", step, j, k), r, u)
					}
					r.inbox = nil
					continue
				}
				k := rapid.IntRange(0, len(r.inbox)-1).Draw(t, "message")
				u := r.inbox[k]
				if rapid.IntRange(0, 4).Draw(t, "keep") != 0 {
					r.inbox = slices.Delete(r.inbox, k, k+1)
				}
				t.Logf("step %d: replica %d gets message %d", step, j, k)
				cvDeliver(t, fmt.Sprintf("step %d: replica %d, message %d", step, j, k), r, u)
			case act < 14: // state-vector diff, queued (delayed) at the requester
				i, src := replica("diff source")
				j, dst := replica("diff requester")
				if i != j {
					t.Logf("step %d: replica %d queues a diff from %d", step, j, i)
					dst.inbox = append(dst.inbox, src.doc.EncodeDiff(dst.doc.StateVector()))
				}
			case act < 15: // lose a message
				j, r := replica("lossy")
				if len(r.inbox) > 0 {
					k := rapid.IntRange(0, len(r.inbox)-1).Draw(t, "lost")
					t.Logf("step %d: replica %d loses message %d", step, j, k)
					r.inbox = slices.Delete(r.inbox, k, k+1)
				}
			default: // reload from its own snapshot, same agent
				i, r := replica("reloaded")
				re, err := crdt.LoadSnapshot(r.doc.EncodeSnapshot(), crdt.Options{Agent: r.agent})
				if err != nil {
					t.Fatalf("step %d: replica %d: LoadSnapshot: %v", step, i, err)
				}
				t.Logf("step %d: replica %d reloads from its snapshot (%d ops were pending)", step, i, r.doc.Pending())
				cvSame(t, fmt.Sprintf("step %d: replica %d reloaded from its snapshot", step, i), r.doc, re)
				if re.Agent() != r.agent {
					t.Fatalf("step %d: reloaded replica %d has agent %x, want %x", step, i, re.Agent(), r.agent)
				}
				r.doc = re
				if re.Pending() == 0 {
					r.ref.dropPending() // snapshots hold applied ops only
				}
			}
		}
		// Quiescence: deliver what is queued, then sync every pair by state
		// vector until nothing changes.
		for j, r := range reps {
			for k, u := range r.inbox {
				cvDeliver(t, fmt.Sprintf("flush: replica %d, message %d", j, k), r, u)
			}
			r.inbox = nil
		}
		docs := make([]*crdt.Doc, n)
		for round := 0; ; round++ {
			before := 0
			for _, r := range reps {
				before += int(r.doc.Version())
			}
			for i, src := range reps {
				for j, dst := range reps {
					if i != j {
						cvDeliver(t, fmt.Sprintf("sync round %d: %d -> %d", round, i, j), dst, src.doc.EncodeDiff(dst.doc.StateVector()))
					}
				}
			}
			after := 0
			for _, r := range reps {
				after += int(r.doc.Version())
			}
			if after == before {
				break
			}
			if round > 2 {
				t.Fatalf("no quiescence after %d sync rounds", round+1)
			}
		}
		for i, r := range reps {
			docs[i] = r.doc
			if r.ref.Pending() != 0 {
				t.Fatalf("replica %d: reference has %d pending ops at quiescence", i, r.ref.Pending())
			}
		}
		cvConverged(t, "quiescence", docs)
		// The state survives a full-history diff and a snapshot.
		fresh := crdt.NewDoc(crdt.Options{Agent: cloneAgent})
		if err := fresh.ApplyUpdate(docs[0].EncodeDiff(nil)); err != nil {
			t.Fatalf("full diff: %v", err)
		}
		cvSame(t, "fresh replica from EncodeDiff(nil)", docs[0], fresh)
		loaded, err := crdt.LoadSnapshot(docs[n-1].EncodeSnapshot(), crdt.Options{Agent: cloneAgent})
		if err != nil {
			t.Fatalf("LoadSnapshot: %v", err)
		}
		cvSame(t, "fresh replica from a snapshot", docs[0], loaded)
	})
}

// TestSnapshotFidelity (C6b, yorkie#1729): a replica loaded from a snapshot
// taken at a random point (possibly with ops pending) and the replica it came
// from receive the same later concurrent ops in the same order: they must stay
// identical, pending buffers included, and go on converging when both edit.
func TestSnapshotFidelity(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		agents := cvDrawAgents(t, 5)
		peers := make([]*crdt.Doc, 3)
		for i := range peers {
			peers[i] = crdt.NewDoc(crdt.Options{Agent: agents[i]})
		}
		sync := func(i, j int) {
			if err := peers[j].ApplyUpdate(peers[i].EncodeDiff(peers[j].StateVector())); err != nil {
				t.Fatalf("sync %d -> %d: %v", i, j, err)
			}
		}
		// History: edits, diffs between peers, and single updates delivered
		// in any order (so the snapshot may be taken with ops pending).
		pairGen := rapid.IntRange(0, 2)
		var made [][]byte
		for range rapid.IntRange(0, 120).Draw(t, "history steps") {
			i := pairGen.Draw(t, "peer")
			switch rapid.IntRange(0, 2).Draw(t, "history action") {
			case 0:
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
				made = append(made, peers[i].TakeUpdate())
			case 1:
				if j := pairGen.Draw(t, "to"); j != i {
					sync(i, j)
				}
			default:
				if len(made) > 0 {
					u := rapid.SampledFrom(made).Draw(t, "update")
					if err := peers[i].ApplyUpdate(u); err != nil {
						t.Fatalf("peer %d: %v", i, err)
					}
				}
			}
		}
		a := peers[0]
		loaded, err := crdt.LoadSnapshot(a.EncodeSnapshot(), crdt.Options{Agent: agents[3]})
		if err != nil {
			t.Fatalf("LoadSnapshot: %v", err)
		}
		t.Logf("snapshot taken with %d ops pending", a.Pending())
		cvSame(t, "just loaded", a, loaded)
		// Counts may differ: the buffer can hold one op twice (delivered
		// twice while waiting), the snapshot once.
		if got, want := loaded.Pending(), a.Pending(); (got == 0) != (want == 0) {
			t.Fatalf("loaded replica has %d pending ops, original %d", got, want)
		}
		// Later ops: peers 1 and 2 edit concurrently with each other and with
		// a, sometimes after syncing with each other, including deletes of
		// text the snapshot holds.
		var later [][]byte
		for range rapid.IntRange(1, 60).Draw(t, "later steps") {
			i := rapid.IntRange(1, 2).Draw(t, "later peer")
			if rapid.IntRange(0, 3).Draw(t, "sync first") == 0 {
				sync(3-i, i)
			}
			take := func() { later = append(later, peers[i].TakeUpdate()) }
			if rapid.Bool().Draw(t, "update per keystroke") {
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, take)
			} else {
				cvDrawEdit(t, peers[i].Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
				take()
			}
		}
		for k, u := range rapid.Permutation(later).Draw(t, "delivery order") {
			for _, d := range []*crdt.Doc{a, loaded} {
				if err := d.ApplyUpdate(u); err != nil {
					t.Fatalf("later update %d: %v", k, err)
				}
			}
			cvSame(t, fmt.Sprintf("after later update %d", k), a, loaded)
			if (a.Pending() == 0) != (loaded.Pending() == 0) {
				t.Fatalf("after later update %d: pending %d vs loaded %d", k, a.Pending(), loaded.Pending())
			}
		}
		// Both edit concurrently, then exchange by state vector.
		cvDrawEdit(t, a.Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
		cvDrawEdit(t, loaded.Text(rapid.SampledFrom(cvRoots).Draw(t, "root")), nil, nil)
		ua, ul := a.EncodeDiff(loaded.StateVector()), loaded.EncodeDiff(a.StateVector())
		if err := a.ApplyUpdate(ul); err != nil {
			t.Fatalf("loaded -> original: %v", err)
		}
		if err := loaded.ApplyUpdate(ua); err != nil {
			t.Fatalf("original -> loaded: %v", err)
		}
		// The peers catch up from the loaded replica alone (two rounds, so
		// each peer also gets what the other sent it).
		for _, i := range []int{1, 2, 1} {
			if err := peers[i].ApplyUpdate(loaded.EncodeDiff(peers[i].StateVector())); err != nil {
				t.Fatalf("loaded -> peer %d: %v", i, err)
			}
			if err := loaded.ApplyUpdate(peers[i].EncodeDiff(loaded.StateVector())); err != nil {
				t.Fatalf("peer %d -> loaded: %v", i, err)
			}
		}
		if err := a.ApplyUpdate(loaded.EncodeDiff(a.StateVector())); err != nil {
			t.Fatalf("loaded -> original: %v", err)
		}
		cvConverged(t, "after exchange", []*crdt.Doc{a, loaded, peers[1], peers[2]})
	})
}
