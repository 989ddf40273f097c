package jetstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Version history: the stream "<Prefix>_versions", one subject per
// document, "<Prefix>.ver.<token>". A version is one message: its data
// the snapshot, its header VersionMetaHeader the caller's metadata
// (base64, at most MaxVersionMeta bytes before encoding); its sequence is
// the stream's (increasing per document, not dense). Versions are kept
// until their document is deleted (no pruning yet), and a snapshot larger
// than a record (MaxRecordBytes) is refused (ErrTooLarge).

// VersionMetaHeader carries a version's metadata.
const VersionMetaHeader = "Collabd-Version-Meta"

// MaxVersionMeta bounds a version's metadata, in bytes.
const MaxVersionMeta = 64 << 10

// maxVersionsInFlight bounds the versions being published at once.
const maxVersionsInFlight = 64

// ErrNoVersion: no such version of the document.
var ErrNoVersion = errors.New("jetstream: no such version")

// StoredVersion is a version as read back.
type StoredVersion struct {
	Seq      uint64
	Time     time.Time
	Meta     []byte
	Snapshot []byte // nil in listings (Versions)
	Size     int    // bytes of the snapshot
}

func (s *Store) versionSubject(doc string) string {
	return s.opts.Prefix + ".ver." + base64.RawURLEncoding.EncodeToString([]byte(doc))
}

// versionsStream creates or updates the versions stream (New).
func (s *Store) versionsStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name:        s.opts.Prefix + "_versions",
		Description: "collabd version history: one subject per document",
		Subjects:    []string{s.opts.Prefix + ".ver.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxMsgSize:  int32(s.opts.MaxRecordBytes),
	}
	return Retry(ctx, func(ctx context.Context) error {
		var err error
		s.vers, err = s.js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
}

// SubmitVersion stores a version of doc and returns at once; the Pending
// completes on JetStream's ack with the version's sequence. It does not
// need the document open, and it is not fenced (a deposed owner's version
// is a version of what it had). Errors: ErrTooLarge, ErrBusy (too many in
// flight), ErrClosed.
func (s *Store) SubmitVersion(doc string, meta, snapshot []byte) (*Pending, error) {
	if err := checkID(doc); err != nil {
		return nil, err
	}
	if len(meta) > MaxVersionMeta {
		return nil, fmt.Errorf("%w: %s: version metadata of %d bytes (limit %d)", ErrTooLarge, doc, len(meta), MaxVersionMeta)
	}
	// The header travels in the same message: leave it room.
	if len(snapshot)+base64.StdEncoding.EncodedLen(len(meta))+256 > s.opts.MaxRecordBytes {
		return nil, fmt.Errorf("%w: %s: version of %d bytes (records up to %d)", ErrTooLarge, doc, len(snapshot), s.opts.MaxRecordBytes)
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, ErrClosed
	case s.versionsInFlight >= maxVersionsInFlight:
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w (%d versions in flight)", doc, ErrBusy, s.versionsInFlight)
	}
	s.versionsInFlight++
	s.wg.Add(1)
	s.mu.Unlock()
	p := newPending()
	msg := &nats.Msg{Subject: s.versionSubject(doc), Data: snapshot, Header: nats.Header{}}
	msg.Header.Set(VersionMetaHeader, base64.StdEncoding.EncodeToString(meta))
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(s.opts.Prefix+"_versions"),
			jetstream.WithRetryWait(50*time.Millisecond), jetstream.WithRetryAttempts(int(s.opts.WriteTimeout/(50*time.Millisecond))+1))
		cancel()
		s.mu.Lock()
		s.versionsInFlight--
		s.mu.Unlock()
		if err != nil {
			p.complete(0, fmt.Errorf("%w: %s: version: %w", ErrUnavailable, doc, err))
			return
		}
		p.complete(ack.Sequence, nil)
		if s.opts.PruneVersions != nil {
			s.pruneVersions(doc)
		}
	}()
	return p, nil
}

// Versions lists doc's versions with a sequence below before (0: no
// bound), newest first, at most limit, without their snapshots. It reads
// every version's headers (not their snapshots) of the document. A
// deleted document's versions are ErrDeleted (they are purged right
// after its tombstone).
func (s *Store) Versions(ctx context.Context, doc string, before uint64, limit int) ([]StoredVersion, error) {
	if err := checkID(doc); err != nil {
		return nil, err
	}
	if before == 0 {
		before = ^uint64(0)
	}
	if err := s.notDeleted(ctx, doc); err != nil {
		return nil, err
	}
	return retryNoResponders(ctx, func() ([]StoredVersion, error) { return s.versions(ctx, doc, before, limit) })
}

func (s *Store) versions(ctx context.Context, doc string, before uint64, limit int) ([]StoredVersion, error) {
	subj := s.versionSubject(doc)
	last, err := s.vers.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, err)
	}
	cons, err := s.vers.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, HeadersOnly: true, MaxResetAttempts: orderedResets})
	if err != nil {
		return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil && ci.Name != "" {
			_ = s.vers.DeleteConsumer(context.WithoutCancel(ctx), ci.Name) // best effort: it expires anyway
		}
	}()
	var out []StoredVersion
	want := 1
	for {
		wait := s.opts.WriteTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, context.DeadlineExceeded)
		}
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, err)
		}
		got := 0
		var pending, seq uint64
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, err)
			}
			seq, pending = md.Sequence.Stream, md.NumPending
			if seq >= before {
				continue
			}
			v, err := versionOf(seq, md.Timestamp, m.Headers(), nil)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", doc, err)
			}
			out = append(out, v)
			if len(out) > limit {
				out = out[1:] // keep the newest limit
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("jetstream: %s: versions: %w", doc, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("jetstream: %s: versions: no messages within %v", doc, wait)
		}
		if pending == 0 && seq >= last.Sequence {
			break
		}
		want = int(min(max(pending, 1), 256))
	}
	slices.Reverse(out)
	return out, nil
}

// Version reads one version of doc with its snapshot (ErrNoVersion,
// ErrDeleted).
func (s *Store) Version(ctx context.Context, doc string, seq uint64) (StoredVersion, error) {
	if err := checkID(doc); err != nil {
		return StoredVersion{}, err
	}
	if err := s.notDeleted(ctx, doc); err != nil {
		return StoredVersion{}, err
	}
	m, err := s.vers.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != s.versionSubject(doc)) {
		return StoredVersion{}, fmt.Errorf("%w: %s: %d", ErrNoVersion, doc, seq)
	}
	if err != nil {
		return StoredVersion{}, fmt.Errorf("jetstream: %s: version %d: %w", doc, seq, err)
	}
	return versionOf(m.Sequence, m.Time, m.Header, m.Data)
}

// notDeleted returns ErrDeleted if doc's log ends with a tombstone.
func (s *Store) notDeleted(ctx context.Context, doc string) error {
	_, last, err := s.lastRecord(ctx, s.Subject(doc))
	if err != nil {
		return fmt.Errorf("jetstream: %s: %w", doc, err)
	}
	if last != nil && last.kind == recTombstone {
		return fmt.Errorf("%s: %w", doc, ErrDeleted)
	}
	return nil
}

// versionOf decodes a version's header (hostile input: its length is
// checked before it is decoded).
func versionOf(seq uint64, t time.Time, h nats.Header, data []byte) (StoredVersion, error) {
	enc := h.Get(VersionMetaHeader)
	if len(enc) > base64.StdEncoding.EncodedLen(MaxVersionMeta) {
		return StoredVersion{}, fmt.Errorf("%w: version %d: metadata of %d bytes", ErrCorrupt, seq, len(enc))
	}
	meta, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return StoredVersion{}, fmt.Errorf("%w: version %d: metadata: %w", ErrCorrupt, seq, err)
	}
	size := len(data)
	if data == nil { // headers only: the server says the size
		if size, err = strconv.Atoi(h.Get("Nats-Msg-Size")); err != nil || size < 0 {
			size = 0
		}
	}
	return StoredVersion{Seq: seq, Time: t, Meta: meta, Snapshot: data, Size: size}, nil
}

// maxPrune bounds the versions one pruning deletes.
const maxPrune = 256

// pruneVersions deletes the versions Options.PruneVersions drops (best
// effort: what is left is dropped by a later pruning).
func (s *Store) pruneVersions(doc string) {
	ctx, cancel := context.WithTimeout(s.ctx, 4*s.opts.WriteTimeout)
	defer cancel()
	heads, err := retryNoResponders(ctx, func() ([]StoredVersion, error) { return s.versions(ctx, doc, ^uint64(0), 1<<30) })
	if err != nil {
		s.opts.Logger.Warn("jetstream: reading versions to prune failed", "doc", doc, "err", err)
		return
	}
	slices.Reverse(heads) // oldest first
	drop := s.opts.PruneVersions(time.Now(), doc, heads)
	for _, seq := range drop[:min(len(drop), maxPrune)] {
		// A concurrent pruning may have deleted it: not found is fine, and
		// another failure leaves it to the next pruning.
		if err := s.vers.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNoMsg(err) {
			s.opts.Logger.Warn("jetstream: pruning a version failed", "doc", doc, "seq", seq, "err", err)
		}
	}
}

// purgeVersions deletes a deleted document's versions (best effort).
func (s *Store) purgeVersions(doc string) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	if err := s.vers.Purge(ctx, jetstream.WithPurgeSubject(s.versionSubject(doc))); err != nil {
		s.opts.Logger.Warn("jetstream: purging a deleted document's versions failed", "doc", doc, "err", err)
	}
}

// isNoMsg reports JetStream's "no message found" API error.
func isNoMsg(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}
