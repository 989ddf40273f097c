package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// yjsUpdateType is the media type of a Yjs update (a snapshot of a Yjs
// document, Y.encodeStateAsUpdate): PUT …/snapshot imports it into a Yjs
// document, GET …/snapshot of a Yjs document answers with it.
const yjsUpdateType = "application/vnd.yjs.update"

// createBody is the body of POST /v1/docs.
type createBody struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "native" (default) or "yjs"
}

// createDoc creates an empty document of a kind (201), so that the kind
// is fixed before any client writes; 409 if it exists.
func (s *Server) createDoc(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	raw, release, ok := s.readBody(w, r, 64<<10)
	if !ok {
		return
	}
	var body createBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&body)
	release()
	if err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "body: "+err.Error())
		return
	}
	kind, ok := owner.ParseKind(body.Kind)
	if !ok {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, `kind must be "native" or "yjs"`)
		return
	}
	if err := protocol.CheckDocID(body.ID, 0); err != nil {
		writeError(w, 0, protocol.CodeBadDocID, err.Error())
		return
	}
	if _, ok := s.authorize(w, r, body.ID, AccessWrite); !ok {
		return
	}
	err, aerr := ask(r.Context(), s, body.ID, func(reply chan<- error) owner.Msg { return owner.Create{Kind: kind, Reply: reply} })
	if aerr != nil {
		err = aerr
	}
	switch {
	case errors.Is(err, owner.ErrExists):
		writeError(w, http.StatusConflict, protocol.CodeWrongKind, err.Error())
	case err != nil:
		answerErr(w, err)
	default:
		writeJSON(w, http.StatusCreated, map[string]string{"id": body.ID, "kind": kind.String()})
	}
}

// snapshotKind is the kind of document a PUT snapshot body is: a Yjs
// update when the request says so by its Content-Type.
func snapshotKind(r *http.Request) owner.Kind {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == yjsUpdateType {
		return owner.KindYjs
	}
	return owner.KindNative
}
