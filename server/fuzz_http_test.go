package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// fuzzRoutes are the HTTP API's routes; {id} is replaced by the fuzzed id.
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/docs"},
	{"GET", "/v1/docs/{id}"},
	{"DELETE", "/v1/docs/{id}"},
	{"GET", "/v1/docs/{id}/text"},
	{"GET", "/v1/docs/{id}/events"},
	{"GET", "/v1/docs/{id}/changes"},
	{"POST", "/v1/docs/{id}/edits"},
	{"POST", "/v1/docs/{id}/edits"},
	{"POST", "/v1/docs/{id}/edits"},
	{"GET", "/v1/docs/{id}/snapshot"},
	{"PUT", "/v1/docs/{id}/snapshot"},
	{"POST", "/v1/rt"},
	{"POST", "/v1/rt/{id}/frames"},
	{"GET", "/v1/rt/{id}/events"},
	{"GET", "/healthz"},
	{"GET", "/readyz"},
}

var fuzzContentTypes = []string{"application/json", "", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded", "application/merge-patch+json"}

// FuzzHTTPAPI drives the whole HTTP API in-process with random routes,
// ids, queries, content types and bodies against one long-lived server
// (so inputs build on each other's documents). It fails on a panic, on a
// 5xx that is not a capacity or storage refusal, and on a document that a
// write answered 2xx for but that no longer loads from storage, or loads
// with other text than the server serves.
func FuzzHTTPAPI(f *testing.F) {
	snap := crdt.NewDoc(crdt.Options{Agent: 3})
	_ = snap.Text("body").Insert(0, "from a snapshot")
	for _, seed := range []struct {
		route uint8
		id    string
		query string
		ctype uint8
		body  []byte
	}{
		{6, "notes/a", "", 0, []byte(`{"edits":[[0,0,"hello"]]}`)},
		{6, "notes/a", "", 0, []byte(`{"edits":[[9223372036854775807,1,""]]}`)},
		{6, "notes/a", "", 0, []byte(`{"edits":[[1,9223372036854775807,""]],"version":3}`)},
		{6, "notes/a", "", 0, []byte(`{"root":"` + strings.Repeat("r", 300) + `","edits":[[0,0,"x"]]}`)},
		{7, "notes/a", "", 2, []byte(`{"edits":[[0,0,"csrf"]]}`)},
		{8, "b", "", 0, []byte(`{"root":"t","edits":[[0,0,"x"],[1,0,"y"]],"key":"k"}`)},
		{10, "notes/a", "", 3, snap.EncodeSnapshot()},
		{10, "s", "", 3, []byte{0xc1, 0x01, 0xff, 0xff, 0xff, 0x7f}},
		{5, "notes/a", "since=2&wait=1ms&root=body", 0, nil},
		{4, "notes/a", "root=" + strings.Repeat("q", 257), 0, nil},
		{1, "notes/a", "root=ghost", 0, nil},
		{2, "b", "", 0, nil},
		{0, "", "limit=0&after=zz", 0, nil},
		{12, "nosuch", "key=k&seq=1", 3, []byte{0, 0, 0, 0}},
	} {
		f.Add(seed.route, seed.id, seed.query, seed.ctype, seed.body)
	}
	store, err := storage.Open(filepath.Join(f.TempDir(), "fuzz.db"), storage.Options{})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Config{Store: store, IdleUnload: time.Millisecond, MaxSnapshotBytes: 1 << 20,
		OpRate: 1e9, OpBurst: 1 << 30, SSEHeartbeat: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = store.Close()
	})
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, route uint8, id, query string, ctype uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.ReplaceAll(rt.path, "{id}", url.PathEscape(id))
		u := path
		if query != "" {
			u += "?" + url.PathEscape(query)
			u = strings.ReplaceAll(u, "%3D", "=")
			u = strings.ReplaceAll(u, "%26", "&")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, rt.method, "http://127.0.0.1"+u, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.RemoteAddr = "127.0.0.1:5555"
		if ct := fuzzContentTypes[int(ctype)%len(fuzzContentTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s = %d %s", rt.method, u, rec.Code, rec.Body.Bytes())
		}
		if rt.method != "GET" && rec.Code < 300 && strings.HasPrefix(rt.path, "/v1/docs/{id}") {
			checkReloads(t, srv, id)
		}
	})
}

// checkReloads loads document id from storage with the server's limits, as
// a restart would, and compares it with what the server serves.
func checkReloads(t *testing.T, srv *Server, id string) {
	t.Helper()
	stored, err := srv.cfg.Store.Load(context.Background(), id)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrDeleted) {
		return
	}
	if err != nil {
		t.Fatalf("load %q: %v", id, err)
	}
	opts := crdt.Options{Agent: 1, Limits: srv.docLimits()}
	d := crdt.NewDoc(opts)
	if stored.Snapshot != nil {
		if d, err = crdt.LoadSnapshot(stored.Snapshot, opts); err != nil {
			t.Fatalf("%q: acked snapshot does not load: %v", id, err)
		}
	}
	for _, e := range stored.Tail {
		if err := d.ApplyUpdate(e.Data); err != nil {
			t.Fatalf("%q: acked log entry %d does not apply: %v", id, e.Seq, err)
		}
	}
	ctx := context.Background()
	info, err := ask(ctx, srv, id, func(reply chan<- owner.ReadResult) owner.Msg {
		return owner.Read{What: owner.ReadInfo, Reply: reply}
	})
	if err != nil || info.Err != nil {
		return // refused (deleted, capacity): nothing to compare
	}
	served := map[string]string{}
	for _, r := range info.Roots {
		res, err := ask(ctx, srv, id, func(reply chan<- owner.ReadResult) owner.Msg {
			return owner.Read{Root: r, What: owner.ReadText, Reply: reply}
		})
		if err != nil || res.Err != nil {
			return
		}
		served[r] = res.Text
	}
	for r, text := range served {
		got := ""
		if slices.Contains(d.Roots(), r) {
			got = d.Text(r).String()
		}
		if got != text {
			t.Fatalf("%q root %q: reloads as %q, served %q", id, r, got, text)
		}
	}
}
