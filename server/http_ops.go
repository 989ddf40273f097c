package server

import "net/http"

// opsRoutes registers the operations endpoints.
func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.cfg.Store.Err(); err != nil {
			http.Error(w, "storage failed", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
