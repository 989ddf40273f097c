package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/storage"
)

// DefaultRoot is the text root the HTTP API reads and edits when a request
// names none (?root= or "root" in an edit body).
const DefaultRoot = "body"

// answerErr writes err (an *apiErr, a context error, or anything else).
func answerErr(w http.ResponseWriter, err error) {
	var ae *apiErr
	switch {
	case errors.As(err, &ae):
		writeError(w, 0, ae.code, ae.msg)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, protocol.CodeOverloaded, "timed out")
	default:
		writeError(w, 0, protocol.CodeInternal, err.Error())
	}
}

// Root limits: the same numbers go into the crdt.Limits every document is
// loaded with, so that nothing a write creates can fail to load.
const (
	maxRoots    = 256 // named roots per document
	maxRootName = 256 // bytes in a root name
)

// checkRoot checks a root name from a request against the loader's rules.
func checkRoot(root string) error {
	switch {
	case len(root) > maxRootName:
		return fmt.Errorf("root name of %d bytes, more than %d", len(root), maxRootName)
	case !utf8.ValidString(root):
		return errors.New("root name is not UTF-8")
	}
	return nil
}

// hasRoot reports whether the document has root. Reads never create a root
// (Doc.Text would): roots come only from writes that passed the root limits.
func hasRoot(d *crdt.Doc, root string) bool { return slices.Contains(d.Roots(), root) }

// rootOf reads the ?root= parameter (DefaultRoot when absent); on a bad
// name it has answered the request.
func rootOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	root := r.URL.Query().Get("root")
	if root == "" {
		return DefaultRoot, true
	}
	if err := checkRoot(root); err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, err.Error())
		return "", false
	}
	return root, true
}

// docRequest checks the {id} of a request and the access it needs; on
// failure it has answered.
func (s *Server) docRequest(w http.ResponseWriter, r *http.Request, need Access) (string, bool) {
	id, ok := docID(w, r)
	if !ok {
		return "", false
	}
	if _, ok := s.authorize(w, r, id, need); !ok {
		return "", false
	}
	return id, true
}

// writeOwner runs fn on the owner of id once the document is known not to
// be refused. When fn has queued a server-made update (it reports true), it
// waits until that update is durable: an HTTP write answers 200 only once it
// survives a crash.
func (s *Server) writeOwner(ctx context.Context, id string, fn func(o *owner, durable func(error)) (bool, error)) error {
	durable := make(chan error, 1)
	var wait bool
	var failed error
	err := s.callOwner(ctx, id, func(o *owner) {
		if e := o.refusal(); e != nil {
			failed = e
			return
		}
		wait, failed = fn(o, func(err error) { durable <- err })
	})
	if err == nil {
		err = failed
	}
	if err == nil && wait {
		select {
		case err = <-durable:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

// readDoc answers a read of document {id}: it checks the id and read access,
// then runs fn on the owner of an existing, loadable document. It reports
// whether fn ran (otherwise the error has been answered).
func (s *Server) readDoc(w http.ResponseWriter, r *http.Request, fn func(id string, o *owner)) bool {
	id, ok := s.docRequest(w, r, AccessRead)
	if !ok {
		return false
	}
	var failed error
	err := s.callOwner(r.Context(), id, func(o *owner) {
		if e := o.refusal(); e != nil {
			failed = e
			return
		}
		if !o.exists && o.doc.Version() == 0 {
			failed = &apiErr{protocol.CodeNotJoined, "no such document"}
			return
		}
		fn(id, o)
	})
	if err == nil {
		err = failed
	}
	if err != nil {
		answerErr(w, err)
		return false
	}
	return true
}

// docInfo is the JSON of GET /v1/docs/{id}.
type docInfo struct {
	ID          string            `json:"id"`
	Version     uint64            `json:"version"`
	Root        string            `json:"root"`
	Text        string            `json:"text"`
	Length      int               `json:"length"` // code points of text
	Roots       []string          `json:"roots"`
	StateVector map[string]uint64 `json:"state_vector"` // agent (16 hex digits) -> next seq
	Pending     int               `json:"pending"`      // ops waiting for dependencies
	Presence    int               `json:"presence"`     // peers connected
	Sessions    int               `json:"sessions"`
}

func (s *Server) getDoc(w http.ResponseWriter, r *http.Request) {
	root, ok := rootOf(w, r)
	if !ok {
		return
	}
	var info docInfo
	if !s.readDoc(w, r, func(id string, o *owner) {
		sv := o.doc.StateVector()
		info = docInfo{ID: id, Version: o.doc.Version(), Root: root, Roots: o.doc.Roots(), StateVector: make(map[string]uint64, len(sv)),
			Pending: o.doc.Pending(), Presence: o.pres.set.Len(), Sessions: len(o.subs)}
		if slices.Contains(info.Roots, root) {
			x := o.doc.Text(root)
			info.Text, info.Length = x.String(), x.Len()
		}
		for a, n := range sv {
			info.StateVector[fmt.Sprintf("%016x", uint64(a))] = n
		}
	}) {
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) getText(w http.ResponseWriter, r *http.Request) {
	root, ok := rootOf(w, r)
	if !ok {
		return
	}
	var text string
	var version uint64
	if !s.readDoc(w, r, func(_ string, o *owner) {
		if hasRoot(o.doc, root) {
			text = o.doc.Text(root).String()
		}
		version = o.doc.Version()
	}) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Collabd-Version", strconv.FormatUint(version, 10))
	_, _ = io.WriteString(w, text)
}

// listEntry is one document of GET /v1/docs.
type listEntry struct {
	ID            string    `json:"id"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	LastSeq       uint64    `json:"last_seq"`
	SnapshotBytes int64     `json:"snapshot_bytes"`
	LogEntries    int64     `json:"log_entries"`
	LogBytes      int64     `json:"log_bytes"`
}

// listPage is the answer of GET /v1/docs: the page's readable documents and,
// when more may follow, the after= value of the next page.
type listPage struct {
	Docs []listEntry `json:"docs"`
	Next string      `json:"next,omitempty"`
}

func (s *Server) listDocs(w http.ResponseWriter, r *http.Request) {
	// Any valid token may list: it sees the documents it may read.
	claims, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "limit must be 1..10000")
			return
		}
		limit = n
	}
	docs, err := s.cfg.Store.List(r.Context(), storage.ListOptions{After: q.Get("after"), Limit: limit})
	if err != nil {
		answerErr(w, err)
		return
	}
	out := []listEntry{}
	for _, d := range docs {
		if d.Deleted || (claims != nil && claims.access(d.ID) < AccessRead) {
			continue
		}
		out = append(out, listEntry{ID: d.ID, Created: d.Created, Updated: d.Updated, LastSeq: d.LastSeq,
			SnapshotBytes: d.SnapshotBytes, LogEntries: d.LogEntries, LogBytes: d.LogBytes})
	}
	page := listPage{Docs: out}
	if len(docs) == limit {
		// More may follow; a token that reads few documents may get a short
		// (even empty) page, so the cursor is the last id scanned.
		page.Next = docs[len(docs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// editsBody is the body of POST /v1/docs/{id}/edits.
type editsBody struct {
	Edits   []splice `json:"edits"`
	Version *uint64  `json:"version,omitempty"`
	Key     string   `json:"key,omitempty"`
	Root    string   `json:"root,omitempty"`
}

// UnmarshalJSON reads an edit as [pos, del, "ins"].
func (s *splice) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 3 {
		return errors.New(`an edit is [pos, del, "ins"]`)
	}
	if err := json.Unmarshal(raw[0], &s.Pos); err != nil || s.Pos < 0 {
		return errors.New("pos must be a non-negative integer")
	}
	if err := json.Unmarshal(raw[1], &s.Del); err != nil || s.Del < 0 {
		return errors.New("del must be a non-negative integer")
	}
	if err := json.Unmarshal(raw[2], &s.Ins); err != nil {
		return errors.New("ins must be a string")
	}
	return nil
}

// editResult is the answer of POST /v1/docs/{id}/edits.
type editResult struct {
	Version uint64 `json:"version"`
	Applied int    `json:"applied"` // primitive edits applied (after rebasing)
	Replay  bool   `json:"replay,omitempty"`
}

func (s *Server) postEdits(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok || !requireJSON(w, r) {
		return
	}
	raw, release, ok := s.readBody(w, r, int64(s.cfg.MaxFrame))
	if !ok {
		return
	}
	var body editsBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&body)
	release()
	if err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "body: "+err.Error())
		return
	}
	if len(body.Edits) > s.cfg.MaxOpsPerBatch {
		writeError(w, 0, protocol.CodeTooManyOps, fmt.Sprintf("more than %d edits", s.cfg.MaxOpsPerBatch))
		return
	}
	if body.Root == "" {
		body.Root = DefaultRoot
	}
	if err := checkRoot(body.Root); err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, err.Error())
		return
	}
	if len(body.Key) > 256 {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "key over 256 bytes")
		return
	}
	for i, e := range body.Edits {
		// No position or length past the largest document can be valid;
		// bounding them here keeps every later sum far from overflow.
		if e.Pos > s.cfg.MaxDocItems || e.Del > s.cfg.MaxDocItems {
			writeError(w, 0, protocol.CodeInvalidOp, fmt.Sprintf("edit %d: position or length past the largest document (%d)", i, s.cfg.MaxDocItems))
			return
		}
	}
	var res editResult
	err = s.writeOwner(r.Context(), id, func(o *owner, durable func(error)) (bool, error) {
		var err error
		res, err = o.edit(body, durable)
		return err == nil && !res.Replay, err
	})
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// edit applies a REST edit batch on the owner goroutine.
func (o *owner) edit(body editsBody, reply func(error)) (editResult, error) {
	if e := o.refusal(); e != nil {
		return editResult{}, e
	}
	if body.Key != "" {
		if r, ok := o.idem.get(body.Key); ok {
			r.Replay = true
			return r, nil
		}
	}
	now := o.doc.Version()
	var ps []prim
	if body.Version != nil {
		changes, ok := o.changes.since(*body.Version, now)
		if !ok {
			return editResult{}, &apiErr{protocol.CodeResync, fmt.Sprintf("version %d is not in the recent history (now %d): read the document and retry", *body.Version, now)}
		}
		ps = rebase(body.Edits, splicesOf(changes, body.Root))
	} else {
		ps = prims(body.Edits)
	}
	if !hasRoot(o.doc, body.Root) && len(o.doc.Roots()) >= maxRoots {
		return editResult{}, &apiErr{protocol.CodeDocTooLarge, fmt.Sprintf("the document has %d roots, the most allowed", maxRoots)}
	}
	n := 0
	if hasRoot(o.doc, body.Root) {
		n = o.doc.Text(body.Root).Len()
	}
	for i, p := range ps { // check every position first: all or nothing
		if p.Ins != "" {
			if p.Pos < 0 || p.Pos > n {
				return editResult{}, &apiErr{protocol.CodeInvalidOp, fmt.Sprintf("edit %d: position %d past the end (%d)", i, p.Pos, n)}
			}
			n += utf8.RuneCountInString(p.Ins)
		} else {
			if p.Pos < 0 || p.N < 0 || p.Pos > n || p.N > n-p.Pos {
				return editResult{}, &apiErr{protocol.CodeInvalidOp, fmt.Sprintf("edit %d: deletes %d at %d past the end (%d)", i, p.N, p.Pos, n)}
			}
			n -= p.N
		}
	}
	if len(ps) == 0 {
		return editResult{Version: o.doc.Version()}, nil
	}
	x := o.doc.Text(body.Root)
	before := o.doc.Version()
	var applyErr error
	for _, p := range ps {
		if p.Ins != "" {
			applyErr = x.Insert(p.Pos, p.Ins)
		} else {
			applyErr = x.Delete(p.Pos, p.N)
		}
		if applyErr != nil {
			break
		}
	}
	res := editResult{Version: o.doc.Version(), Applied: len(ps)}
	// What applied is committed even if a later edit hit the document's size
	// limit (the only failure left after the checks above).
	o.commitServerUpdate(before, o.doc.TakeUpdate(), reply)
	if applyErr != nil {
		return editResult{}, &apiErr{protocol.CodeDocTooLarge, applyErr.Error()}
	}
	if body.Key != "" {
		o.idem.put(body.Key, res)
	}
	return res, nil
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	var snap []byte
	var version uint64
	var name string
	if !s.readDoc(w, r, func(id string, o *owner) {
		snap, version, name = o.doc.EncodeSnapshot(), o.doc.Version(), hex.EncodeToString([]byte(id))
	}) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Collabd-Version", strconv.FormatUint(version, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.collabd"`, name))
	_, _ = w.Write(snap)
}

// putSnapshot merges a snapshot into the document as CRDT ops: what the
// snapshot has that the document lacks is added; nothing anyone wrote is
// overwritten. An empty document becomes the snapshot (a restore).
func (s *Server) putSnapshot(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok {
		return
	}
	body, release, ok := s.readBody(w, r, int64(s.cfg.MaxSnapshotBytes))
	if !ok {
		return
	}
	in, err := crdt.LoadSnapshot(body, crdt.Options{Agent: s.agent, Limits: s.docLimits()})
	release()
	if err != nil {
		writeError(w, 0, protocol.CodeInvalidOp, "snapshot: "+err.Error())
		return
	}
	var version uint64
	err = s.writeOwner(r.Context(), id, func(o *owner, durable func(error)) (bool, error) {
		// What the snapshot has that the document lacks, then the ops the
		// snapshot holds pending (they may be what the document's own
		// pending ops wait for, or wait on something still to come).
		// Commits complete in order: the last reply says both are durable.
		pending := in.PendingUpdate()
		reply := durable
		if pending != nil {
			reply = func(error) {}
		}
		if err := o.applyServerUpdate(in.EncodeDiff(o.doc.StateVector()), reply); err != nil {
			return false, &apiErr{protocol.CodeInvalidOp, err.Error()}
		}
		if pending != nil {
			if err := o.applyServerUpdate(pending, durable); err != nil {
				return false, &apiErr{protocol.CodeInvalidOp, err.Error()}
			}
		}
		version = o.doc.Version()
		return true, nil
	})
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"version": version})
}

func (s *Server) deleteDoc(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok {
		return
	}
	err := s.writeOwner(r.Context(), id, func(o *owner, _ func(error)) (bool, error) {
		return false, o.deleteDoc()
	})
	if err != nil {
		answerErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
