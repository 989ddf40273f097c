package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// An application embeds collabd: it opens the store, creates the server
// with hooks, mounts its handler beside its own routes, and reacts to
// document changes (here: printing them; an app would index or notify).
func Example_embedding() {
	dir, _ := os.MkdirTemp("", "collabd-example")
	defer os.RemoveAll(dir)
	store, err := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	changed := make(chan server.Change, 1)
	srv, err := server.New(server.Config{
		Store:         store,
		EventDebounce: 50 * time.Millisecond,
		Hooks: server.Hooks{
			OnLoad: func(ctx context.Context, doc string, exists bool) {
				fmt.Printf("loaded %s (stored before: %v)\n", doc, exists)
			},
			OnChange: func(ctx context.Context, c server.Change) { changed <- c },
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv.Handler()) // collabd's API beside the app's own routes
	mux.HandleFunc("/app/hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "the app") })
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	req, _ := http.NewRequest("POST", hs.URL+"/v1/docs/notes%2Fhello/edits", strings.NewReader(`{"edits":[[0,0,"hello world"]]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	c := <-changed
	fmt.Printf("changed %s: version %d to %d, created %v, text %q\n", c.Doc, c.From, c.To, c.Created, c.Text["body"])
	// Output:
	// loaded notes/hello (stored before: false)
	// changed notes/hello: version 0 to 11, created true, text "hello world"
}
