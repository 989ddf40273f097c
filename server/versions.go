package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
)

// Version history (docs/design/versions.md): the owners take versions
// through versionStore; the HTTP API (http_versions.go) reads them from the
// store and restores through the owners.

// versionStore is the bbolt store as the owners' owner.VersionStore.
type versionStore struct{ s *storage.Store }

var _ owner.VersionStore = versionStore{}

func (a versionStore) SubmitVersion(doc string, v owner.NewVersion) (owner.Pending, error) {
	kind := storage.VersionAuto
	if v.Named {
		kind = storage.VersionNamed
	}
	p, err := a.s.SubmitVersion(doc, storage.NewVersion{Version: v.Version, Kind: kind, Label: v.Label, Authors: v.Authors, Snapshot: v.Snapshot})
	if err != nil {
		return nil, storeErr(err)
	}
	return p, nil
}

// ownerVersions is the owners' version store, nil when history is off.
func (s *Server) ownerVersions() owner.VersionStore {
	if s.cfg.DisableVersions {
		return nil
	}
	if c := s.cfg.Cluster; c != nil { // in JetStream: every node reads the same history
		return clusterVersions{c.Logs}
	}
	return versionStore{s.cfg.Store}
}

// versionTexts loads a version's snapshot (off any owner, with the limits
// every document is loaded with; its kind from the record prefix, as the
// owner stores every record) and returns the text of each of its text
// roots (of a Yjs document: its Y.Text roots; maps, arrays and XML
// fragments are not texts and are left out).
func (s *Server) versionTexts(snapshot []byte) (map[string]string, error) {
	texts, _, err := s.versionEngine(snapshot)
	return texts, err
}

// versionEngine loads a version's snapshot as versionTexts does and returns
// its texts and the loaded engine: a restore sends both to the owner, whose
// engine restores from it the roots that are not texts (a Yjs document's
// maps, arrays and XML fragments: owner.RootRestorer).
func (s *Server) versionEngine(snapshot []byte) (map[string]string, owner.Engine, error) {
	kind, data, err := owner.RecordKind(snapshot)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: version snapshot: %w", storage.ErrCorrupt, err)
	}
	e, err := s.newEngine(kind, data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: version snapshot: %w", storage.ErrCorrupt, err)
	}
	roots := e.Roots()
	if t, ok := e.(interface{ TextRoots() []string }); ok {
		roots = t.TextRoots()
	}
	out := make(map[string]string)
	for _, r := range roots {
		out[r], _ = e.Text(r)
	}
	return out, e, nil
}

// rootDiff is the diff of one root between two texts.
type rootDiff struct {
	Root  string     `json:"root"`
	Edits []diffEdit `json:"edits"`
}

// diffEdit is an edit as JSON: [pos, del, "ins"], the shape of REST edits.
type diffEdit owner.Splice

func (e diffEdit) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{e.Pos, e.Del, e.Ins})
}

// diffTexts diffs every root of from and to (a root missing on one side is
// empty there), or only root when it is set. Unchanged roots are left out.
func diffTexts(from, to map[string]string, root string) []rootDiff {
	var roots []string
	for r := range from {
		roots = append(roots, r)
	}
	for r := range to {
		if _, ok := from[r]; !ok {
			roots = append(roots, r)
		}
	}
	slices.Sort(roots)
	out := []rootDiff{}
	for _, r := range roots {
		if root != "" && r != root {
			continue
		}
		ss := owner.DiffText(from[r], to[r], owner.DiffBudget)
		if len(ss) == 0 {
			continue
		}
		d := rootDiff{Root: r, Edits: make([]diffEdit, len(ss))}
		for i, x := range ss {
			d.Edits[i] = diffEdit(x)
		}
		out = append(out, d)
	}
	return out
}

// versionErr maps the store's version errors to the API's.
func versionErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrNoVersion):
		return &apiErr{protocol.CodeNotJoined, "no such version"}
	case errors.Is(err, storage.ErrNotFound):
		return &apiErr{protocol.CodeNotJoined, "no such document"}
	case errors.Is(err, storage.ErrDeleted):
		return &apiErr{protocol.CodeDocDeleted, "document deleted"}
	case errors.Is(err, storage.ErrInvalidVersion):
		return &apiErr{protocol.CodeBadFrame, err.Error()}
	case errors.Is(err, storage.ErrQueueFull):
		return &apiErr{protocol.CodeOverloaded, "server busy: storage queue full; retry later"}
	}
	return err
}
