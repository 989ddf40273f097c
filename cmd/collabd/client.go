package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/crdt/yjs"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// apiClient talks to a running server's HTTP API (docs/HTTP.md).
type apiClient struct {
	base  string // "http://host:port", no trailing slash
	token string // bearer token; empty in development mode
	hc    *http.Client
}

func newAPIClient(base, token string) (*apiClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url must be http://host:port or https://host, got %q", base)
	}
	// No overall timeout: a backup of a large store may take long. The
	// transport bounds the connection and the wait for headers.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr}}, nil
}

// postJSON sends POST path with v as its JSON body (and the token) and
// returns the response whatever its status; the caller reads it.
func (c *apiClient) postJSON(ctx context.Context, path string, v any) (*http.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.hc.Do(req)
}

// get sends GET path and returns the response when its status is 200; any
// other status becomes an error carrying the server's JSON error.
func (c *apiClient) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096)) // best effort: the status alone is the error
	var e struct {
		Code    int    `json:"code"`
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Code != 0 {
		return nil, fmt.Errorf("GET %s: %s: %s (%d): %s", path, resp.Status, e.Name, e.Code, e.Message)
	}
	return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
}

// docPath is the API path of document id (one URL-encoded path segment).
func docPath(id, suffix string) string {
	return "/v1/docs/" + url.PathEscape(id) + suffix
}

// errInUse: a store held by a running server (each command adds the hint
// that fits its own flags, with inUseHint).
var errInUse = errors.New("is in use by a running server")

// openReadOnly opens the store at path for reading only. A store held by a
// running server is refused quickly with errInUse.
func openReadOnly(path string) (*storage.Store, error) {
	s, err := storage.Open(path, storage.Options{ReadOnly: true, LockTimeout: 2 * time.Second})
	if errors.Is(err, storage.ErrLocked) {
		return nil, fmt.Errorf("%s %w", path, errInUse)
	}
	return s, err
}

// inUseHint adds hint to an errInUse error; other errors pass unchanged.
func inUseHint(err error, hint string) error {
	if errors.Is(err, errInUse) {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}

// loadDoc rebuilds a stored document as the server does: its snapshot
// through crdt.LoadSnapshot, then every log entry of the tail applied.
// loadStored loads a stored document of either kind (the kind from its
// records' prefix, as the server reads it): a native document as a
// crdt.Doc, a Yjs document as a yjs.Doc (the other one nil).
func loadStored(d *storage.Document) (*crdt.Doc, *yjs.Doc, error) {
	kind := owner.KindNative
	first := d.Snapshot
	if first == nil && len(d.Tail) > 0 {
		first = d.Tail[0].Data
	}
	if first != nil {
		k, _, err := owner.RecordKind(first)
		if err != nil {
			return nil, nil, fmt.Errorf("document %q: %w", d.Info.ID, err)
		}
		kind = k
	}
	if kind == owner.KindNative {
		doc, err := loadDoc(d)
		return doc, nil, err
	}
	lim := server.YjsLimits(server.Config{})
	strip := func(rec []byte, what string) ([]byte, error) {
		k, data, err := owner.RecordKind(rec)
		if err == nil && k != owner.KindYjs {
			err = fmt.Errorf("a %s record in a Yjs document", k)
		}
		if err != nil {
			return nil, fmt.Errorf("document %q: %s: %w", d.Info.ID, what, err)
		}
		return data, nil
	}
	doc := yjs.New(lim)
	if d.Snapshot != nil {
		data, err := strip(d.Snapshot, "snapshot")
		if err != nil {
			return nil, nil, err
		}
		if doc, err = yjs.Load(data, lim); err != nil {
			return nil, nil, fmt.Errorf("document %q: snapshot: %w", d.Info.ID, err)
		}
	}
	for _, e := range d.Tail {
		data, err := strip(e.Data, fmt.Sprintf("log entry %d", e.Seq))
		if err != nil {
			return nil, nil, err
		}
		if _, err := doc.Apply(data); err != nil {
			return nil, nil, fmt.Errorf("document %q: log entry %d: %w", d.Info.ID, e.Seq, err)
		}
	}
	return nil, doc, nil
}

func loadDoc(d *storage.Document) (*crdt.Doc, error) {
	// The limits of a server with default settings: verify and export agree
	// with the server on what loads.
	// Eager: the snapshot's whole structure is checked here, not at the
	// first op as the server does (docs/FORMATS.md, loading).
	opts := crdt.Options{Limits: server.DocumentLimits(server.Config{}), Eager: true}
	doc := crdt.NewDoc(opts)
	if d.Snapshot != nil {
		var err error
		if doc, err = crdt.LoadSnapshot(d.Snapshot, opts); err != nil {
			return nil, fmt.Errorf("document %q: snapshot: %w", d.Info.ID, err)
		}
	}
	for _, e := range d.Tail {
		if err := doc.ApplyUpdate(e.Data); err != nil {
			return nil, fmt.Errorf("document %q: log entry %d: %w", d.Info.ID, e.Seq, err)
		}
	}
	return doc, nil
}
