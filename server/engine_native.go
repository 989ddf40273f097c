package server

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// nativeEngine is a crdt.Doc as an owner.Engine: collabd's own text CRDT.
type nativeEngine struct {
	doc     *crdt.Doc
	changes []owner.Change // observed during the current apply or edit
}

var _ owner.Engine = (*nativeEngine)(nil)

// Root limits: the same numbers go into the crdt.Limits every document is
// loaded with, so that nothing a write creates can fail to load.
const (
	maxRoots    = 256 // named roots per document
	maxRootName = 256 // bytes in a root name
)

// docLimits are the crdt limits of every document the server holds, loads
// or imports. Whatever a write path accepts must stay within them, or the
// document would not load again: a server-made update (a REST delete over a
// fragmented range, a snapshot import) may hold far more ops than a client
// batch (MaxOpsPerBatch is checked on client updates before they reach the
// owner), so stored entries are bounded by the document size instead.
func (s *Server) docLimits() crdt.Limits { return DocumentLimits(s.cfg) }

// DocumentLimits are the crdt limits a server with cfg holds documents to:
// tools that load stored documents (collabd verify, export) use the same,
// so that they agree with the server on what loads.
func DocumentLimits(cfg Config) crdt.Limits {
	cfg = cfg.withDefaults()
	return crdt.Limits{
		MaxOps:      2*cfg.MaxDocItems + cfg.MaxPending,
		MaxItems:    cfg.MaxDocItems,
		MaxPending:  cfg.MaxPending,
		MaxRoots:    maxRoots,
		MaxRootName: maxRootName,
		MaxSnapshot: cfg.MaxDocBytes,
	}
}

// newNativeEngine loads a native document from a snapshot (nil: a new one).
func (s *Server) newNativeEngine(snapshot []byte) (owner.Engine, error) {
	opts := crdt.Options{Agent: s.agent, Limits: s.docLimits()}
	d := crdt.NewDoc(opts)
	if snapshot != nil {
		var err error
		if d, err = crdt.LoadSnapshot(snapshot, opts); err != nil {
			return nil, err
		}
	}
	e := &nativeEngine{doc: d}
	d.Observe(func(c crdt.Change) {
		e.changes = append(e.changes, owner.Change{Root: c.Root, Pos: c.Pos, Del: c.Del, Ins: c.Ins})
	})
	return e, nil
}

func (e *nativeEngine) Version() uint64 { return e.doc.Version() }
func (e *nativeEngine) Pending() int    { return e.doc.Pending() }

// engineErr maps a crdt error to the owner's.
func engineErr(err error) error {
	switch {
	case errors.Is(err, crdt.ErrPendingFull):
		return fmt.Errorf("%w: %v", owner.ErrPendingFull, err)
	case errors.Is(err, crdt.ErrTooLarge):
		return fmt.Errorf("%w: %v", owner.ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %v", owner.ErrInvalid, err)
}

func (e *nativeEngine) Apply(update []byte, author owner.Author) (owner.Applied, error) {
	if err := e.doc.Verify(); err != nil {
		// A stored snapshot whose structure failed its check on first use.
		return owner.Applied{}, fmt.Errorf("%w: %v", owner.ErrCorrupt, err)
	}
	e.changes = e.changes[:0]
	pendBefore := e.doc.Pending()
	var svBefore crdt.StateVector
	if pendBefore > 0 {
		// Ops may be released from the pending buffer: the fan-out is then
		// the diff against this state vector, which carries them.
		svBefore = e.doc.StateVector()
	}
	before := e.doc.Version()
	var err error
	if author == nil {
		err = e.doc.ApplyUpdate(update)
	} else {
		err = e.doc.ApplyUpdateFrom(update, func(agents []crdt.AgentID, ops, length int) error {
			replicas := make([]uint64, len(agents))
			for i, a := range agents {
				replicas[i] = uint64(a)
			}
			return author.Admit(replicas, ops, length)
		})
	}
	var ref *owner.Refused
	if errors.As(err, &ref) {
		return owner.Applied{}, err
	}
	if err != nil {
		return owner.Applied{}, engineErr(err)
	}
	version := e.doc.Version()
	res := owner.Applied{Changes: e.takeChanges(), Visible: version != before, New: version != before || e.doc.Pending() > pendBefore}
	if pendBefore > 0 && version != before {
		res.Released, res.Fanout = true, e.doc.EncodeDiff(svBefore)
	}
	return res, nil
}

// takeChanges returns the observed changes (a fresh slice: the owner keeps
// them in its change log).
func (e *nativeEngine) takeChanges() []owner.Change {
	if len(e.changes) == 0 {
		return nil
	}
	out := slices.Clone(e.changes)
	e.changes = e.changes[:0]
	return out
}

func (e *nativeEngine) StateVector() []byte { return crdt.EncodeStateVector(e.doc.StateVector()) }

func (e *nativeEngine) Diff(sv []byte) ([]byte, error) {
	v, err := crdt.DecodeStateVector(sv, crdt.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", owner.ErrInvalid, err)
	}
	if err := e.doc.Verify(); err != nil {
		// A stored snapshot whose structure failed its check on first use.
		return nil, fmt.Errorf("%w: %v", owner.ErrCorrupt, err)
	}
	return e.doc.EncodeDiff(v), nil
}

func (e *nativeEngine) PendingUpdate() []byte { return e.doc.PendingUpdate() }
func (e *nativeEngine) Snapshot() []byte      { return e.doc.EncodeSnapshot() }
func (e *nativeEngine) Roots() []string       { return e.doc.Roots() }

// Text reads root; reads never create a root (Doc.Text would): roots come
// only from writes that passed the root limits.
func (e *nativeEngine) Text(root string) (string, bool) {
	if !slices.Contains(e.doc.Roots(), root) {
		return "", false
	}
	return e.doc.Text(root).String(), true
}

func (e *nativeEngine) Clock() map[string]uint64 {
	sv := e.doc.StateVector()
	out := make(map[string]uint64, len(sv))
	for a, n := range sv {
		out[fmt.Sprintf("%016x", uint64(a))] = n
	}
	return out
}

func (e *nativeEngine) ResolveCursor(root string, pos []byte) int {
	if !slices.Contains(e.doc.Roots(), root) {
		return -1
	}
	p, err := crdt.DecodeRelPos(pos)
	if err != nil {
		return -1
	}
	i, ok := e.doc.Text(root).Resolve(p)
	if !ok {
		return -1
	}
	return i
}

// Edit checks every position first (all or nothing), then applies.
func (e *nativeEngine) Edit(root string, edits []owner.Prim) ([]byte, []owner.Change, error) {
	exists := slices.Contains(e.doc.Roots(), root)
	if !exists && len(e.doc.Roots()) >= maxRoots {
		return nil, nil, fmt.Errorf("%w: the document has %d roots, the most allowed", owner.ErrTooLarge, maxRoots)
	}
	n := 0
	if exists {
		n = e.doc.Text(root).Len()
	}
	for i, p := range edits {
		if p.Ins != "" {
			if err := crdt.CheckRange(p.Pos, 0, n); err != nil {
				return nil, nil, fmt.Errorf("%w: edit %d: position %d past the end (%d)", owner.ErrOutOfRange, i, p.Pos, n)
			}
			n += utf8.RuneCountInString(p.Ins)
		} else {
			if err := crdt.CheckRange(p.Pos, p.N, n); err != nil {
				return nil, nil, fmt.Errorf("%w: edit %d: deletes %d at %d past the end (%d)", owner.ErrOutOfRange, i, p.N, p.Pos, n)
			}
			n -= p.N
		}
	}
	e.changes = e.changes[:0]
	x := e.doc.Text(root)
	for _, p := range edits {
		var err error
		if p.Ins != "" {
			err = x.Insert(p.Pos, p.Ins)
		} else {
			err = x.Delete(p.Pos, p.N)
		}
		if err != nil {
			// What applied before the error is taken and committed by the
			// owner; the edit fails with the error's kind.
			kind := owner.ErrInvalid
			switch {
			case errors.Is(err, crdt.ErrTooLarge):
				kind = owner.ErrTooLarge
			case errors.Is(err, crdt.ErrPosition):
				kind = owner.ErrOutOfRange
			}
			return e.doc.TakeUpdate(), e.takeChanges(), fmt.Errorf("%w: %v", kind, err)
		}
	}
	return e.doc.TakeUpdate(), e.takeChanges(), nil
}

func (e *nativeEngine) Split(update []byte) [][]byte { return protocol.ChunkUpdate(update) }

// Merge applies from's diff, then its pending ops.
func (e *nativeEngine) Merge(from owner.Engine) ([][]byte, []owner.Change, error) {
	f, ok := from.(*nativeEngine)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a native document", owner.ErrInvalid)
	}
	if err := f.doc.Verify(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", owner.ErrInvalid, err)
	}
	var updates [][]byte
	var changes []owner.Change
	for _, u := range [][]byte{f.doc.EncodeDiff(e.doc.StateVector()), f.doc.PendingUpdate()} {
		if u == nil {
			continue
		}
		res, err := e.Apply(u, nil)
		if err != nil {
			return updates, changes, err
		}
		if res.New {
			updates = append(updates, u)
			changes = append(changes, res.Changes...)
		}
	}
	return updates, changes, nil
}
