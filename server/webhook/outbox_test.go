package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var secret = []byte("webhook-test-secret-of-32-bytes!")

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	h := Sign(secret, now, body)
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify(Sign) = %v", err)
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"other body":   {secret, h, []byte(`{"id":"evt_2"}`), now, ErrSignatureMismatch},
		"other secret": {[]byte("another-secret-of-thirty-two-by!"), h, body, now, ErrSignatureMismatch},
		"replayed":     {secret, h, body, now.Add(time.Hour), ErrSignatureStale},
		"no header":    {secret, "", body, now, ErrSignatureMalformed},
		"garbage":      {secret, "t=x,v1=zz", body, now, ErrSignatureMalformed},
	} {
		if err := Verify(c.secret, c.header, c.body, c.now, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
	// Two signatures (a secret rotation): either one verifies.
	two := h + ",v1=" + Sign([]byte("old-secret-old-secret-old-secret"), now, body)[len("t=1800000000,v1="):]
	if err := Verify(secret, two, body, now, time.Minute); err != nil {
		t.Errorf("rotation header: %v", err)
	}
}

// receiver is an endpoint that verifies signatures and answers with the
// statuses it is given (then 200).
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	statuses []int
	got      chan Event
}

func newReceiver(t *testing.T, statuses ...int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, statuses: statuses, got: make(chan Event, 100)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := Verify(secret, req.Header.Get("Collabd-Signature"), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("signature: %v", err)
		w.WriteHeader(400)
		return
	}
	r.mu.Lock()
	status := 200
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	if status == 200 {
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("Collabd-Event-Id") || ev.Type != req.Header.Get("Collabd-Event-Type") {
			r.t.Errorf("body %s (%v), headers %v", body, err, req.Header)
		}
		r.got <- ev
	}
}

func (r *receiver) wait(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-r.got:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	return Event{}
}

func run(t *testing.T, b *Outbox) {
	done := make(chan struct{})
	ctx, cancel := contextWithCancel()
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Events reach the endpoints whose filter takes them; failures are
// retried until one succeeds; the same id every time.
func TestDeliveryAndRetry(t *testing.T) {
	rc, srv := newReceiver(t, 500, 503)
	other, osrv := newReceiver(t)
	b, err := Open(filepath.Join(t.TempDir(), "o.db"), Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Endpoints: []Endpoint{{URL: srv.URL, Secret: secret}, {URL: osrv.URL, Events: []string{"doc.deleted"}, Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run(t, b)
	ev := Event{ID: NewID(), Type: "doc.changed", Doc: "d", Time: time.Now().UTC(), Data: json.RawMessage(`{"from":1,"to":2}`)}
	if n, err := b.Enqueue(ev); err != nil || n != 1 {
		t.Fatalf("Enqueue = %d, %v; want 1 record (the other endpoint filters doc.deleted only)", n, err)
	}
	if got := rc.wait(t); got.ID != ev.ID || string(got.Data) != `{"from":1,"to":2}` {
		t.Fatalf("delivered %+v", got)
	}
	if _, err := b.Enqueue(Event{ID: NewID(), Type: "doc.deleted", Doc: "d", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rc.wait(t)
	other.wait(t)
	// Deliveries are one at a time: the first event's bookkeeping was done
	// before the later ones went out.
	if st := b.Stats(); st.Delivered < 2 || st.Retried != 2 {
		t.Fatalf("stats %+v, want the first delivered after 2 retries", st)
	}
}

// A record that fails every attempt becomes a dead letter; Retry sends it
// again.
func TestDeadLetterAndRetry(t *testing.T) {
	statuses := make([]int, 3)
	for i := range statuses {
		statuses[i] = 500
	}
	rc, srv := newReceiver(t, statuses...)
	b, err := Open(filepath.Join(t.TempDir(), "o.db"), Options{Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 3,
		Endpoints: []Endpoint{{URL: srv.URL, Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run(t, b)
	ev := Event{ID: NewID(), Type: "doc.created", Doc: "d", Time: time.Now()}
	if _, err := b.Enqueue(ev); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		if _, dead := b.Counts(); dead == 1 {
			break
		}
		select {
		case <-b.Attempted():
		case <-rc.got:
			t.Fatal("delivered despite 500s")
		case <-deadline:
			t.Fatal("no dead letter after 3 failed attempts")
		}
	}
	recs, err := b.List("dead", 10)
	if err != nil || len(recs) != 1 || recs[0].Event.ID != ev.ID || recs[0].Attempts != 3 || recs[0].LastError == "" {
		t.Fatalf("dead letters %+v, %v", recs, err)
	}
	if n, err := b.Retry(recs[0].Seq); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	if got := rc.wait(t); got.ID != ev.ID {
		t.Fatalf("redelivered %s, want %s", got.ID, ev.ID)
	}
}

// What was enqueued survives closing and reopening the file.
func TestOutboxDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	rc, srv := newReceiver(t)
	opts := Options{Endpoints: []Endpoint{{URL: srv.URL, Secret: secret}}}
	b, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for range 5 {
		id := NewID()
		ids[id] = true
		if _, err := b.Enqueue(Event{ID: id, Type: "doc.changed", Doc: "d", Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil { // never delivered: Run was not started
		t.Fatal(err)
	}
	b, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run(t, b)
	for range 5 {
		ev := rc.wait(t)
		if !ids[ev.ID] {
			t.Fatalf("unknown event %s", ev.ID)
		}
		delete(ids, ev.ID)
	}
}

func TestOpenRefusesEndpointWithoutSecret(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "o.db"), Options{Endpoints: []Endpoint{{URL: "http://x"}}}); err == nil {
		t.Fatal("an endpoint without a secret was accepted")
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// FuzzVerify: any header and body; Verify never panics, and accepts only
// what Sign made for that body.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign(secret, now, []byte("{}")), []byte("{}"))
	f.Add("t=1800000000,v1=00", []byte("x"))
	f.Add("t=-1,v1=,v1=zz,t=", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify(secret, header, body, now, time.Hour) == nil && Verify(secret, Sign(secret, now, body), body, now, time.Hour) != nil {
			t.Fatal("Verify accepts a header but not a fresh signature of the same body")
		}
	})
}

func TestEndpointFilter(t *testing.T) {
	for _, c := range []struct {
		events []string
		typ    string
		want   bool
	}{
		{nil, "doc.changed", true},
		{nil, "session.joined", false}, // session events are opt-in
		{[]string{"session.*"}, "session.left", true},
		{[]string{"session.*"}, "doc.created", false},
		{[]string{"doc.deleted"}, "doc.deleted", true},
		{[]string{"doc.deleted"}, "doc.changed", false},
		{[]string{"doc.*", "session.joined"}, "session.joined", true},
	} {
		if got := (Endpoint{Events: c.events}).wants(c.typ); got != c.want {
			t.Errorf("Endpoint{%v}.wants(%s) = %v, want %v", c.events, c.typ, got, c.want)
		}
	}
}
