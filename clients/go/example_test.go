package collab_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// Two clients edit one document through a real server; one waits until its
// edit is durable, the other sees it arrive.
func Example() {
	dir, _ := os.MkdirTemp("", "collab-example")
	defer os.RemoveAll(dir)
	store, _ := storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{})
	defer store.Close()
	srv, _ := server.New(server.Config{Store: store})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice, err := collab.Dial(ctx, url, collab.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	bob, err := collab.Dial(ctx, url, collab.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	a, _ := alice.Join(ctx, "notes")
	b, _ := bob.Join(ctx, "notes")

	_ = a.Insert("body", 0, "hello")
	if err := a.WaitDurable(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("alice saved:", a.Status().Saved())

	for b.String("body") != "hello" {
		select {
		case <-b.Changes():
		case <-ctx.Done():
			fmt.Println("timeout")
			return
		}
	}
	fmt.Println("bob sees:", b.String("body"))
	// Output:
	// alice saved: true
	// bob sees: hello
}
