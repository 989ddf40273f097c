package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/collabd/collabd/protocol"
)

// Handler returns the server's HTTP routes (docs/HTTP.md, docs/openapi.yaml):
// the WebSocket endpoint, the document API, the SSE and long-poll feeds, and
// the operations endpoints (health, metrics, backup).
//
// Document ids are one path segment: an id containing "/" is sent
// URL-encoded ("notes%2Ftoday").
//
// Every request passes the guard first (guard.go: Host, Origin and request
// body rules).
func (s *Server) Handler() http.Handler { return s.guard(s.routes()) }

// routes is the route table behind Handler's guard.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	mux.HandleFunc("GET /v1/yjs/{doc...}", s.serveYWebsocket)
	mux.HandleFunc("GET /v1/hocuspocus", s.serveHocuspocus)
	mux.HandleFunc("GET /v1/docs", s.listDocs)
	mux.HandleFunc("POST /v1/docs", s.createDoc)
	mux.HandleFunc("GET /v1/docs/{id}", s.getDoc)
	mux.HandleFunc("DELETE /v1/docs/{id}", s.deleteDoc)
	mux.HandleFunc("GET /v1/docs/{id}/text", s.getText)
	mux.HandleFunc("GET /v1/docs/{id}/events", s.serveEvents)
	mux.HandleFunc("GET /v1/docs/{id}/changes", s.longPoll)
	mux.HandleFunc("POST /v1/docs/{id}/edits", s.postEdits)
	mux.HandleFunc("GET /v1/docs/{id}/snapshot", s.getSnapshot)
	mux.HandleFunc("PUT /v1/docs/{id}/snapshot", s.putSnapshot)
	mux.HandleFunc("POST /v1/docs/{id}/messages", s.postMessage)
	s.versionRoutes(mux)
	mux.HandleFunc("GET /v1/webhooks", s.listWebhooks)
	mux.HandleFunc("POST /v1/webhooks/retry", s.retryWebhooks)
	mux.HandleFunc("POST /v1/rt", s.rtCreate)
	mux.HandleFunc("GET /v1/rt/{session}/events", s.rtEvents)
	mux.HandleFunc("POST /v1/rt/{session}/frames", s.rtFrames)
	mux.HandleFunc("DELETE /v1/rt/{session}", s.rtClose)
	s.opsRoutes(mux)
	return mux
}

// apiError is the JSON body of every HTTP API error: a code from the
// protocol's table (docs/PROTOCOL.md), its name, and a message.
type apiError struct {
	Code    protocol.Code `json:"code"`
	Name    string        `json:"name"`
	Message string        `json:"message"`
}

// httpStatus maps a protocol code to an HTTP status.
func httpStatus(c protocol.Code) int {
	switch c {
	case protocol.CodeUnauthorized, protocol.CodeTokenExpired:
		return http.StatusUnauthorized
	case protocol.CodeForbidden, protocol.CodeReadOnly:
		return http.StatusForbidden
	case protocol.CodeDocDeleted:
		return http.StatusGone
	case protocol.CodeNotJoined:
		return http.StatusNotFound
	case protocol.CodeRateLimited, protocol.CodeTooManyRequests:
		return http.StatusTooManyRequests
	case protocol.CodeFrameTooLarge, protocol.CodeDocTooLarge, protocol.CodeTooManyOps:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeResync, protocol.CodeWrongKind:
		return http.StatusConflict
	case protocol.CodeGoingAway, protocol.CodeOverloaded, protocol.CodeStorageFailed, protocol.CodeDocUnloading:
		return http.StatusServiceUnavailable
	case protocol.CodeInternal, protocol.CodeDocCorrupt:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// writeError answers with the JSON error for code (status from httpStatus
// unless status is non-zero). Retryable codes get a Retry-After header.
func writeError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	if status == 0 {
		status = httpStatus(code)
	}
	if code.Retry() {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, apiError{Code: code, Name: httpName(code), Message: msg})
}

// httpName is a code's name in an HTTP answer: the protocol's name, except
// where that names a WebSocket situation (a missing document is "not
// found", not "not joined"; a malformed request is "bad request", not "bad
// frame").
func httpName(c protocol.Code) string {
	switch c {
	case protocol.CodeNotJoined:
		return "not found"
	case protocol.CodeBadFrame:
		return "bad request"
	case protocol.CodeFrameTooLarge:
		return "too large"
	}
	return c.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate checks the request's credentials (a token in
// Authorization: Bearer or the token query parameter; else, with an auth
// callback, the Authorization header or the auth cookie) for doc ("" when
// the request is not about one document); in development mode it returns
// nil claims. It reads nothing but headers, so a refusal comes before any
// body is read. On failure it has answered the request.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, doc string) (*Claims, bool) {
	if s.auth == nil {
		return nil, true
	}
	c, err := s.auth.authenticate(r.Context(), s.httpAuthInput(r, doc), time.Now())
	if err == nil {
		return c, true
	}
	s.refused(r, "auth", "err", err.Error())
	switch code := authCode(err); code {
	case protocol.CodeTokenExpired:
		writeError(w, 0, code, "token expired")
	case protocol.CodeForbidden:
		writeError(w, 0, code, "the credential does not grant this")
	case protocol.CodeOverloaded:
		writeError(w, 0, code, "authentication is unavailable; retry")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="collabd"`)
		writeError(w, 0, protocol.CodeUnauthorized, "a valid token is required")
	}
	return nil, false
}

// authorize authenticates the request and checks that its token grants
// need on doc ("" for an endpoint about every document: a "*" grant). On
// failure it has answered the request.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, doc string, need Access) (*Claims, bool) {
	c, ok := s.authenticate(w, r, doc)
	if !ok || c == nil {
		return c, ok
	}
	if doc == "" {
		if !c.grantsAll(need) {
			s.refused(r, "auth", "sub", c.Subject, "doc", "*")
			writeError(w, 0, protocol.CodeForbidden, "the token does not grant every document")
			return nil, false
		}
		return c, true
	}
	if a := c.access(doc); a < need {
		s.refused(r, "auth", "sub", c.Subject, "doc", doc)
		code := protocol.CodeForbidden
		if a == AccessRead {
			code = protocol.CodeReadOnly
		}
		writeError(w, 0, code, "the token does not grant this document")
		return nil, false
	}
	return c, true
}

// docID reads and checks the {id} path value.
func docID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := protocol.CheckDocID(id, 0); err != nil {
		writeError(w, 0, protocol.CodeBadDocID, err.Error())
		return "", false
	}
	return id, true
}
