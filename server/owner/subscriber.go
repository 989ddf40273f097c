package owner

import (
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// Subscriber is anyone the owner tells about the document: a WebSocket or
// fallback session, an SSE or long-poll follower, later a session
// forwarded from another node. The owner calls it on its own goroutine and
// never waits for it.
type Subscriber interface {
	// ID names the subscriber (a session id: the peer's name in presence).
	ID() string
	// Deliver queues ev without blocking. It reports false when the
	// subscriber is gone (closed, or closed by this delivery for being too
	// far behind); the owner then forgets it.
	Deliver(ev Event) bool
	// DeliverSoft queues an event the subscriber can do without
	// (presence): when it is behind, the event is dropped and DeliverSoft
	// reports false; the owner sends it the whole presence later.
	DeliverSoft(ev Event) bool
	// Seen is when the subscriber's peer last showed life (a frame, a
	// pong); the presence TTL counts from it.
	Seen() time.Time
}

// Event is what the owner delivers: one of the *Event types below.
// Subscribers encode events in their own protocol; an event delivered to
// many subscribers is encoded once per protocol (the Memo fields, written
// by the first subscriber of a kind on the owner's goroutine).
type Event interface{ event() }

// SyncEvent is one chunk of the sync a Join starts: the ops the joiner
// lacks; the final chunk carries the document's state vector.
type SyncEvent struct {
	Doc    string
	Chunk  int
	Final  bool
	Update []byte
	SV     []byte // final chunk only
	// Snapshot: Update is a piece of the document's snapshot (the pieces
	// of all chunks, concatenated, are Engine.Snapshot), for a cold Join
	// that asked for one.
	Snapshot bool
}

// UpdateEvent is a step of the document: ops applied, the visible changes
// they made (From -> Version) and the update to forward (in chunks when the
// server made a big one: each applies on its own, in order).
type UpdateEvent struct {
	Doc           string
	Updates       [][]byte
	From, Version uint64
	Changes       []Change
	Memo          [][]byte // a subscriber kind's encoding, shared by all of that kind
	// rootJSON resolves a non-text root's JSON after the step (owner
	// goroutine only; memoised per root across the subscribers of one step)
	rootJSON func(root string) ([]byte, bool)
	jsonMemo map[string][]byte
}

// JSON is root as JSON after the step, for a root that is not a text (a
// Yjs map, array or XML fragment); ok is false for text roots and native
// documents. Call it from Deliver only.
func (e *UpdateEvent) JSON(root string) ([]byte, bool) {
	if j, ok := e.jsonMemo[root]; ok {
		return j, j != nil
	}
	if e.rootJSON == nil {
		return nil, false
	}
	j, ok := e.rootJSON(root)
	if !ok {
		j = nil
	}
	if e.jsonMemo == nil {
		e.jsonMemo = map[string][]byte{}
	}
	e.jsonMemo[root] = j
	return j, ok
}

// SetJSON records root's JSON after the step (nil: root is a text), for
// an event rebuilt away from its owner (a forwarded subscriber's node).
func (e *UpdateEvent) SetJSON(root string, js []byte) {
	if e.jsonMemo == nil {
		e.jsonMemo = map[string][]byte{}
	}
	e.jsonMemo[root] = js
}

// AckEvent acknowledges a subscriber's update batch.
type AckEvent struct {
	Doc              string
	Batch            uint64
	Status           protocol.AckStatus
	Applied, Durable uint64
}

// ErrorEvent refuses something, with a code from the protocol's table.
// End means the subscription is over (the document was deleted or could
// not be loaded): followers end their feed.
type ErrorEvent struct {
	Doc        string
	Batch      uint64
	Code       protocol.Code
	Message    string
	RetryAfter time.Duration
	End        bool
}

// PresenceEvent is a presence change (or, Full, everyone's presence).
type PresenceEvent struct {
	Msg  *protocol.Presence
	Memo []byte
	// cursors resolves the cursors of Msg in one root (owner goroutine only;
	// memoised per root across the subscribers of one flush)
	resolve func(root string) map[string][2]int
	byRoot  map[string]map[string][2]int
}

// Cursors returns the cursors of the event's peers in root as indexes of
// the root's current text (anchor, head; -1 where one does not resolve).
// Call it from Deliver only.
func (e *PresenceEvent) Cursors(root string) map[string][2]int {
	if c, ok := e.byRoot[root]; ok {
		return c
	}
	if e.resolve == nil {
		return nil
	}
	if e.byRoot == nil {
		e.byRoot = map[string]map[string][2]int{}
	}
	c := e.resolve(root)
	e.byRoot[root] = c
	return c
}

// JoinedEvent tells a NoSync joiner that its join was accepted (the
// document is of its kind and loaded): a Hocuspocus door answers the
// provider's Auth only then, so a refused document is never first
// announced as open.
type JoinedEvent struct{ Doc string }

// SetCursors records the cursors of Msg's peers in root, for an event
// rebuilt away from its owner (a forwarded subscriber's node).
func (e *PresenceEvent) SetCursors(root string, c map[string][2]int) {
	if e.byRoot == nil {
		e.byRoot = map[string]map[string][2]int{}
	}
	e.byRoot[root] = c
}

// AwarenessEvent is a Yjs document's awareness change: an awareness update
// (y-protocols encoding) with the states that changed, or (Full) every
// state. Memo is a subscriber kind's encoding, shared by all of that kind.
type AwarenessEvent struct {
	Doc    string
	Update []byte
	Full   bool
	Memo   []byte
}

// FeedStartEvent starts a follower: the text of its root at Version
// (Reset: its resume point was gone), or the steps since its resume point,
// or (Current) nothing to catch up.
type FeedStartEvent struct {
	Version uint64
	Text    string
	JSON    []byte // a non-text root's JSON (then Text is empty and no steps are sent)
	Reset   bool
	Current bool
	Steps   []Step
}

// Step is one version step of the document.
type Step struct {
	From, To uint64
	Changes  []Change
}

// MessageEvent is an ephemeral message: From is the sending session's id
// ("" from the app), Data its JSON.
type MessageEvent struct {
	Doc  string
	From string
	Data []byte
	Memo []byte
}

func (*MessageEvent) event()   {}
func (*SyncEvent) event()      {}
func (*UpdateEvent) event()    {}
func (*AckEvent) event()       {}
func (*ErrorEvent) event()     {}
func (*PresenceEvent) event()  {}
func (*FeedStartEvent) event() {}
func (*AwarenessEvent) event() {}
func (*JoinedEvent) event()    {}

// Peer is how a session appears in presence.
type Peer struct {
	User     presence.User
	ReadOnly bool
}
