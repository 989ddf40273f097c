package owner

import "errors"

// Engine is a document's replica as the owner sees it: collabd's native
// text CRDT (server's crdt.Doc adapter) or a Yjs document. The owner is its
// only user; an Engine is never touched by two goroutines.
//
// State vectors, updates and snapshots are the engine's own encodings; the
// owner stores and forwards them as opaque bytes.
type Engine interface {
	// Version is the number of ops the replica has integrated (it grows
	// with every op; change events and HTTP feeds count in it).
	Version() uint64
	// Pending is the number of ops waiting for causal dependencies.
	Pending() int

	// Apply integrates an update, all or nothing: on error the replica is
	// unchanged. The error wraps ErrInvalid, ErrTooLarge or ErrPendingFull,
	// or is author's refusal, or wraps ErrCorrupt when the stored state the
	// replica was loaded from fails a check made only on use (the owner
	// then refuses the document, as a failed load). A non-nil author (a client's update) is asked
	// to admit the update on the same decode that applies it; nil (the
	// store's own entries) admits everything.
	Apply(update []byte, author Author) (Applied, error)
	// StateVector encodes what the replica has seen.
	StateVector() []byte
	// Diff is an update with every op the replica has that a replica with
	// state vector sv lacks, in an order that applies without waiting (nil
	// or empty sv: the whole history). Ops waiting in the pending buffer
	// are not included (see PendingUpdate). An error wrapping ErrCorrupt
	// is as for Apply.
	Diff(sv []byte) ([]byte, error)
	// PendingUpdate encodes the pending ops as one update (nil if none).
	PendingUpdate() []byte
	// Snapshot encodes the whole replica, pending ops included, for
	// storage; the Config's NewEngine loads it back.
	Snapshot() []byte

	// Roots lists the named roots, Text reads one as text.
	Roots() []string
	Text(root string) (string, bool)
	// Clock is the state vector as JSON-friendly entries (replica id ->
	// ops seen).
	Clock() map[string]uint64
	// ResolveCursor turns an encoded relative position in root into an
	// index of the root's current text, or -1.
	ResolveCursor(root string, pos []byte) int

	// Edit applies primitive edits to root as the server's own replica, all
	// or nothing, and returns the update they make. Positions are checked
	// first (ErrOutOfRange); a new root past the engine's limits is
	// ErrTooLarge.
	Edit(root string, edits []Prim) (update []byte, changes []Change, err error)
	// Split cuts an update the replica made (a Diff) into chunks of about
	// a sync frame's size, each applying on its own, in order.
	Split(update []byte) [][]byte
	// Merge integrates everything from (a replica loaded by the same kind
	// of engine) has: its diff, then its pending ops. It returns the
	// updates that brought something new, to store and fan out, in order,
	// and the visible changes they made.
	Merge(from Engine) (updates [][]byte, changes []Change, err error)
}

// Viewer is an Engine with structured content beyond text (a Yjs
// document): each root as JSON (ReadInfo's Content).
type Viewer interface {
	Content() map[string][]byte
	// RootJSON is a root that is not a text (a map, an array, an XML
	// fragment) as JSON; ok is false for text roots, which followers see
	// as changes instead.
	RootJSON(root string) (json []byte, ok bool)
}

// RootRestorer is an Engine whose roots are not all texts (a Yjs
// document's maps, arrays and XML fragments): a Restore makes those equal
// to the version's with RestoreRoot, and only the others with text edits.
type RootRestorer interface {
	// StructuredRoots lists the roots, of the replica or of from (a
	// version loaded by the same kind of engine), that RestoreRoot restores.
	StructuredRoots(from Engine) []string
	// RestoreRoot makes root equal to from's root (a root from lacks is
	// emptied) with edits as the server's own replica, merging like any
	// edit with concurrent ones, and returns their update (nil when the
	// root is equal already) and visible changes. On error nothing changed.
	RestoreRoot(root string, from Engine) (update []byte, changes []Change, err error)
}

// Author is who sent an update: the engine asks it to admit the update's
// ops once decoded, before anything applies.
type Author interface {
	// Admit checks the replicas whose ops the update creates (claims),
	// their number of ops and total length (limits, rate). A non-nil error,
	// a *Refused with its code, rejects the update whole.
	Admit(replicas []uint64, ops, length int) error
}

// Applied is what an update did.
type Applied struct {
	// New reports that the update held something the replica did not have
	// (integrated, deleted, or waiting in the pending buffer): it must be
	// stored. False for a resend of what the replica has.
	New bool
	// Visible reports that the document's content changed (its Version
	// moved, or for engines whose deletes do not move it, content was
	// deleted): subscribers get the update.
	Visible bool
	// Extra are updates the engine made itself while applying (a Yjs
	// document's formatting cleanup): stored after the applied update and
	// fanned out to every subscriber, the author too.
	Extra [][]byte
	// Changes lists the visible changes, in order.
	Changes []Change
	// Released reports that ops waiting in the pending buffer were
	// integrated: the fan-out must then be Fanout (a diff carrying them),
	// sent to every subscriber including the update's author.
	Released bool
	Fanout   []byte
}

// Change is a visible change of one root, in the root's text units: at Pos
// remove Del, then insert Ins.
type Change struct {
	Root     string
	Pos, Del int
	Ins      string
}

// Engine errors. Engines wrap them with the detail.
var (
	ErrInvalid     = errors.New("owner: invalid update")
	ErrTooLarge    = errors.New("owner: document limit exceeded")
	ErrPendingFull = errors.New("owner: pending buffer full")
	ErrOutOfRange  = errors.New("owner: edit position out of range")
)
