package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/webhook"
)

// isSubsequence reports whether every code point of sub appears in s, in
// order.
func isSubsequence(sub, s string) bool {
	r := []rune(s)
	i := 0
	for _, c := range sub {
		for i < len(r) && r[i] != c {
			i++
		}
		if i == len(r) {
			return false
		}
		i++
	}
	return true
}

// Two clients (clients/go) type while a version is restored over HTTP:
// every replica converges with the server, the restored text is all there
// (the clients only insert, so it stays a subsequence of the result) with
// their concurrent edits merged around it, and a signed doc.restored
// webhook names the version.
func TestRestoreWhileClientsType(t *testing.T) {
	got := make(chan webhook.Event, 64)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(hookSecret, r.Header.Get("Collabd-Signature"), body, time.Now(), time.Minute); err != nil {
			w.WriteHeader(401)
			return
		}
		var ev webhook.Event
		_ = json.Unmarshal(body, &ev)
		got <- ev
	}))
	defer rcv.Close()
	out, err := webhook.Open(filepath.Join(t.TempDir(), "webhooks.db"), webhook.Options{
		Endpoints: []webhook.Endpoint{{URL: rcv.URL, Events: []string{"doc.restored"}, Secret: hookSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ts := startServer(t, server.Config{Webhooks: out})
	a := join(t, dialClient(t, ts.url(), 11, nil), "r")
	b := join(t, dialClient(t, ts.url(), 12, nil), "r")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const saved = "The version we go back to."
	if err := a.Insert("body", 0, saved); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "POST", docURL(ts, "r", "/versions"), []byte(`{"label":"good"}`), jsonHdr); code != 201 {
		t.Fatalf("named version: %d %s", code, body)
	}
	if err := a.Delete("body", 4, 7); err != nil { // "The we go back to."
		t.Fatal(err)
	}
	if err := a.Insert("body", 0, "Rewritten: "); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}

	// Both type (inserts only) while the restore runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, d := range []interface {
		Edit(func(*crdt.Doc) error) error
	}{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				err := d.Edit(func(doc *crdt.Doc) error {
					x := doc.Text("body")
					return x.Insert(rng.IntN(x.Len()+1), fmt.Sprintf("%c", 'a'+rune(i)*8+rune(n%8)))
				})
				if err != nil {
					t.Errorf("insert: %v", err)
					return
				}
				if n%20 == 19 {
					time.Sleep(time.Millisecond) // a typist's pace, so batches interleave with the restore
				}
			}
		}()
	}
	code, body := do(t, "POST", docURL(ts, "r", "/restore"), []byte(`{"version":1}`), jsonHdr)
	close(stop)
	wg.Wait()
	if code != 200 {
		t.Fatalf("restore: %d %s", code, body)
	}
	for _, d := range []interface{ WaitDurable(context.Context) error }{a, b} {
		if err := d.WaitDurable(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var info struct {
		Text        string         `json:"text"`
		StateVector map[string]any `json:"state_vector"`
	}
	if code, body := do(t, "GET", docURL(ts, "r", ""), nil, nil); code != 200 || json.Unmarshal(body, &info) != nil {
		t.Fatalf("GET doc: %d %s", code, body)
	}
	for _, d := range []interface {
		String(string) string
		Changes() <-chan struct{}
	}{a, b} {
		for d.String("body") != info.Text {
			select {
			case <-d.Changes():
			case <-ctx.Done():
				t.Fatalf("replica %q never reached the server's %q", d.String("body"), info.Text)
			}
		}
	}
	t.Logf("after the restore and concurrent typing: %d code points, %d restored", len([]rune(info.Text)), len([]rune(saved)))
	if !isSubsequence(saved, info.Text) {
		t.Fatalf("after the restore %q does not hold the restored %q", info.Text, saved)
	}
	if isSubsequence("Rewritten: ", info.Text) {
		t.Fatalf("after the restore %q still holds the replaced prefix", info.Text)
	}
	select {
	case ev := <-got:
		var data struct {
			Version    uint64 `json:"version"`
			DocVersion uint64 `json:"doc_version"`
		}
		if ev.Type != "doc.restored" || ev.Doc != "r" || json.Unmarshal(ev.Data, &data) != nil || data.Version != 1 || data.DocVersion == 0 {
			t.Fatalf("webhook %+v, want doc.restored of version 1", ev)
		}
	case <-ctx.Done():
		t.Fatal("no doc.restored webhook")
	}
}
