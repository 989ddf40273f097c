package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// Operations in cluster mode (docs/CLUSTER.md, "Operations"): the list of
// documents and the backup read the replicated store (JetStream), not
// this node's bbolt file, which holds nothing of the cluster's documents.

// clusterListEntry is one document of GET /v1/docs in cluster mode: the
// replicated log keeps no per-document sizes, so only these fields.
type clusterListEntry struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Updated string `json:"updated"`
	LastSeq uint64 `json:"last_seq"`
}

type clusterListPage struct {
	Docs []clusterListEntry `json:"docs"`
	Next string             `json:"next,omitempty"`
}

// listClusterDocs answers GET /v1/docs from the document index.
func (s *Server) listClusterDocs(w http.ResponseWriter, r *http.Request, claims *Claims, after string, limit int) {
	page, err := s.cfg.Cluster.Logs.List(r.Context(), after, limit)
	if errors.Is(err, jetstream.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "after: not a cursor of this cluster's list (pass back next)")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, protocol.CodeOverloaded, "cluster: listing failed; retry: "+err.Error())
		return
	}
	out := clusterListPage{Docs: []clusterListEntry{}, Next: page.Next}
	for _, d := range page.Docs {
		if claims != nil && claims.access(d.ID) < AccessRead {
			continue
		}
		out.Docs = append(out.Docs, clusterListEntry{ID: d.ID, Created: d.Created.UTC().Format(timeJSON),
			Updated: d.Updated.UTC().Format(timeJSON), LastSeq: d.LastSeq})
	}
	writeJSON(w, http.StatusOK, out)
}

// timeJSON is how encoding/json writes a time.Time.
const timeJSON = "2006-01-02T15:04:05.999999999Z07:00"

// backupWorkers is how many documents a cluster backup copies at once:
// their reads overlap and their imports share commits
// (BenchmarkClusterBackup). Each holds one document in memory, twice (as
// loaded and as encoded for Import).
const backupWorkers = 16

// clusterBackup copies every document of the replicated store into a new
// bbolt store (a temporary directory beside this node's data), the format
// of a single node's backup, and returns it open. Each document is read
// consistently (jetstream.Store.Load: its snapshot and the log after it,
// as one owner's writes left them); documents are read one after the
// other, so the whole is not one point in time. remove deletes the copy.
func (s *Server) clusterBackup(ctx context.Context) (st *storage.Store, remove func(), docs int, err error) {
	dir, err := os.MkdirTemp(filepath.Dir(s.cfg.Store.Path()), ".cluster-backup-")
	if err != nil {
		return nil, nil, 0, fmt.Errorf("cluster backup: %w", err)
	}
	st, err = storage.Open(filepath.Join(dir, "collabd.db"), storage.Options{Logger: s.cfg.Logger})
	if err != nil {
		_ = os.RemoveAll(dir) // best effort; the open error is the one to report
		return nil, nil, 0, fmt.Errorf("cluster backup: %w", err)
	}
	remove = func() {
		_ = st.Close()        // a copy about to be deleted
		_ = os.RemoveAll(dir) // best effort: a leftover is named .cluster-backup-*
	}
	docs, err = copyCluster(ctx, s.cfg.Cluster.Logs, st, backupWorkers)
	if err != nil {
		remove()
		return nil, nil, 0, err
	}
	return st, remove, docs, nil
}

// copyCluster imports every listed document of logs into st, workers at
// a time.
func copyCluster(ctx context.Context, logs *jetstream.Store, st *storage.Store, workers int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards first and n
		first  error
		n      int
		slots  = make(chan struct{}, workers)
		failed = func(err error) {
			mu.Lock()
			if first == nil {
				first = err
				cancel()
			}
			mu.Unlock()
		}
	)
	for after := ""; ctx.Err() == nil; {
		page, err := logs.List(ctx, after, 1000)
		if err != nil {
			failed(fmt.Errorf("cluster backup: %w", err))
			break
		}
		for _, d := range page.Docs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				defer func() { <-slots }()
				ok, err := copyDoc(ctx, logs, st, id)
				if err != nil {
					failed(err)
					return
				}
				if ok {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}(d.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return n, first
}

// copyDoc copies one document: its snapshot and log tail, renumbered
// 1, 2, … (the replicated log's sequences are the stream's, not dense),
// and its versions, renumbered too.
// The stored bytes are copied as they are, so a Yjs document keeps its
// kind prefix. A document deleted or emptied meanwhile is skipped.
func copyDoc(ctx context.Context, logs *jetstream.Store, st *storage.Store, id string) (bool, error) {
	stored, err := logs.Load(ctx, id)
	if errors.Is(err, jetstream.ErrDeleted) || errors.Is(err, jetstream.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cluster backup: %w", err)
	}
	doc := &storage.Document{Info: storage.DocInfo{ID: id, Updated: stored.Updated}}
	seq := uint64(0)
	if stored.Snapshot != nil {
		seq++
		doc.Info.HasSnapshot, doc.Info.SnapshotSeq, doc.Snapshot = true, seq, stored.Snapshot
	}
	for _, e := range stored.Tail {
		seq++
		doc.Tail = append(doc.Tail, storage.Entry{Seq: seq, Data: e.Data})
	}
	doc.Info.LastSeq = seq
	if doc.Versions, err = allClusterVersions(ctx, logs, id); errors.Is(err, jetstream.ErrDeleted) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("cluster backup: %q: %w", id, err)
	}
	var buf bytes.Buffer
	if err := storage.WriteExport(&buf, doc); err != nil {
		return false, fmt.Errorf("cluster backup: %q: %w", id, err)
	}
	if _, err := st.Import(ctx, &buf, storage.ImportOptions{}); err != nil {
		return false, fmt.Errorf("cluster backup: %q: %w", id, err)
	}
	return true, nil
}

// allClusterVersions reads every version of a document, oldest first,
// with their snapshots, renumbered 1, 2, … (at most
// storage.MaxImportVersions, the most one export holds: the newest).
func allClusterVersions(ctx context.Context, logs *jetstream.Store, id string) ([]storage.Version, error) {
	cv := clusterVersions{logs}
	var heads []storage.Version // newest first
	for before := uint64(0); len(heads) < storage.MaxImportVersions; {
		page, err := cv.Versions(ctx, id, before, 1000)
		if err != nil {
			return nil, err
		}
		heads = append(heads, page...)
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].Seq
	}
	heads = heads[:min(len(heads), storage.MaxImportVersions)]
	out := make([]storage.Version, 0, len(heads))
	for i := len(heads) - 1; i >= 0; i-- {
		v, err := cv.Version(ctx, id, heads[i].Seq)
		if errors.Is(err, storage.ErrNoVersion) {
			continue // purged meanwhile (the document was deleted: Load will say)
		}
		if err != nil {
			return nil, err
		}
		v.Seq = uint64(len(out) + 1)
		out = append(out, v)
	}
	return out, nil
}
