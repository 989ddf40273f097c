// Package demo serves the demo page of `collabd serve`: a document with
// everyone's cursors and a status line, built from clients/js/demo by `make
// demo` into static/ (committed, so the binary builds without Node). The
// page talks to the server's public API only; ?mode= picks the editor:
// plain text in CodeMirror on collabd's client (the default: /v1/ws, or
// /v1/rt when WebSockets are blocked), rich text in TipTap on a
// HocuspocusProvider (mode=rich: /v1/hocuspocus), or CodeMirror on
// y-websocket (mode=yjs-code: /v1/yjs). In auth mode it takes ?token=.
//
// Handler is stateless and safe for concurrent use.
package demo

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page at "/" and its assets under "/demo/". Mount it
// for the patterns "GET /{$}" and "GET /demo/" beside the server's routes.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /demo/", http.StripPrefix("/demo/", noDirs(http.FileServerFS(sub))))
	return mux
}

// noDirs refuses directory listings.
func noDirs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
