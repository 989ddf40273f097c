package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// versionRoutes registers the version history endpoints (docs/HTTP.md,
// "Versions").
func (s *Server) versionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/docs/{id}/versions", s.listVersions)
	mux.HandleFunc("POST /v1/docs/{id}/versions", s.postVersion)
	mux.HandleFunc("GET /v1/docs/{id}/versions/{seq}", s.getVersion)
	mux.HandleFunc("GET /v1/docs/{id}/diff", s.getDiff)
	mux.HandleFunc("POST /v1/docs/{id}/restore", s.postRestore)
}

// versionJSON is a version in the HTTP API.
type versionJSON struct {
	Seq     uint64            `json:"seq"`
	Version uint64            `json:"version"` // the document version it copies
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"` // auto or named
	Label   string            `json:"label,omitempty"`
	Authors []string          `json:"authors"`
	Bytes   int               `json:"bytes"`          // size of its snapshot
	Text    map[string]string `json:"text,omitempty"` // root -> text (GET …/versions/{seq} only)
	// Content is a Yjs document's every root as JSON, as GET /v1/docs/{id}
	// shows it (GET …/versions/{seq} only).
	Content map[string]json.RawMessage `json:"content,omitempty"`
}

func toVersionJSON(v storage.Version) versionJSON {
	authors := v.Authors
	if authors == nil {
		authors = []string{}
	}
	return versionJSON{Seq: v.Seq, Version: v.Version, Time: v.Time, Kind: v.Kind.String(), Label: v.Label, Authors: authors, Bytes: v.SnapshotBytes}
}

// versionPage is the answer of GET /v1/docs/{id}/versions: newest first;
// next, when set, is the before= value of the next page.
type versionPage struct {
	Versions []versionJSON `json:"versions"`
	Next     uint64        `json:"next,omitempty"`
}

// historyOn answers 404 when version history is off; it reports whether it
// is on.
func (s *Server) historyOn(w http.ResponseWriter) bool {
	if s.cfg.DisableVersions {
		writeError(w, http.StatusNotFound, protocol.CodeNotJoined, "version history is off on this server")
		return false
	}
	return true
}

// uintParam reads an optional positive integer query parameter (0 when
// absent); on a bad value it has answered the request.
func uintParam(w http.ResponseWriter, r *http.Request, name string, max uint64) (uint64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 || n > max {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, fmt.Sprintf("%s must be an integer from 1 to %d", name, max))
		return 0, false
	}
	return n, true
}

const maxSeq = 1<<63 - 1

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessRead)
	if !ok || !s.historyOn(w) {
		return
	}
	limit, ok := uintParam(w, r, "limit", 1000)
	if !ok {
		return
	}
	before, ok := uintParam(w, r, "before", maxSeq)
	if !ok {
		return
	}
	if limit == 0 {
		limit = 100
	}
	vs, err := s.versionReads().Versions(r.Context(), id, before, int(limit))
	if err != nil {
		answerErr(w, versionErr(err))
		return
	}
	page := versionPage{Versions: make([]versionJSON, len(vs))}
	for i, v := range vs {
		page.Versions[i] = toVersionJSON(v)
	}
	if len(vs) == int(limit) && vs[len(vs)-1].Seq > 1 {
		page.Next = vs[len(vs)-1].Seq
	}
	writeJSON(w, http.StatusOK, page)
}

// seqOf reads the {seq} path value; on a bad one it has answered.
func seqOf(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	n, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || n < 1 || n > maxSeq {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "the version must be an integer from 1")
		return 0, false
	}
	return n, true
}

// loadVersion reads version seq of id with the text of each root.
func (s *Server) loadVersion(r *http.Request, id string, seq uint64) (storage.Version, map[string]string, error) {
	v, err := s.versionReads().Version(r.Context(), id, seq)
	if err != nil {
		return v, nil, versionErr(err)
	}
	texts, err := s.versionTexts(v.Snapshot)
	return v, texts, err
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessRead)
	if !ok || !s.historyOn(w) {
		return
	}
	seq, ok := seqOf(w, r)
	if !ok {
		return
	}
	v, err := s.versionReads().Version(r.Context(), id, seq)
	if err != nil {
		answerErr(w, versionErr(err))
		return
	}
	texts, e, err := s.versionEngine(v.Snapshot)
	if err != nil {
		answerErr(w, err)
		return
	}
	out := toVersionJSON(v)
	out.Text = texts
	if viewer, ok := e.(owner.Viewer); ok {
		out.Content = map[string]json.RawMessage{}
		for root, j := range viewer.Content() {
			out.Content[root] = j
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// diffAnswer is the answer of GET /v1/docs/{id}/diff.
type diffAnswer struct {
	From  uint64     `json:"from"`
	To    uint64     `json:"to,omitempty"` // absent: the current document
	Roots []rootDiff `json:"roots"`        // changed roots only
}

// getDiff is GET /v1/docs/{id}/diff?from=A[&to=B][&root=R]: the edits that
// turn version A's text into version B's (the current document's without
// to), per root, in the shape of REST edits.
func (s *Server) getDiff(w http.ResponseWriter, r *http.Request) {
	id, ok := s.docRequest(w, r, AccessRead)
	if !ok || !s.historyOn(w) {
		return
	}
	from, ok := uintParam(w, r, "from", maxSeq)
	if !ok {
		return
	}
	if from == 0 {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "from (a version) is required")
		return
	}
	to, ok := uintParam(w, r, "to", maxSeq)
	if !ok {
		return
	}
	root := r.URL.Query().Get("root")
	if root != "" {
		if err := checkRoot(root); err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, err.Error())
			return
		}
	}
	_, a, err := s.loadVersion(r, id, from)
	if err != nil {
		answerErr(w, err)
		return
	}
	var b map[string]string
	if to != 0 {
		_, b, err = s.loadVersion(r, id, to)
	} else {
		b, err = s.currentTexts(r, id)
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, diffAnswer{From: from, To: to, Roots: diffTexts(a, b, root)})
}

// currentTexts reads the text of every root of the document as it is now.
func (s *Server) currentTexts(r *http.Request, id string) (map[string]string, error) {
	// One snapshot read gives every root at one version.
	snap, err := ask(r.Context(), s, id, func(reply chan<- owner.ReadResult) owner.Msg {
		return owner.Read{What: owner.ReadSnapshot, Reply: reply}
	})
	if err == nil {
		err = snap.Err
	}
	if err != nil {
		return nil, err
	}
	return s.versionTexts(snap.Snapshot)
}

// versionBody is the body of POST /v1/docs/{id}/versions.
type versionBody struct {
	Label string `json:"label"`
}

// restoreBody is the body of POST /v1/docs/{id}/restore.
type restoreBody struct {
	Version uint64 `json:"version"`
}

// maxVersionBody bounds the bodies of the version endpoints.
const maxVersionBody = 4 << 10

// decodeSmallJSON reads a small JSON body into v (unknown fields refused);
// on failure it has answered.
func (s *Server) decodeSmallJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !requireJSON(w, r) {
		return false
	}
	raw, release, ok := s.readBody(w, r, maxVersionBody)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	release()
	if err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "body: "+err.Error())
		return false
	}
	return true
}

// postVersion is POST /v1/docs/{id}/versions {"label"}: a named version of
// the document as it is now, answered once it is durable.
func (s *Server) postVersion(w http.ResponseWriter, r *http.Request) {
	id, ok := docID(w, r)
	if !ok {
		return
	}
	claims, ok := s.authorize(w, r, id, AccessWrite)
	if !ok || !s.historyOn(w) {
		return
	}
	var body versionBody
	if !s.decodeSmallJSON(w, r, &body) {
		return
	}
	if err := storage.CheckVersionLabel(body.Label); err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, err.Error())
		return
	}
	author := ""
	if claims != nil {
		author = claims.Subject
	}
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.CheckpointResult) owner.Msg {
		return owner.Checkpoint{Label: body.Label, Author: author, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, versionErr(err))
		return
	}
	v, err := s.versionReads().Version(r.Context(), id, res.Seq)
	if err != nil {
		answerErr(w, versionErr(err))
		return
	}
	writeJSON(w, http.StatusCreated, toVersionJSON(v))
}

// restoreAnswer is the answer of POST /v1/docs/{id}/restore.
type restoreAnswer struct {
	Restored uint64 `json:"restored"` // the version restored
	Version  uint64 `json:"version"`  // the document version after the restore's edits
	Applied  int    `json:"applied"`  // primitive text edits applied, plus one per structured (Yjs map, array, fragment) root restored
}

// postRestore is POST /v1/docs/{id}/restore {"version": seq}: the document's
// roots become the version's by server edits (texts: a diff per root; a
// Yjs document's maps, arrays and XML fragments: restored structurally from
// the loaded version, owner.RootRestorer), merged with concurrent edits
// like any edit; answered once durable, then a doc.restored webhook.
func (s *Server) postRestore(w http.ResponseWriter, r *http.Request) {
	id, ok := docID(w, r)
	if !ok {
		return
	}
	claims, ok := s.authorize(w, r, id, AccessWrite)
	if !ok || !s.historyOn(w) {
		return
	}
	var body restoreBody
	if !s.decodeSmallJSON(w, r, &body) {
		return
	}
	if body.Version < 1 || body.Version > maxSeq {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "version must be a version's seq (an integer from 1)")
		return
	}
	v, err := s.versionReads().Version(r.Context(), id, body.Version)
	if err != nil {
		answerErr(w, versionErr(err))
		return
	}
	texts, from, err := s.versionEngine(v.Snapshot)
	if err != nil {
		answerErr(w, err)
		return
	}
	fromKind, _, _ := owner.RecordKind(v.Snapshot) // versionEngine read it already
	res, err := ask(r.Context(), s, id, func(reply chan<- owner.RestoreResult) owner.Msg {
		return owner.Restore{Texts: texts, From: from, Kind: fromKind, Reply: reply}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		answerErr(w, err)
		return
	}
	if s.events != nil {
		subject := ""
		if claims != nil {
			subject = claims.Subject
		}
		data, _ := json.Marshal(map[string]any{"version": body.Version, "doc_version": res.Version, "subject": subject})
		s.events.webhook(id, "doc.restored", data, time.Now())
	}
	writeJSON(w, http.StatusOK, restoreAnswer{Restored: body.Version, Version: res.Version, Applied: res.Applied})
}
