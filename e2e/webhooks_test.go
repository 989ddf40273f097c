package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/webhook"
)

var hookSecret = []byte("e2e-webhook-secret-of-32-bytes!!")

// Document events reach a webhook receiver signed and in order: created,
// changed (debounced: a burst of edits is one event with the whole version
// range and its authors), deleted; and the embedding program's hooks see
// the same, with the text.
func TestWebhooksAndHooks(t *testing.T) {
	got := make(chan webhook.Event, 64)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(hookSecret, r.Header.Get("Collabd-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(401)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		got <- ev
	}))
	defer rcv.Close()
	sess := make(chan webhook.Event, 16)
	srcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev webhook.Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		sess <- ev
	}))
	defer srcv.Close()
	out, err := webhook.Open(filepath.Join(t.TempDir(), "webhooks.db"), webhook.Options{
		Endpoints: []webhook.Endpoint{{URL: rcv.URL, Secret: hookSecret}, {URL: srcv.URL, Events: []string{"session.*"}, Secret: hookSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	changes := make(chan server.Change, 16)
	deleted := make(chan string, 4)
	ts := startServer(t, server.Config{Webhooks: out, WebhookText: true, EventDebounce: 200 * time.Millisecond,
		Hooks: server.Hooks{
			OnChange: func(_ context.Context, c server.Change) { changes <- c },
			OnDelete: func(_ context.Context, doc string) { deleted <- doc },
		}})
	next := func() webhook.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no webhook")
		}
		return webhook.Event{}
	}
	for i, ins := range []string{"a", "b", "c"} {
		body, _ := json.Marshal(map[string]any{"edits": [][]any{{i, 0, ins}}})
		if code, b := do(t, "POST", docURL(ts, "w", "/edits"), body, jsonHdr); code != 200 {
			t.Fatalf("edit: %d %s", code, b)
		}
	}
	if ev := next(); ev.Type != "doc.created" || ev.Doc != "w" || ev.ID == "" {
		t.Fatalf("first webhook %+v, want doc.created", ev)
	}
	ev := next()
	var ch server.Change
	if err := json.Unmarshal(ev.Data, &ch); ev.Type != "doc.changed" || err != nil || ch.From != 0 || ch.To != 3 || ch.Text["body"] != "abc" {
		t.Fatalf("second webhook %+v (%+v %v), want one doc.changed 0→3 with the text", ev, ch, err)
	}
	select {
	case c := <-changes:
		if c.Doc != "w" || c.From != 0 || c.To != 3 || c.Text["body"] != "abc" || !c.Created {
			t.Fatalf("OnChange %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnChange")
	}
	if code, _ := do(t, "DELETE", docURL(ts, "w", ""), nil, nil); code != 204 {
		t.Fatalf("delete = %d", code)
	}
	if ev := next(); ev.Type != "doc.deleted" || ev.Doc != "w" {
		t.Fatalf("third webhook %+v, want doc.deleted", ev)
	}
	select {
	case d := <-deleted:
		if d != "w" {
			t.Fatalf("OnDelete %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnDelete")
	}
	// session.* events are opt-in: only the second endpoint gets them.
	c := dialClient(t, ts.url(), 9, nil)
	join(t, c, "s")
	_ = c.Close()
	for _, want := range []string{"session.joined", "session.left"} {
		select {
		case ev := <-sess:
			if ev.Type != want || ev.Doc != "s" {
				t.Fatalf("session endpoint got %+v, want %s", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", want)
		}
	}
	select {
	case ev := <-got:
		t.Fatalf("the doc endpoint got %+v", ev)
	default:
	}
}
