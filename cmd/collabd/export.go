package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/collabd/collabd/crdt/yjs"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
)

// exportedDoc is the JSON an offline export writes: the fields of
// GET /v1/docs/{id} that do not depend on a running server.
type exportedDoc struct {
	ID          string            `json:"id"`
	Version     uint64            `json:"version"`
	Root        string            `json:"root"`
	Text        string            `json:"text"`
	Length      int               `json:"length"`
	Roots       []string          `json:"roots"`
	StateVector map[string]uint64 `json:"state_vector"`
	Pending     int               `json:"pending"`
}

// runExport implements "collabd export": one document as text, JSON or a
// CRDT snapshot, from a running server (--url) or from a data directory no
// server holds (--data).
func runExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("doc", "", "document `id` (required)")
	format := fs.String("format", "text", "text, json or snapshot")
	root := fs.String("root", "", "text root (empty: the server's default, body)")
	base := fs.String("url", "", "a running server, e.g. http://127.0.0.1:8080")
	token := fs.String("token", "", "bearer token for --url (needs read access to the document)")
	data := fs.String("data", "", "data `directory` of a stopped server (holds collabd.db)")
	out := fs.String("out", "", "write to this file instead of stdout")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd export: %v\n", err)
		return 2
	}
	if *id == "" || (*base == "") == (*data == "") || !slices.Contains([]string{"text", "json", "snapshot"}, *format) {
		fmt.Fprintln(stderr, "collabd export: --doc, a --format of text, json or snapshot, and exactly one of --url or --data are required")
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var body []byte
	var err error
	if *base != "" {
		body, err = exportOnline(ctx, *base, *token, *id, *format, *root, stderr)
	} else {
		body, err = exportOffline(ctx, filepath.Join(*data, "collabd.db"), *id, *format, *root)
	}
	if err == nil {
		if *out != "" {
			err = writeFileAtomic(*out, body)
		} else {
			_, err = stdout.Write(body)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "collabd export: %v\n", err)
		return 1
	}
	return 0
}

func exportOnline(ctx context.Context, base, token, id, format, root string, progress io.Writer) ([]byte, error) {
	c, err := newAPIClient(base, token)
	if err != nil {
		return nil, err
	}
	path := docPath(id, "")
	switch format {
	case "text":
		path = docPath(id, "/text")
	case "snapshot":
		path = docPath(id, "/snapshot")
	}
	if root != "" && format != "snapshot" {
		path += "?root=" + url.QueryEscape(root)
	}
	resp, err := c.get(ctx, path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readWithProgress(resp, progress, "export")
}

func exportOffline(ctx context.Context, path, id, format, root string) ([]byte, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	s, err := openReadOnly(path)
	if err != nil {
		return nil, inUseHint(err, "use --url to ask the server, or stop it first")
	}
	defer s.Close()
	stored, err := s.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	doc, ydoc, err := loadStored(stored)
	if err != nil {
		return nil, err
	}
	if ydoc != nil {
		return exportYjs(id, ydoc, format, root)
	}
	if root == "" {
		root = "body"
	}
	var text string
	length := 0
	if slices.Contains(doc.Roots(), root) {
		x := doc.Text(root)
		text, length = x.String(), x.Len()
	}
	switch format {
	case "text":
		return []byte(text), nil
	case "snapshot":
		return doc.EncodeSnapshot(), nil
	}
	sv := doc.StateVector()
	j := exportedDoc{ID: id, Version: doc.Version(), Root: root, Text: text, Length: length, Roots: doc.Roots(),
		StateVector: make(map[string]uint64, len(sv)), Pending: doc.Pending()}
	for a, n := range sv {
		j.StateVector[fmt.Sprintf("%016x", uint64(a))] = n
	}
	b, err := json.Marshal(j)
	return append(b, '\n'), err
}

// writeFileAtomic writes b to path through path.tmp, fsynced, then renamed.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name()) // best effort; the write error is the one to report
		return err
	}
	return finishTmp(f, path)
}

// finishTmp fsyncs and closes f (path.tmp) and renames it to path; on
// failure it removes f.
func finishTmp(f *os.File, path string) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name()) // best effort: no partial file left behind
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		_ = d.Close() // read-only handle
		return err
	}
	return nil
}

// exportYjs exports a Yjs document: its Y.Text root as text, its whole
// state as a Yjs update (snapshot: what PUT …/snapshot with
// application/vnd.yjs.update imports), or JSON with its roots as the
// server's GET /v1/docs/{id} shows them.
func exportYjs(id string, d *yjs.Doc, format, root string) ([]byte, error) {
	switch format {
	case "text":
		if root == "" {
			root = "body"
		}
		return []byte(d.Text(root)), nil
	case "snapshot":
		return d.EncodeState(), nil
	}
	content := map[string]json.RawMessage{}
	for _, r := range d.Roots() {
		switch k := d.RootKind(r); k {
		case yjs.TypeText:
			content[r], _ = json.Marshal(map[string]any{"text": d.Text(r), "delta": json.RawMessage(d.TextDelta(r))})
		case yjs.TypeXmlFrag:
			content[r] = d.ProseMirrorJSON(r, nil)
		case yjs.TypeUnknown:
			content[r] = json.RawMessage("null")
		default:
			content[r] = d.JSON(r, k)
		}
	}
	b, err := json.Marshal(map[string]any{"id": id, "kind": "yjs", "roots": d.Roots(), "content": content})
	return append(b, '\n'), err
}
