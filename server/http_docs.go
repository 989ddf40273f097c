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
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// DefaultRoot is the text root the HTTP API reads and edits when a request
// names none (?root= or "root" in an edit body).
const DefaultRoot = "body"

// apiErr is an HTTP API failure with its protocol code.
type apiErr struct {
	code protocol.Code
	msg  string
}

func (e *apiErr) Error() string { return e.msg }

// answerErr writes err: an *apiErr or an owner refusal with its code, a
// context error, or anything else.
func answerErr(w http.ResponseWriter, err error) {
	var ae *apiErr
	var ref *owner.Refused
	switch {
	case errors.As(err, &ae):
		writeError(w, 0, ae.code, ae.msg)
	case errors.As(err, &ref):
		writeError(w, 0, ref.Code, ref.Message)
	case errors.Is(err, owner.ErrNoDocument):
		writeError(w, 0, protocol.CodeNotJoined, "no such document")
	case errors.Is(err, owner.ErrBusy):
		writeError(w, 0, protocol.CodeOverloaded, "server busy: storage queue full; retry later")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, protocol.CodeOverloaded, "timed out")
	default:
		writeError(w, 0, protocol.CodeInternal, err.Error())
	}
}

// checkRoot checks a root name from a request against the loader's rules.
func checkRoot(root string) error {
	return crdt.CheckRootName(root, crdt.Limits{MaxRootName: maxRootName})
}

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

// acquire is Registry.Acquire with ErrCapacity as the retryable
// CodeOverloaded.
func (s *Server) acquire(ctx context.Context, id string) (docRef, error) {
	if s.node != nil {
		r, err := s.node.Acquire(ctx, id)
		if err != nil {
			if errors.Is(err, cluster.ErrNodeClosed) || errors.Is(err, owner.ErrClosed) {
				return nil, &apiErr{protocol.CodeGoingAway, "server shutting down"}
			}
			if ctx.Err() == nil {
				return nil, &apiErr{protocol.CodeDocUnloading, "the document's owner is not reachable now; retry: " + err.Error()}
			}
			return nil, err
		}
		return r, nil
	}
	o, err := s.reg.Acquire(ctx, id)
	switch {
	case errors.Is(err, owner.ErrCapacity):
		s.metrics.CapacityRefusal()
		return nil, &apiErr{protocol.CodeOverloaded, "server busy: document capacity reached; retry later"}
	case errors.Is(err, owner.ErrClosed):
		return nil, &apiErr{protocol.CodeGoingAway, "server shutting down"}
	}
	if err != nil {
		return nil, err
	}
	return localRef{o, s.reg}, nil
}

// subscribe is acquire for a subscriber (a session's document, a door's):
// in cluster mode the owner is found by its Join, in the background
// (cluster.Node.Subscribe), so that one document whose owner moves does
// not hold up the connection's other documents.
func (s *Server) subscribe(ctx context.Context, id string) (docRef, error) {
	if s.node == nil {
		return s.acquire(ctx, id)
	}
	r, err := s.node.Subscribe(id)
	if err != nil {
		return nil, &apiErr{protocol.CodeGoingAway, "server shutting down"}
	}
	return r, nil
}

// ask sends the owner of id the message msg builds around a reply channel
// and waits for the reply (for a write: until it is durable), or for ctx.
func ask[R any](ctx context.Context, s *Server, id string, msg func(reply chan<- R) owner.Msg) (R, error) {
	var zero R
	o, err := s.acquire(ctx, id)
	if err != nil {
		return zero, err
	}
	defer o.Release()
	reply := make(chan R, 1)
	if !o.Send(ctx, msg(reply)) {
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		return zero, &apiErr{protocol.CodeGoingAway, "server shutting down"}
	}
	select {
	case r := <-reply:
		return r, nil
	case <-o.Done():
		select {
		case r := <-reply: // answered before the owner exited
			return r, nil
		default:
			return zero, &apiErr{protocol.CodeGoingAway, "server shutting down"}
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// read answers a read of document {id}: it checks the id and read access
// and asks the owner for a view. On failure it has answered the request.
func (s *Server) read(w http.ResponseWriter, r *http.Request, root string, what owner.ReadWhat) (string, owner.ReadResult, bool) {
	id, ok := s.docRequest(w, r, AccessRead)
	if !ok {
		return "", owner.ReadResult{}, false
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.ReadResult) owner.Msg {
		return owner.Read{Root: root, What: what, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, err)
		return "", res, false
	}
	return id, res, true
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
	Kind        string            `json:"kind"` // "native" or "yjs"
	// Yjs documents: every root as JSON (Y.Text: {text, delta}; XmlFragment:
	// ProseMirror JSON; Map, Array: their JSON) and the awareness states by
	// client id.
	Content   map[string]json.RawMessage `json:"content,omitempty"`
	Awareness map[string]json.RawMessage `json:"awareness,omitempty"`
}

func (s *Server) getDoc(w http.ResponseWriter, r *http.Request) {
	root, ok := rootOf(w, r)
	if !ok {
		return
	}
	id, res, ok := s.read(w, r, root, owner.ReadInfo)
	if !ok {
		return
	}
	info := docInfo{ID: id, Version: res.Version, Root: root, Text: res.Text, Length: utf8.RuneCountInString(res.Text),
		Roots: res.Roots, StateVector: res.Clock, Pending: res.Pending, Presence: res.Peers, Sessions: res.Sessions, Kind: res.Kind.String()}
	if res.Kind == owner.KindYjs {
		info.Content = map[string]json.RawMessage{}
		for r, v := range res.Content {
			info.Content[r] = v
		}
		info.Awareness = map[string]json.RawMessage{}
		for c, st := range res.Awareness {
			info.Awareness[strconv.FormatUint(c, 10)] = json.RawMessage(st)
		}
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) getText(w http.ResponseWriter, r *http.Request) {
	root, ok := rootOf(w, r)
	if !ok {
		return
	}
	_, res, ok := s.read(w, r, root, owner.ReadText)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Collabd-Version", strconv.FormatUint(res.Version, 10))
	_, _ = io.WriteString(w, res.Text)
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
	claims, ok := s.authenticate(w, r, "")
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
	if s.cfg.Cluster != nil {
		s.listClusterDocs(w, r, claims, q.Get("after"), limit)
		return
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
	Edits   []jsonSplice `json:"edits"`
	Version *uint64      `json:"version,omitempty"`
	Key     string       `json:"key,omitempty"`
	Root    string       `json:"root,omitempty"`
}

// jsonSplice is an edit as JSON: [pos, del, "ins"].
type jsonSplice owner.Splice

// UnmarshalJSON reads an edit as [pos, del, "ins"].
func (s *jsonSplice) UnmarshalJSON(b []byte) error {
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
	edits := make([]owner.Splice, len(body.Edits))
	for i, e := range body.Edits {
		// No position or length past the largest document can be valid;
		// bounding them here keeps every later sum far from overflow.
		if e.Pos > s.cfg.MaxDocItems || e.Del > s.cfg.MaxDocItems {
			writeError(w, 0, protocol.CodeInvalidOp, fmt.Sprintf("edit %d: position or length past the largest document (%d)", i, s.cfg.MaxDocItems))
			return
		}
		edits[i] = owner.Splice(e)
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.EditResult) owner.Msg {
		return owner.Edit{Root: body.Root, Edits: edits, Version: body.Version, Key: body.Key, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, editResult{Version: res.Version, Applied: res.Applied, Replay: res.Replay})
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	id, res, ok := s.read(w, r, "", owner.ReadSnapshot)
	if !ok {
		return
	}
	ctype, ext := "application/octet-stream", "collabd"
	if res.Kind == owner.KindYjs {
		ctype, ext = yjsUpdateType, "yjs"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Collabd-Version", strconv.FormatUint(res.Version, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, hex.EncodeToString([]byte(id)), ext))
	_, _ = w.Write(res.Snapshot)
}

// putSnapshot merges a snapshot into the document as CRDT ops: what the
// snapshot has that the document lacks is added, its pending ops too;
// nothing anyone wrote is overwritten. An empty document becomes the
// snapshot (a restore). The snapshot is decoded here, off the owner.
func (s *Server) putSnapshot(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok {
		return
	}
	body, release, ok := s.readBody(w, r, int64(s.cfg.MaxSnapshotBytes))
	if !ok {
		return
	}
	kind := snapshotKind(r)
	in, err := s.newEngine(kind, body)
	if ne, ok := in.(*nativeEngine); ok && err == nil {
		// A snapshot from outside is checked whole here, off the owner (a
		// stored one is checked on its first op: docs/FORMATS.md, loading).
		err = ne.doc.Verify()
	}
	release()
	if err != nil {
		code := protocol.CodeInvalidOp
		if errors.Is(err, crdt.ErrTooLarge) || errors.Is(err, yjs.ErrTooLarge) {
			code = protocol.CodeDocTooLarge // a document, or a compressed body, past MaxDocBytes
		}
		writeError(w, 0, code, "snapshot: "+err.Error())
		return
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.ImportResult) owner.Msg {
		return owner.Import{Kind: kind, From: in, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"version": res.Version})
}

func (s *Server) deleteDoc(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok {
		return
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- error) owner.Msg { return owner.Delete{Reply: reply} })
	if err == nil {
		err = res
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// postMessage is POST /v1/docs/{id}/messages: an ephemeral JSON message to
// every client of the document (WebSocket and fallback sessions, SSE
// followers, long polls waiting now). It is not stored: whoever is not
// connected never sees it.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessWrite)
	if !ok || !requireJSON(w, r) {
		return
	}
	data, release, ok := s.readBody(w, r, int64(s.cfg.MaxMessage))
	if !ok {
		return
	}
	defer release()
	if !json.Valid(data) {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "the body is not JSON")
		return
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.BroadcastResult) owner.Msg {
		return owner.Broadcast{Data: bytes.Clone(data), Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"delivered": res.Delivered})
}
