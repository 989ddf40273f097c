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

// Alice places her caret after "hello"; Bob sees it, with the name the
// server gave her session, and it stays after "hello" when Bob types in
// front of it.
func Example_presence() {
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

	_ = a.Insert("body", 0, "hello world")
	_ = a.SetCursor("body", 5, 5)

	// aliceCaret waits until Bob sees Alice's caret at want.
	aliceCaret := func(want int) (collab.Peer, bool) {
		for {
			for _, p := range b.Peers() {
				if p.Session == a.Self() && p.Cursor.Resolved && p.Cursor.Head == want {
					return p, true
				}
			}
			select {
			case <-b.PresenceChanges():
			case <-b.Changes():
			case <-ctx.Done():
				return collab.Peer{}, false
			}
		}
	}
	p, ok := aliceCaret(5)
	if !ok {
		fmt.Println("timeout")
		return
	}
	fmt.Println("bob sees a guest:", strings.HasPrefix(p.User.Name, "Guest "))
	fmt.Println("alice's caret:", p.Cursor.Head)

	_ = b.Insert("body", 0, ">> ")
	if _, ok := aliceCaret(8); !ok {
		fmt.Println("timeout")
		return
	}
	fmt.Printf("after bob types: %q|%q\n", b.String("body")[:8], b.String("body")[8:])
	// Output:
	// bob sees a guest: true
	// alice's caret: 5
	// after bob types: ">> hello"|" world"
}
