package jetstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The document index is the KV bucket "<Prefix>_docs": one key per
// document, its subject token, with an empty value. It exists so that
// documents can be listed without asking the ops stream for its subjects
// (a stream-info request, whose answer grows with the number of
// documents): a page of the list is one ordered consumer on the bucket's
// stream reading limit entries from a stream sequence on, whatever the
// number of documents.
//
// It is kept so that every document with data is in it:
//   - before the first record with data (updates or snapshot) of a
//     document that had none is published, its key is created (a failure
//     fails the write, which is then not acked);
//   - Open of a document that has data creates the key if it is missing;
//   - New runs Reindex once per cluster (the documents written before the
//     index existed), marked by the key indexedKey;
//   - after a tombstone is acked the key is deleted (best effort: a key
//     left behind by a crash is skipped by List, which reads each listed
//     document's last record).
//
// A key may thus name a document that has no data (its first write failed
// after the key was created) or that is deleted; List reports the first
// with LastSeq of a fence and skips the second.

// indexBucket names the index's KV bucket.
func (o *Options) indexBucket() string { return o.Prefix + "_docs" }

// Index errors.
var (
	// ErrBadCursor: List's after is not a cursor List returned.
	ErrBadCursor = errors.New("jetstream: bad list cursor")
)

// DocInfo is a document as List reports it.
type DocInfo struct {
	ID      string
	Created time.Time // when its index entry was written (its first write, or its indexing)
	Updated time.Time // its last record's time (a fence of a new owner counts)
	LastSeq uint64    // its last record's stream sequence (the version an owner would report)
}

// ListPage is a page of List.
type ListPage struct {
	Docs []DocInfo
	// Next is the cursor of the next page ("" at the end). Cursors are
	// opaque: positions in the index's stream, not document ids.
	Next string
}

// indexKey is a document's key in the index (its subject token).
func indexKey(doc string) string { return base64.RawURLEncoding.EncodeToString([]byte(doc)) }

// index creates doc's index key if it is missing. The key is read first:
// for a document written before it is there already, and a read is served
// by any current replica, while a create is a write through the bucket's
// raft leader. A load (Open) then does not need the index's quorum: a
// bucket that lost it (one node paused, another catching up) does not stop
// documents from loading. A read that errs or finds nothing falls back to
// the create.
func (s *Store) index(ctx context.Context, doc string) error {
	if _, err := s.docsKV.Get(ctx, indexKey(doc)); err == nil {
		return nil
	}
	_, err := s.docsKV.Create(ctx, indexKey(doc), nil)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// unindex deletes doc's index key (best effort).
func (s *Store) unindex(doc string) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	if err := s.docsKV.Delete(ctx, indexKey(doc)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.opts.Logger.Warn("jetstream: removing a deleted document from the index failed (List skips it)", "doc", doc, "err", err)
	}
}

// maxListLimit bounds a page of List.
const maxListLimit = 10000

// List returns up to limit (1..10000) indexed documents after cursor
// after ("" is the start), in the order they were indexed, skipping
// deleted ones: a page may be short, even empty, and still have a Next.
// A document indexed while a listing pages through appears on a later
// page; one re-created after a deletion may appear twice. It costs one
// consumer on the index and one last-record read per listed document.
func (s *Store) List(ctx context.Context, after string, limit int) (ListPage, error) {
	return retryNoResponders(ctx, func() (ListPage, error) { return s.list(ctx, after, limit) })
}

// retryNoResponders runs f again when it met no responders (a consumer
// just created that does not answer yet: a cluster placing it, a leader
// moving; nothing was read), up to 5 times.
func retryNoResponders[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil || !errors.Is(err, nats.ErrNoResponders) || attempt == 5 {
			return v, err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (s *Store) list(ctx context.Context, after string, limit int) (ListPage, error) {
	if limit < 1 || limit > maxListLimit {
		return ListPage{}, fmt.Errorf("jetstream: list limit %d (1..%d)", limit, maxListLimit)
	}
	var start uint64
	if after != "" {
		var err error
		if start, err = parseCursor(after); err != nil {
			return ListPage{}, err
		}
	}
	info, err := s.docsStream.Info(ctx)
	if err != nil {
		return ListPage{}, fmt.Errorf("jetstream: list: %w", err)
	}
	if info.State.Msgs == 0 || start >= info.State.LastSeq {
		return ListPage{}, nil
	}
	cons, err := s.docsStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start + 1, MaxResetAttempts: orderedResets})
	if err != nil {
		return ListPage{}, fmt.Errorf("jetstream: list: consumer: %w", err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil && ci.Name != "" {
			_ = s.docsStream.DeleteConsumer(context.WithoutCancel(ctx), ci.Name) // best effort: it expires anyway
		}
	}()
	prefix := "$KV." + s.opts.indexBucket() + "."
	var found []DocInfo // the page's documents, before their last records are read
	var lastSeen, pending uint64
	scanned := 0
	want := 1 // the first fetch learns how many entries follow
	for scanned < limit {
		wait := s.opts.WriteTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return ListPage{}, fmt.Errorf("jetstream: list: %w", context.DeadlineExceeded)
		}
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(wait))
		if err != nil {
			return ListPage{}, fmt.Errorf("jetstream: list: fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return ListPage{}, fmt.Errorf("jetstream: list: %w", err)
			}
			scanned++
			lastSeen, pending = md.Sequence.Stream, md.NumPending
			if op := m.Headers().Get("KV-Operation"); op != "" || !strings.HasPrefix(m.Subject(), prefix) ||
				strings.Contains(m.Subject()[len(prefix):], ".") {
				continue // a deletion marker, or the index's own key (indexedKey)
			}
			raw, err := base64.RawURLEncoding.DecodeString(m.Subject()[len(prefix):])
			if err != nil || checkID(string(raw)) != nil {
				return ListPage{}, fmt.Errorf("%w: index key %q", ErrCorrupt, m.Subject()[len(prefix):])
			}
			found = append(found, DocInfo{ID: string(raw), Created: md.Timestamp})
		}
		if err := batch.Error(); err != nil {
			return ListPage{}, fmt.Errorf("jetstream: list: fetch: %w", err)
		}
		if got == 0 {
			return ListPage{}, fmt.Errorf("jetstream: list: no entries within %v", wait)
		}
		if pending == 0 {
			break // the end
		}
		want = int(min(pending, uint64(limit-scanned), 256))
	}
	docs, err := s.statAll(ctx, found)
	if err != nil {
		return ListPage{}, fmt.Errorf("jetstream: list: %w", err)
	}
	page := ListPage{Docs: docs}
	if pending > 0 {
		page.Next = fmt.Sprintf("c%d", lastSeen)
	}
	return page, nil
}

// statParallel bounds the last-record reads of one List page in flight.
const statParallel = 8

// statAll reads the last record of each found document, statParallel at a
// time, and returns those that are not deleted, in order, with Updated
// and LastSeq set.
func (s *Store) statAll(ctx context.Context, found []DocInfo) ([]DocInfo, error) {
	ok := make([]bool, len(found))
	errs := make([]error, len(found))
	var wg sync.WaitGroup
	slots := make(chan struct{}, statParallel)
	for i := range found {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			d, live, err := s.stat(ctx, found[i].ID)
			found[i].Updated, found[i].LastSeq, ok[i], errs[i] = d.Updated, d.LastSeq, live, err
		}()
	}
	wg.Wait()
	out := make([]DocInfo, 0, len(found))
	for i, d := range found {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if ok[i] {
			out = append(out, d)
		}
	}
	return out, nil
}

func parseCursor(c string) (uint64, error) {
	var n uint64
	if len(c) < 2 || len(c) > 21 || c[0] != 'c' {
		return 0, fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	for _, ch := range c[1:] {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadCursor, c)
		}
		d := uint64(ch - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("%w: %q", ErrBadCursor, c)
		}
		n = n*10 + d
	}
	return n, nil
}

// stat reads a document's last record: ok is false for a deleted document
// or an empty subject.
func (s *Store) stat(ctx context.Context, doc string) (DocInfo, bool, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.Subject(doc))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DocInfo{}, false, nil
	}
	if err != nil {
		return DocInfo{}, false, fmt.Errorf("%s: last record: %w", doc, err)
	}
	// A record that does not decode is listed all the same (loading the
	// document reports it): one bad document must not hide the others.
	if rec, err := decodeRecord(m.Data, s.opts.MaxRecordBytes+4096, s.opts.MaxUpdates); err == nil && rec.kind == recTombstone {
		return DocInfo{}, false, nil
	}
	return DocInfo{ID: doc, Updated: m.Time, LastSeq: m.Sequence}, true, nil
}

// indexedKey marks an index filled by Reindex. It has a '.', which no
// document's key (base64url) has.
const indexedKey = "meta.indexed"

// ensureIndexed runs Reindex once per cluster, when the index has no
// indexedKey yet (a cluster whose documents were written before the index
// existed; on a new cluster it reads an empty stream).
func (s *Store) ensureIndexed(ctx context.Context) error {
	_, err := s.docsKV.Get(ctx, indexedKey)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jetstream: index: %w", err)
	}
	n, err := s.Reindex(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		s.opts.Logger.Info("jetstream: indexed the documents written before the index existed", "documents", n)
	}
	if _, err := s.docsKV.Put(ctx, indexedKey, nil); err != nil {
		return fmt.Errorf("jetstream: index: %w", err)
	}
	return nil
}

// Reindex puts every document of the ops stream that has data into the
// index (the documents written before the index existed). It asks the
// stream for its subjects, an answer that grows with the number of
// documents: run it once, after an upgrade. It returns how many keys it
// created.
func (s *Store) Reindex(ctx context.Context) (int, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(s.subj+">"))
	if err != nil {
		return 0, fmt.Errorf("jetstream: reindex: %w", err)
	}
	n := 0
	for subj := range info.State.Subjects {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(subj, s.subj))
		if err != nil || checkID(string(raw)) != nil {
			s.opts.Logger.Warn("jetstream: reindex: a subject that is no document's", "subject", subj)
			continue
		}
		doc := string(raw)
		f, err := s.read(ctx, doc, 0)
		if err != nil {
			return n, fmt.Errorf("jetstream: reindex: %w", err)
		}
		if !f.exists || f.deleted {
			continue
		}
		if _, err := s.docsKV.Create(ctx, indexKey(doc), nil); err == nil {
			n++
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return n, fmt.Errorf("jetstream: reindex: %s: %w", doc, err)
		}
	}
	return n, nil
}
