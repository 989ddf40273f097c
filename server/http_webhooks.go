package server

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/webhook"
)

// webhookRecord is a record of GET /v1/webhooks.
type webhookRecord struct {
	Seq       uint64        `json:"seq"`
	Event     webhook.Event `json:"event"`
	URL       string        `json:"url"`
	Attempts  int           `json:"attempts"`
	Next      string        `json:"next,omitempty"`
	LastError string        `json:"last_error,omitempty"`
}

// listWebhooks is GET /v1/webhooks?state=pending|dead&limit=N: the outbox's
// records (an admin route: a token granting "*").
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "", AccessWrite); !ok {
		return
	}
	if s.cfg.Webhooks == nil {
		writeError(w, http.StatusNotFound, protocol.CodeNotJoined, "webhooks are not configured")
		return
	}
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "dead"
	}
	if state != "dead" && state != "pending" {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "state must be pending or dead")
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "limit must be 1..10000")
			return
		}
		limit = n
	}
	recs, err := s.cfg.Webhooks.List(state, limit)
	if err != nil {
		answerErr(w, err)
		return
	}
	out := make([]webhookRecord, 0, len(recs))
	for _, rec := range recs {
		wr := webhookRecord{Seq: rec.Seq, Event: rec.Event, URL: rec.URL, Attempts: rec.Attempts, LastError: rec.LastError}
		if !rec.Next.IsZero() {
			wr.Next = rec.Next.UTC().Format("2006-01-02T15:04:05Z")
		}
		out = append(out, wr)
	}
	pending, dead := s.cfg.Webhooks.Counts()
	writeJSON(w, http.StatusOK, map[string]any{"state": state, "records": out, "pending": pending, "dead": dead})
}

// retryWebhooks is POST /v1/webhooks/retry {"seq": N}: dead letters back
// into the queue (seq absent or 0: all of them).
func (s *Server) retryWebhooks(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "", AccessWrite); !ok || !requireJSON(w, r) {
		return
	}
	if s.cfg.Webhooks == nil {
		writeError(w, http.StatusNotFound, protocol.CodeNotJoined, "webhooks are not configured")
		return
	}
	raw, release, ok := s.readBody(w, r, 4<<10)
	if !ok {
		return
	}
	defer release()
	var body struct {
		Seq uint64 `json:"seq"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "body: "+err.Error())
			return
		}
	}
	n, err := s.cfg.Webhooks.Retry(body.Seq)
	if err != nil {
		answerErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
}
