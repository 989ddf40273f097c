package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// Version history in cluster mode: versions live in JetStream (the
// replicated store's versions stream, one subject per document), so any
// node lists and reads them; the owner of a document takes them as on a
// single node.

// versionReader reads versions: the bbolt store, or the replicated one.
type versionReader interface {
	Versions(ctx context.Context, id string, before uint64, limit int) ([]storage.Version, error)
	Version(ctx context.Context, id string, seq uint64) (storage.Version, error)
}

var (
	_ versionReader      = (*storage.Store)(nil)
	_ versionReader      = clusterVersions{}
	_ owner.VersionStore = clusterVersions{}
)

// versionReads is where the HTTP API reads versions.
func (s *Server) versionReads() versionReader {
	if c := s.cfg.Cluster; c != nil {
		return clusterVersions{c.Logs}
	}
	return s.cfg.Store
}

// clusterVersions is the replicated store's version history as the
// owners' VersionStore and the API's versionReader.
type clusterVersions struct{ js *jetstream.Store }

func (c clusterVersions) SubmitVersion(doc string, v owner.NewVersion) (owner.Pending, error) {
	meta := cluster.VersionMeta{Version: v.Version, Named: v.Named, Label: v.Label, Authors: v.Authors}.Encode()
	p, err := c.js.SubmitVersion(doc, meta, v.Snapshot)
	if errors.Is(err, jetstream.ErrBusy) {
		return nil, fmt.Errorf("%w: %w", owner.ErrBusy, err)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (c clusterVersions) Versions(ctx context.Context, id string, before uint64, limit int) ([]storage.Version, error) {
	vs, err := c.js.Versions(ctx, id, before, limit)
	if err != nil {
		return nil, clusterVersionErr(err)
	}
	out := make([]storage.Version, 0, len(vs))
	for _, v := range vs {
		sv, err := fromStored(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", id, err)
		}
		out = append(out, sv)
	}
	return out, nil
}

func (c clusterVersions) Version(ctx context.Context, id string, seq uint64) (storage.Version, error) {
	v, err := c.js.Version(ctx, id, seq)
	if err != nil {
		return storage.Version{}, clusterVersionErr(err)
	}
	sv, err := fromStored(v)
	if err != nil {
		return storage.Version{}, fmt.Errorf("%q: %w", id, err)
	}
	return sv, nil
}

// fromStored decodes a stored version's metadata.
func fromStored(v jetstream.StoredVersion) (storage.Version, error) {
	m, err := cluster.DecodeVersionMeta(v.Meta)
	if err == nil {
		err = storage.CheckVersionLabel(m.Label)
	}
	if err != nil {
		return storage.Version{}, fmt.Errorf("%w: version %d: %w", storage.ErrCorrupt, v.Seq, err)
	}
	kind := storage.VersionAuto
	if m.Named {
		kind = storage.VersionNamed
	}
	return storage.Version{Seq: v.Seq, Time: m.At(v.Time), Version: m.Version, Kind: kind, Label: m.Label, Authors: m.Authors,
		Snapshot: v.Snapshot, SnapshotBytes: v.Size}, nil
}

// clusterVersionErr maps the replicated store's errors to the ones
// versionErr answers.
func clusterVersionErr(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrNoVersion):
		return fmt.Errorf("%w: %w", storage.ErrNoVersion, err)
	case errors.Is(err, jetstream.ErrDeleted):
		return fmt.Errorf("%w: %w", storage.ErrDeleted, err)
	case errors.Is(err, jetstream.ErrCorrupt):
		return fmt.Errorf("%w: %w", storage.ErrCorrupt, err)
	}
	return err
}
