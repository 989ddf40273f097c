package server

import (
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

type feedKind int

const (
	feedSnapshot feedKind = iota + 1 // the root's text at version (first item of a fresh follow)
	feedReset                        // like a snapshot, for a follower whose resume point is gone
	feedChange                       // one version step
	feedPresence                     // presence (full or delta)
	feedDeleted                      // the document was deleted: the feed ends
	feedError                        // the document is refused: the feed ends
	feedCurrent                      // a resuming follower is up to date (nothing to send)
)

// feedItem is one thing an HTTP follower is told.
type feedItem struct {
	kind    feedKind
	version uint64
	text    string             // snapshot, reset
	change  change             // change (its splices are never modified)
	pres    *protocol.Presence // presence
	cursors map[string][2]int  // presence: session -> anchor, head resolved in the follower's root (code points; -1 unknown)
	code    protocol.Code      // error, deleted
	msg     string
}

// follower is an HTTP reader of one document (an SSE stream or a long
// poll). The owner pushes into ch without blocking; a follower that falls
// FollowerQueue items behind is dropped (ch is closed) and resumes from its
// last version, as a browser's EventSource does by itself.
type follower struct {
	root     string // the text root whose text snapshots carry
	presence bool   // wants presence items
	ch       chan feedItem
	dropped  bool // owned by the owner goroutine
}

func newFollower(root string, presence bool, queue int) *follower {
	return &follower{root: root, presence: presence, ch: make(chan feedItem, queue)}
}

// push delivers it without blocking; it reports false (and drops the
// follower) when the follower's queue is full. Owner goroutine only.
func (f *follower) push(it feedItem) bool {
	if f.dropped {
		return false
	}
	select {
	case f.ch <- it:
		return true
	default:
		f.dropped = true
		close(f.ch)
		return false
	}
}

// follow starts a follower: a snapshot, or the changes after *since when the
// change log still has them all (else a reset), then presence, then every
// later change.
func (o *owner) follow(f *follower, since *uint64) {
	version := o.doc.Version()
	snapshot := feedItem{kind: feedSnapshot, version: version}
	if hasRoot(o.doc, f.root) {
		snapshot.text = o.doc.Text(f.root).String()
	}
	if since != nil {
		changes, ok := o.changes.since(*since, version)
		if ok && len(changes) == 0 {
			f.push(feedItem{kind: feedCurrent, version: version})
		} else if ok && len(changes) < cap(f.ch)/2 {
			for i := range changes {
				f.push(feedItem{kind: feedChange, version: changes[i].To, change: changes[i]})
			}
		} else {
			snapshot.kind = feedReset
			f.push(snapshot)
		}
	} else {
		f.push(snapshot)
	}
	if f.presence {
		m := &protocol.Presence{Doc: o.id, Full: true, Peers: o.pres.set.Peers()}
		f.push(feedItem{kind: feedPresence, pres: m, cursors: o.resolveCursors(m, f.root)})
	}
	if !f.dropped {
		o.followers[f] = true
	}
}

// recordChange closes the version step since before: it goes into the
// change log and to every follower.
func (o *owner) recordChange(before uint64) {
	version := o.doc.Version()
	if version == before {
		o.splices = o.splices[:0]
		return
	}
	c := change{From: before, To: version, Splices: o.splices}
	o.splices = nil
	o.changes.add(c)
	for f := range o.followers {
		if !f.push(feedItem{kind: feedChange, version: version, change: c}) {
			delete(o.followers, f)
		}
	}
}

// presenceToFollowers sends a presence frame to followers that want it,
// with the cursors resolved in each follower's root.
func (o *owner) presenceToFollowers(m *protocol.Presence) {
	byRoot := map[string]map[string][2]int{}
	for f := range o.followers {
		if !f.presence {
			continue
		}
		cur, ok := byRoot[f.root]
		if !ok {
			cur = o.resolveCursors(m, f.root)
			byRoot[f.root] = cur
		}
		if !f.push(feedItem{kind: feedPresence, pres: m, cursors: cur}) {
			delete(o.followers, f)
		}
	}
}

// resolveCursors resolves the cursors in m that are in root to code-point
// indexes of the current text (-1 where a position does not resolve).
func (o *owner) resolveCursors(m *protocol.Presence, root string) map[string][2]int {
	out := map[string][2]int{}
	if !hasRoot(o.doc, root) {
		return out
	}
	x := o.doc.Text(root)
	resolve := func(b []byte) int {
		p, err := crdt.DecodeRelPos(b)
		if err != nil {
			return -1
		}
		i, ok := x.Resolve(p)
		if !ok {
			return -1
		}
		return i
	}
	for _, list := range [][]presence.Peer{m.Peers, m.Moved} {
		for _, p := range list {
			if p.Cursor.Root == root && len(p.Cursor.Anchor) > 0 {
				out[p.Session] = [2]int{resolve(p.Cursor.Anchor), resolve(p.Cursor.Head)}
			}
		}
	}
	return out
}

// endFollowers tells every follower the feed is over (deleted or refused).
func (o *owner) endFollowers(it feedItem) {
	for f := range o.followers {
		f.push(it)
		delete(o.followers, f)
	}
}
