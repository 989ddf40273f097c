package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/collabd/collabd/protocol"
)

// opsRoutes registers the operations endpoints: liveness, readiness,
// Prometheus metrics and the hot backup.
func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.cfg.Store.Err(); err != nil {
			http.Error(w, "storage failed", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if !s.cfg.PrivateMetrics {
		mux.Handle("GET /metrics", s.metrics.handler())
	}
	mux.HandleFunc("GET /v1/backup", s.backup)
}

// MetricsHandler serves the server's Prometheus metrics (for a listener of
// its own, with Config.PrivateMetrics).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// readyz answers 200 while the server takes new work: the store has not
// failed and Shutdown has not begun; 503 otherwise (take it out of the load
// balancer).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case closing || s.ctx.Err() != nil:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case s.cfg.Store.Err() != nil:
		http.Error(w, "storage failed", http.StatusServiceUnavailable)
	default:
		if err := s.clusterReady(r.Context()); err != nil {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "cluster: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}
}

// backup is GET /v1/backup: a hot, consistent copy of the whole store
// (storage.Store.Backup, one read transaction) streamed while editing goes
// on. Only a token granting every document ("*") may take it. A failure
// after the first byte cuts the response off (no terminating chunk), so a
// client never mistakes a partial copy for a complete one.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "", AccessRead); !ok {
		return
	}
	if s.cfg.Cluster != nil && !s.backingUp.CompareAndSwap(false, true) {
		// One cluster backup at a time per node: each copy takes the
		// documents' size on disk.
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, protocol.CodeOverloaded, "a backup is being taken on this node; retry later")
		return
	}
	name := "collabd-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	h.Set("Cache-Control", "no-store")
	store := s.cfg.Store
	if s.cfg.Cluster != nil {
		defer s.backingUp.Store(false)
		// Cluster mode: the documents are in JetStream; copy them into a
		// single node's store first, then stream that (clusterBackup). The
		// copy may take minutes: answer now (clients wait for headers a
		// bounded time), so that a failure while copying, like one while
		// streaming, cuts the response off.
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		st, remove, docs, err := s.clusterBackup(r.Context())
		if err != nil {
			s.metrics.backupFailed()
			s.cfg.Logger.Warn("cluster backup failed", "err", err)
			panic(http.ErrAbortHandler) // the client must see a broken stream, not a short file
		}
		defer remove()
		s.cfg.Logger.Info("cluster backup copied", "documents", docs)
		store = st
	}
	n, err := store.Backup(r.Context(), w)
	if err != nil {
		s.metrics.backupFailed()
		s.cfg.Logger.Warn("backup failed", "bytes", n, "err", err)
		panic(http.ErrAbortHandler) // the client must see a broken stream, not a short file
	}
	s.metrics.backupDone()
	s.cfg.Logger.Info("backup streamed", "bytes", n, "remote", r.RemoteAddr)
}
