package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// yjsEngine is a Yjs document (crdt/yjs) as an owner.Engine. The doors
// that speak y-websocket and Hocuspocus (issue 14) put sessions in front of
// it; the owner, storage, limits and feeds are the same as for native
// documents.
//
// Versions: Yjs deletes do not move a state vector, so a Yjs document's
// version is the sum of its state vector plus the content it has seen
// deleted since it was loaded: it grows with every change while the
// document is loaded, and after a reload it restarts from the state
// vector's sum (followers that resume across a reload get a reset).
type yjsEngine struct {
	doc     *yjs.Doc
	lim     yjs.Limits
	client  uint64 // the server's own Yjs client id, for server-side edits
	deletes uint64 // changes that moved no state vector (deletes), since the load
	pending int    // structs waiting after the last apply
	pendDel int    // delete ranges waiting after the last apply
	// claims binds Yjs client ids to the token subject that first wrote
	// structs of them while the document is loaded (auth mode only): a
	// session of another subject writing under a claimed id is refused as
	// forged (4509). Yjs assumes a client id is one writer's: two writers
	// of one (id, clock) would leave replicas that never converge.
	claims map[uint64]string
}

var (
	_ owner.Engine       = (*yjsEngine)(nil)
	_ owner.RootRestorer = (*yjsEngine)(nil)
)

// YjsLimits are the limits a server with cfg loads Yjs documents with
// (the CLI's verify and export load them the same way).
func YjsLimits(cfg Config) yjs.Limits { return yjsLimits(cfg.withDefaults()) }

// yjsLimits are the Yjs limits of a server with cfg.
func yjsLimits(cfg Config) yjs.Limits {
	return yjs.Limits{MaxUpdateBytes: max(cfg.MaxSnapshotBytes, cfg.MaxFrame), MaxDocBytes: cfg.MaxDocBytes,
		MaxPendingStructs: cfg.MaxPending * 16}
}

// newEngine loads a document of kind from a stored snapshot (nil: new).
func (s *Server) newEngine(kind owner.Kind, snapshot []byte) (owner.Engine, error) {
	if kind == owner.KindYjs {
		return s.newYjsEngine(snapshot)
	}
	return s.newNativeEngine(snapshot)
}

// newYjsEngine loads a Yjs document from a stored state (nil: a new one).
func (s *Server) newYjsEngine(state []byte) (owner.Engine, error) {
	lim := yjsLimits(s.cfg)
	e := &yjsEngine{lim: lim, client: uint64(s.agent) & (1<<53 - 1)} // Yjs client ids are at most 2^53-1
	if state == nil {
		e.doc = yjs.New(lim)
		return e, nil
	}
	d, err := yjs.Load(state, lim)
	if err != nil {
		return nil, err
	}
	st := d.Stats()
	e.doc, e.pending, e.pendDel = d, st.Pending, st.PendingDeletes
	return e, nil
}

func (e *yjsEngine) Version() uint64 { return e.doc.StateSum() + e.deletes }
func (e *yjsEngine) Pending() int    { return e.pending }

// yjsErr maps a crdt/yjs error to the owner's.
func yjsErr(err error) error {
	switch {
	case errors.Is(err, yjs.ErrPendingFull):
		return fmt.Errorf("%w: %v", owner.ErrPendingFull, err)
	case errors.Is(err, yjs.ErrTooLarge):
		return fmt.Errorf("%w: %v", owner.ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %v", owner.ErrInvalid, err)
}

// admit checks an update of author against its limits and the client-id
// claims (see yjsEngine.claims).
func (e *yjsEngine) admit(author owner.Author, length int, clients []uint64) error {
	if author == nil {
		return nil // the store's own entries, the server's edits
	}
	if err := author.Admit(nil, 1, length); err != nil {
		return err
	}
	a, ok := author.(owner.Authored)
	if !ok || a.Subject() == "" {
		return nil // development mode: no subjects to bind
	}
	subject := a.Subject()
	for _, c := range clients {
		switch held := e.claims[c]; {
		case c == e.client:
			return &owner.Refused{Code: protocol.CodeForgedAgent, Message: "structs under the server's own Yjs client id"}
		case held != "" && held != subject:
			return &owner.Refused{Code: protocol.CodeForgedAgent, Message: fmt.Sprintf("structs under Yjs client id %d, which another user writes", c)}
		}
	}
	if e.claims == nil {
		e.claims = map[uint64]string{}
	}
	for _, c := range clients {
		e.claims[c] = subject
	}
	return nil
}

// Apply integrates an update. In auth mode the client ids it brings new
// structs of are bound to its author's subject (claims).
func (e *yjsEngine) Apply(update []byte, author owner.Author) (owner.Applied, error) {
	before := e.doc.StateSum()
	// With structs or deletes waiting, this update may release them: the
	// others must then get them too, not only this update (they never got
	// the update that went pending). The state vector before the apply
	// lets the fan-out be everything new since (Diff).
	var svBefore []byte
	if e.pending > 0 || e.pendDel > 0 {
		svBefore = e.doc.StateVector()
	}
	var refused error
	res, err := e.doc.ApplyAdmitted(update, func(clients []uint64) error {
		refused = e.admit(author, len(update), clients)
		return refused
	})
	if refused != nil {
		return owner.Applied{}, refused
	}
	if err != nil {
		return owner.Applied{}, yjsErr(err)
	}
	after := e.doc.StateSum()
	if res.Changed && after == before {
		e.deletes++ // a delete: the content changed, the state vector did not
	}
	grew := res.Pending > e.pending || res.PendingDeletes > e.pendDel
	// Only a real release costs a Diff (which carries the whole delete
	// set): a struct stuck in the buffer must not turn every later
	// update's fan-out into a copy of the document's deletes.
	released := svBefore != nil && res.Changed && (res.Released > 0 || res.PendingDeletes < e.pendDel)
	e.pending, e.pendDel = res.Pending, res.PendingDeletes
	out := owner.Applied{New: res.Changed || grew, Visible: res.Changed}
	if released {
		fan, err := e.doc.Diff(svBefore)
		if err != nil {
			return owner.Applied{}, yjsErr(err) // unreachable: the state vector is the document's own
		}
		out.Released, out.Fanout = true, fan
	}
	if res.Cleanup != nil {
		out.Extra = [][]byte{res.Cleanup}
		e.deletes++
	}
	return out, nil
}

func (e *yjsEngine) StateVector() []byte { return e.doc.StateVector() }

func (e *yjsEngine) Diff(sv []byte) ([]byte, error) {
	if len(sv) == 0 { // no state vector: the whole document
		return e.doc.EncodeState(), nil
	}
	d, err := e.doc.Diff(sv)
	if err != nil {
		return nil, yjsErr(err)
	}
	return d, nil
}

// PendingUpdate is nil: a Yjs state (Snapshot, Diff) carries its pending
// structs already, as Yjs's encodeStateAsUpdate does.
func (e *yjsEngine) PendingUpdate() []byte { return nil }
func (e *yjsEngine) Snapshot() []byte      { return e.doc.EncodeState() }
func (e *yjsEngine) Roots() []string       { return e.doc.Roots() }

func (e *yjsEngine) Text(root string) (string, bool) {
	if !slices.Contains(e.doc.Roots(), root) {
		return "", false
	}
	return e.doc.Text(root), true
}

func (e *yjsEngine) Clock() map[string]uint64 {
	sv, err := yjs.DecodeStateVector(e.doc.StateVector(), e.lim)
	out := make(map[string]uint64, len(sv))
	if err != nil {
		return out
	}
	for c, n := range sv {
		out[strconv.FormatUint(c, 10)] = n
	}
	return out
}

// ResolveCursor: Yjs relative positions come with the doors (awareness);
// none resolves yet.
func (e *yjsEngine) ResolveCursor(string, []byte) int { return -1 }

// Edit applies code-point edits to the Y.Text root as the server's client,
// converting positions to the UTF-16 units Yjs counts. All positions are
// checked against the text before anything applies.
func (e *yjsEngine) Edit(root string, edits []owner.Prim) ([]byte, []owner.Change, error) {
	if k := e.doc.RootKind(root); k != yjs.TypeText && k != yjs.TypeUnknown {
		// Text edits inside a map, an array or an XML fragment (a TipTap
		// document) would put strings where its editors expect elements.
		return nil, nil, fmt.Errorf("%w: root %q is a %s, not a text", owner.ErrInvalid, root, k)
	}
	text, _ := e.Text(root)
	n := utf8.RuneCountInString(text)
	for i, p := range edits {
		size := 0
		if p.Ins == "" {
			size = p.N
		}
		if p.Pos < 0 || p.Pos > n || size < 0 || size > n-p.Pos {
			return nil, nil, fmt.Errorf("%w: edit %d: position %d, length %d, text of %d", owner.ErrOutOfRange, i, p.Pos, size, n)
		}
		if p.Ins != "" {
			n += utf8.RuneCountInString(p.Ins)
		} else {
			n -= p.N
		}
	}
	var updates [][]byte
	var changes []owner.Change
	for _, p := range edits {
		if p.Ins == "" && p.N == 0 {
			continue // deletes nothing: no update, no change
		}
		runes := []rune(text)
		at := len(utf16.Encode(runes[:p.Pos]))
		var u []byte
		var err error
		change := owner.Change{Root: root, Pos: p.Pos, Ins: p.Ins}
		if p.Ins != "" {
			u, err = e.doc.InsertText(e.client, root, at, p.Ins)
		} else {
			size := len(utf16.Encode(runes[p.Pos : p.Pos+p.N]))
			u, err = e.doc.DeleteText(e.client, root, at, size)
			change = owner.Change{Root: root, Pos: p.Pos, Del: p.N}
		}
		if err == nil {
			changes = append(changes, change)
			if p.Ins == "" {
				e.deletes++
			}
		}
		if err != nil {
			if len(updates) == 0 {
				return nil, nil, yjsErr(err)
			}
			merged, _ := yjs.MergeUpdates(updates, e.lim) // what applied before the error
			return merged, changes, yjsErr(err)
		}
		updates = append(updates, u)
		text, _ = e.Text(root)
	}
	if len(updates) == 0 {
		return nil, nil, nil
	}
	merged, err := yjs.MergeUpdates(updates, e.lim)
	if err != nil {
		return nil, nil, yjsErr(err)
	}
	return merged, changes, nil
}

// Split: a Yjs update goes out whole (the doors frame it).
func (e *yjsEngine) Split(update []byte) [][]byte { return [][]byte{update} }

// MergesWhole: Merge stores the other replica's whole state as one update
// (owner.WholeMerger).
func (e *yjsEngine) MergesWhole() bool { return true }

// Merge integrates another Yjs replica's whole state (pending structs
// included).
func (e *yjsEngine) Merge(from owner.Engine) ([][]byte, []owner.Change, error) {
	f, ok := from.(*yjsEngine)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a Yjs document", owner.ErrInvalid)
	}
	u := f.doc.EncodeState()
	res, err := e.Apply(u, nil)
	if err != nil {
		return nil, nil, err
	}
	if !res.New {
		return nil, nil, nil
	}
	return append([][]byte{u}, res.Extra...), nil, nil
}

// RootJSON is a root that is not a Y.Text as JSON (ProseMirror JSON for
// an XML fragment).
func (e *yjsEngine) RootJSON(root string) ([]byte, bool) {
	if !slices.Contains(e.doc.Roots(), root) {
		return nil, false
	}
	switch k := e.doc.RootKind(root); k {
	case yjs.TypeText, yjs.TypeUnknown:
		return nil, false
	case yjs.TypeXmlFrag:
		return e.doc.ProseMirrorJSON(root, nil), true
	default:
		return e.doc.JSON(root, k), true
	}
}

// Content is every root as JSON: a Y.Text as its text and rich-text delta,
// an XmlFragment as ProseMirror JSON (TipTap's getJSON()), a Map or Array
// as Yjs's toJSON(); a root no update has typed yet is null.
func (e *yjsEngine) Content() map[string][]byte {
	out := make(map[string][]byte, len(e.doc.Roots()))
	for _, r := range e.doc.Roots() {
		switch k := e.doc.RootKind(r); k {
		case yjs.TypeText:
			text, _ := json.Marshal(e.doc.Text(r))
			out[r] = slices.Concat([]byte(`{"text":`), text, []byte(`,"delta":`), e.doc.TextDelta(r), []byte("}"))
		case yjs.TypeXmlFrag:
			out[r] = e.doc.ProseMirrorJSON(r, nil)
		case yjs.TypeUnknown:
			out[r] = []byte("null")
		default:
			out[r] = e.doc.JSON(r, k)
		}
	}
	return out
}

// TextRoots lists the roots that are Y.Text (version history restores
// those as text).
func (e *yjsEngine) TextRoots() []string {
	var out []string
	for _, r := range e.doc.Roots() {
		if e.doc.RootKind(r) == yjs.TypeText {
			out = append(out, r)
		}
	}
	return out
}

// structured reports whether a root of kind is restored as a whole
// structure (RestoreRoot) rather than as text.
func structured(k yjs.TypeKind) bool {
	return k != yjs.TypeText && k != yjs.TypeXmlText && k != yjs.TypeUnknown
}

// StructuredRoots lists the roots of the document or of from (a Yjs
// version) that are maps, arrays or XML fragments on one side and not text
// on the other: RestoreRoot restores them. A root that is text on one side
// and structured on the other goes the text way (a Yjs root has one type).
func (e *yjsEngine) StructuredRoots(from owner.Engine) []string {
	f, ok := from.(*yjsEngine)
	if !ok {
		return nil
	}
	var out []string
	for _, r := range slices.Concat(e.doc.Roots(), f.doc.Roots()) {
		a, b := e.doc.RootKind(r), f.doc.RootKind(r)
		if slices.Contains(out, r) || a == yjs.TypeText || b == yjs.TypeText || !(structured(a) || structured(b)) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// RestoreRoot makes a map, array or XML fragment root equal to the same
// root of from (a Yjs version) as the server's client: keys set and deleted
// one by one, elements and fragment children that differ deleted and
// inserted as deep copies, equal ones kept (crdt/yjs RestoreRoot). Yjs
// changes of these roots are not text changes: changes is nil, followers
// read the root's JSON.
func (e *yjsEngine) RestoreRoot(root string, from owner.Engine) ([]byte, []owner.Change, error) {
	f, ok := from.(*yjsEngine)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a Yjs document", owner.ErrInvalid)
	}
	before := e.doc.StateSum()
	u, err := e.doc.RestoreRoot(e.client, root, f.doc)
	if err != nil {
		return nil, nil, yjsErr(err)
	}
	if u != nil && e.doc.StateSum() == before {
		e.deletes++ // deletes only: the version must still move
	}
	return u, nil, nil
}
