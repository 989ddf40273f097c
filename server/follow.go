package server

import (
	"time"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
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
	feedMessage                      // an ephemeral broadcast message
	feedJSON                         // a non-text root's JSON after a step (Yjs maps, arrays, fragments)
)

// feedItem is one thing an HTTP follower is told.
type feedItem struct {
	kind    feedKind
	version uint64
	text    string             // snapshot, reset
	step    owner.Step         // change (its changes are never modified)
	pres    *protocol.Presence // presence
	cursors map[string][2]int  // presence: session -> anchor, head resolved in the follower's root (code points; -1 unknown)
	code    protocol.Code      // error, deleted
	msg     string
	from    string // message: the sending session ("" from the app)
	data    []byte // message: its JSON; json, snapshot of a non-text root: the root's JSON
}

// follower is an HTTP reader of one document (an SSE stream or a long
// poll), an owner.Subscriber: the owner delivers events on its goroutine,
// and the follower turns them into feed items on ch without blocking; a
// follower that falls FollowerQueue items behind is dropped (ch is closed)
// and resumes from its last version, as a browser's EventSource does by
// itself.
type follower struct {
	root     string // the text root whose text snapshots carry
	presence bool   // wants presence items
	ch       chan feedItem
	dropped  bool // owned by the owner goroutine
}

var _ owner.Subscriber = (*follower)(nil)

// ID is empty: followers are not peers.
func (f *follower) ID() string { return "" }

// Seen is always now: a follower's liveness is its HTTP request.
func (f *follower) Seen() time.Time { return time.Now() }

// Deliver turns an owner event into feed items. It reports false once the
// follower is dropped or its feed has ended.
func (f *follower) Deliver(ev owner.Event) bool {
	switch ev := ev.(type) {
	case *owner.FeedStartEvent:
		switch {
		case ev.Current:
			return f.push(feedItem{kind: feedCurrent, version: ev.Version})
		case ev.Steps != nil:
			for _, st := range ev.Steps {
				if !f.push(feedItem{kind: feedChange, version: st.To, step: st}) {
					return false
				}
			}
			return true
		case ev.JSON != nil:
			return f.push(feedItem{kind: feedSnapshot, version: ev.Version, data: ev.JSON})
		case ev.Reset:
			return f.push(feedItem{kind: feedReset, version: ev.Version, text: ev.Text})
		}
		return f.push(feedItem{kind: feedSnapshot, version: ev.Version, text: ev.Text})
	case *owner.UpdateEvent:
		if js, ok := ev.JSON(f.root); ok {
			return f.push(feedItem{kind: feedJSON, version: ev.Version, data: js})
		}
		return f.push(feedItem{kind: feedChange, version: ev.Version, step: owner.Step{From: ev.From, To: ev.Version, Changes: ev.Changes}})
	case *owner.ErrorEvent:
		if !ev.End {
			return true // a session's refusal: nothing a follower shows
		}
		kind := feedError
		if ev.Code == protocol.CodeDocDeleted {
			kind = feedDeleted
		}
		f.push(feedItem{kind: kind, code: ev.Code, msg: ev.Message})
		return false
	}
	return true // sync and acks are for sessions
}

// DeliverSoft delivers presence to a follower that wants it, with the
// cursors resolved in its root, and broadcast messages.
func (f *follower) DeliverSoft(ev owner.Event) bool {
	switch ev := ev.(type) {
	case *owner.PresenceEvent:
		if !f.presence {
			return true
		}
		return f.push(feedItem{kind: feedPresence, pres: ev.Msg, cursors: ev.Cursors(f.root)})
	case *owner.MessageEvent:
		return f.push(feedItem{kind: feedMessage, from: ev.From, data: ev.Data})
	}
	return true
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
