package owner

import (
	"errors"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// Msg is what the owner's inbox takes: one of the types below, handled by
// one type switch (Owner.handle). Requests that need an answer carry a
// reply channel of capacity 1; the owner never blocks on it.
type Msg interface{ msg() }

// Join subscribes a session as an editor and peer: it gets what it lacks
// (SV is its state vector), then the server's state vector, then presence.
type Join struct {
	Sub  Subscriber
	Kind Kind // the door's: a document of the other kind refuses the join
	// NoSync subscribes without a sync: the session asks for one (Sync)
	// when its peer sends its state vector (the Yjs doors).
	NoSync   bool
	SV       []byte
	ReadOnly bool
	User     presence.User
	// Snapshot: with an empty SV, a native document is sent as its
	// snapshot (SyncEvent.Snapshot) rather than as its whole history.
	Snapshot bool
}

// ReadOnly makes a joined session read-only (its token was refreshed to a
// read-only grant): its later updates are rejected.
type ReadOnly struct{ Sub Subscriber }

// Sync asks for what a replica with state vector SV lacks: SyncEvents
// with the update chunks, the last one Final and carrying the document's
// state vector (a Yjs peer's sync step 1, answered by step 2 and the
// server's step 1).
type Sync struct {
	Sub Subscriber
	SV  []byte
}

// Awareness is a Yjs session's awareness update (y-protocols encoding),
// already checked and stamped by the session; a nil Update asks for every
// state (query awareness).
type Awareness struct {
	Sub    Subscriber
	Update []byte
}

// Leave unsubscribes a session (its peer disappears at once).
type Leave struct{ Sub Subscriber }

// Update is a session's update batch (already checked by the session:
// size, op count, agents claimed).
type Update struct {
	Sub    Subscriber
	Batch  uint64
	Update []byte
}

// SetPresence is a session's own presence. Slot, when set, registers a
// new PresenceSlot of the session for this document: its later states go
// to Owner.PostPresence instead of the inbox (presencebox.go).
type SetPresence struct {
	Sub   Subscriber
	State presence.State
	Slot  *PresenceSlot
}

// Follow subscribes an HTTP follower of root: a FeedStartEvent, then every
// UpdateEvent (and PresenceEvent when it wants them). Since is the version
// to resume after (nil: start from the text); a resume needing more than
// MaxSteps steps (0: any number) starts from the text instead (a reset).
type Follow struct {
	Sub      Subscriber
	Root     string
	Since    *uint64
	MaxSteps int
}

// Unfollow ends a follower.
type Unfollow struct{ Sub Subscriber }

// Read answers with a view of the document.
type Read struct {
	Root  string
	What  ReadWhat
	Reply chan<- ReadResult
}

// ReadWhat selects a view.
type ReadWhat int

// Views.
const (
	ReadInfo     ReadWhat = iota + 1 // version, roots, text of Root, clock, counts
	ReadText                         // version and text of Root
	ReadSnapshot                     // version and the encoded snapshot
)

// ReadResult is a Read's answer.
type ReadResult struct {
	Err      error // ErrNoDocument, or the document's refusal
	Kind     Kind
	Version  uint64
	Text     string
	Roots    []string
	Clock    map[string]uint64
	Pending  int
	Peers    int
	Sessions int
	Snapshot []byte
	// Awareness is a Yjs document's awareness: client -> state JSON (ReadInfo).
	Awareness map[uint64]string
	// Content is each root as JSON, for engines that are Viewers (ReadInfo).
	Content map[string][]byte
}

// Edit applies position-based edits to Root as the server (a REST edit):
// relative to Version when set (rebased over the changes since), at most
// once per Key. The reply comes when the edit is durable.
type Edit struct {
	Root    string
	Edits   []Splice
	Version *uint64
	Key     string
	Reply   chan<- EditResult
}

// EditResult is an Edit's answer.
type EditResult struct {
	Err     error
	Version uint64
	Applied int  // primitive edits applied (after rebasing)
	Replay  bool // the Key was seen: this is the first answer again
}

// Import merges a replica loaded from a snapshot into the document; the
// reply comes when what it added is durable.
type Import struct {
	Kind  Kind // From's kind: a new document takes it, another kind refuses
	From  Engine
	Reply chan<- ImportResult
}

// ImportResult is an Import's answer.
type ImportResult struct {
	Err     error
	Version uint64
}

// Create makes a new, empty document of Kind and stores it (so its kind
// is fixed before anyone writes). The reply is ErrExists for a document
// that exists (or was joined as the other kind), else nil once durable.
type Create struct {
	Kind  Kind
	Reply chan<- error
}

// ErrExists answers a Create of a document that exists.
var ErrExists = errors.New("owner: document exists")

// Broadcast delivers an ephemeral message to every subscriber of the
// document but From (nil: from the app, over HTTP); it is not stored. The
// reply (when set) says how many subscribers it reached.
type Broadcast struct {
	From  Subscriber
	Data  []byte // JSON
	Reply chan<- BroadcastResult
}

// BroadcastResult is a Broadcast's answer.
type BroadcastResult struct {
	Err       error
	Delivered int
}

// Delete deletes the document: subscribers are told, the store keeps a
// tombstone, and the document is refused from then on.
type Delete struct{ Reply chan<- error }

func (Join) msg()        {}
func (Leave) msg()       {}
func (Awareness) msg()   {}
func (Sync) msg()        {}
func (Create) msg()      {}
func (ReadOnly) msg()    {}
func (Update) msg()      {}
func (SetPresence) msg() {}
func (Follow) msg()      {}
func (Unfollow) msg()    {}
func (Read) msg()        {}
func (Edit) msg()        {}
func (Import) msg()      {}
func (Delete) msg()      {}
func (Broadcast) msg()   {}
func (Disown) msg()      {}

// Disown makes the owner give the document up at once, without waiting to
// be idle (cluster mode: this node lost the document's lease): the commits
// in flight are waited for and acked, every subscriber gets an ErrorEvent
// with Code (End: rejoin, elsewhere), the owner leaves the registry (the
// next Acquire starts a new owner) and exits. Requests still queued or sent
// later find it gone (Send reports false).
type Disown struct {
	Code    protocol.Code
	Message string
}
