package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxIDBytes is the longest document id (as in storage: 255 bytes).
const MaxIDBytes = 255

// Options configures a Store. A zero field is the documented default.
// Every node of a cluster must use the same Prefix, Replicas and
// MaxRecordBytes: New creates or updates the shared stream with them.
type Options struct {
	// Prefix names the stream ("<Prefix>_ops", subjects
	// "<Prefix>.ops.<token>") and the snapshot bucket
	// ("<Prefix>_snapshots"); letters, digits, '-' and '_' only; "" is
	// "collabd". Two deployments on one NATS use two prefixes.
	Prefix string
	// Replicas is the stream's and the bucket's replication (1..5);
	// 0 is 3. Single-node tests use 1.
	Replicas int
	// MaxActiveDocs bounds the documents with a publish queued or in
	// flight (each has one publishing goroutine); 0 is 1024.
	MaxActiveDocs int
	// MaxQueueBytes bounds the update bytes queued or in flight over all
	// documents; 0 is 64 MiB.
	MaxQueueBytes int64
	// MaxRecordBytes caps one record (one JetStream message): updates
	// queued together are grouped up to it, and a larger update is refused
	// (ErrTooLarge); 0 (and anything larger) is the server's max payload
	// less 4 KiB of room, at most 8 MiB. The server's max payload must
	// therefore exceed the largest update (the server's MaxFrame, 1 MiB by
	// default): natsembed sets 8 MiB, nats-server's default is 1 MiB.
	MaxRecordBytes int
	// MaxUpdates caps the updates in one record; 0 is 4096.
	MaxUpdates int
	// MaxSnapshotBytes caps a snapshot, written or read; 0 is 256 MiB.
	MaxSnapshotBytes int64
	// MaxDocBytes caps what Load reads for one document (snapshot and log
	// tail); 0 is 512 MiB.
	MaxDocBytes int64
	// WriteTimeout bounds the wait for one publish's ack; 0 is 5 s. A
	// record that is neither confirmed nor found stored is published up to
	// three times before its updates fail (ErrUnavailable).
	WriteTimeout time.Duration
	// Logger gets warnings (failed cleanups); nil discards them.
	Logger *slog.Logger
	// PruneVersions, if set, is asked after each version is stored which
	// of the document's versions (given oldest first, without snapshots)
	// to delete; it returns their sequences. Nil keeps every version.
	PruneVersions func(now time.Time, doc string, versions []StoredVersion) []uint64
}

func (o *Options) setDefaults(nc *nats.Conn) error {
	if o.Prefix == "" {
		o.Prefix = "collabd"
	}
	for _, c := range o.Prefix {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("jetstream: prefix %q: letters, digits, '-' and '_' only", o.Prefix)
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Replicas, 3)
	if o.Replicas > 5 {
		return fmt.Errorf("jetstream: %d replicas (1..5)", o.Replicas)
	}
	def(&o.MaxActiveDocs, 1024)
	def64(&o.MaxQueueBytes, 64<<20)
	maxRec := min(int(nc.MaxPayload())-4096, 8<<20)
	if o.MaxRecordBytes <= 0 || o.MaxRecordBytes > maxRec {
		o.MaxRecordBytes = maxRec
	}
	if o.MaxRecordBytes < 1024 {
		return fmt.Errorf("jetstream: records of %d bytes are too small", o.MaxRecordBytes)
	}
	def(&o.MaxUpdates, 4096)
	def64(&o.MaxSnapshotBytes, 256<<20)
	def64(&o.MaxDocBytes, 512<<20)
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is the replicated document store. Its methods are safe for
// concurrent use.
type Store struct {
	opts   Options
	js     jetstream.JetStream
	stream jetstream.Stream
	snaps  jetstream.ObjectStore
	subj   string // subject prefix: "<Prefix>.ops."

	docsKV     jetstream.KeyValue // the document index (index.go)
	docsStream jetstream.Stream   // its stream, read by List
	vers       jetstream.Stream   // version history (versions.go)

	ctx    context.Context // cancelled by Close when its ctx ends: publishes abort
	cancel context.CancelFunc
	wg     sync.WaitGroup // the publishing goroutines

	testHookRead func() // tests: runs between a read's two requests

	mu     sync.Mutex         // guards the fields below and every writer's
	docs   map[string]*writer // open documents
	active int                // writers with a publishing goroutine
	queued int64              // update bytes queued or in flight
	closed bool

	versionsInFlight int // SubmitVersion publishes in flight
}

// New connects the Store to JetStream through nc, creating or updating its
// stream and snapshot bucket. While a cluster is still electing its leaders
// the requests are retried until ctx ends. nc stays the caller's.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	if err := opts.setDefaults(nc); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.WriteTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &Store{opts: opts, js: js, subj: opts.Prefix + ".ops.", docs: map[string]*writer{}}
	cfg := jetstream.StreamConfig{
		Name:        opts.Prefix + "_ops",
		Description: "collabd document logs: one subject per document",
		Subjects:    []string{s.subj + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never drop acked records to make room
		MaxMsgSize:  int32(opts.MaxRecordBytes),
		// No direct gets: they may be answered by a lagging follower, and
		// the last-record reads that settle unconfirmed appends and check
		// epochs want the leader's view.
		AllowDirect: false,
		DenyDelete:  true, // records are only purged, by compaction and deletion
	}
	if err := Retry(ctx, func(ctx context.Context) error {
		s.stream, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	}); err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", cfg.Name, err)
	}
	ocfg := jetstream.ObjectStoreConfig{
		Bucket:      opts.Prefix + "_snapshots",
		Description: "collabd document snapshots",
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	}
	if err := Retry(ctx, func(ctx context.Context) error {
		s.snaps, err = js.CreateOrUpdateObjectStore(ctx, ocfg)
		return err
	}); err != nil {
		return nil, fmt.Errorf("jetstream: snapshot bucket %s: %w", ocfg.Bucket, err)
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket:      opts.indexBucket(),
		Description: "collabd document index: one key per document (List)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	}
	if err := Retry(ctx, func(ctx context.Context) error {
		if s.docsKV, err = js.CreateOrUpdateKeyValue(ctx, kcfg); err != nil {
			return err
		}
		s.docsStream, err = js.Stream(ctx, "KV_"+kcfg.Bucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("jetstream: index bucket %s: %w", kcfg.Bucket, err)
	}
	if err := s.versionsStream(ctx); err != nil {
		return nil, fmt.Errorf("jetstream: versions stream: %w", err)
	}
	// Not Retry: a reindex may take longer than one of its attempts.
	for {
		err := s.ensureIndexed(ctx)
		if err == nil {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Retry runs f with a short deadline per attempt until it succeeds or ctx
// ends: a JetStream cluster drops API requests while it elects its meta
// leader, and there is no event to wait for instead. (server/cluster uses
// it for its buckets too.)
func Retry(ctx context.Context, f func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Close refuses new writes and waits for the queued ones to be published
// (each within WriteTimeout). When ctx ends first, the publishes in flight
// are aborted (their Pendings fail with ErrUnavailable) and Close returns
// ctx's error once they have. The connection stays the caller's.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// Subject is the subject of a document's log: the prefix, ".ops.", and
// the document id in unpadded base64url (RFC 4648 §5), so that ids with
// any bytes ('.', '*', '>', spaces, '/', invalid UTF-8) make one valid
// subject token each.
func (s *Store) Subject(doc string) string {
	return s.subj + base64.RawURLEncoding.EncodeToString([]byte(doc))
}

func checkID(doc string) error {
	if doc == "" || len(doc) > MaxIDBytes {
		return fmt.Errorf("jetstream: document id of %d bytes (1..%d)", len(doc), MaxIDBytes)
	}
	return nil
}

// Stored is a document as loaded.
type Stored struct {
	Snapshot []byte    // nil: no snapshot
	Tail     []Entry   // updates after the snapshot, in order
	LastSeq  uint64    // the subject's last sequence (a write expects it)
	Updated  time.Time // the last record's time (Load only)
}

// Entry is one update of the log. Updates published in one record share
// its sequence.
type Entry struct {
	Seq  uint64
	Data []byte
}

// seqRecord is a record and its stream sequence.
type seqRecord struct {
	seq uint64
	rec *record
	t   time.Time // when the stream stored it
}

// folded is a subject's records summed up.
type folded struct {
	snap       *snapRef // the latest snapshot, nil if none
	tail       []Entry  // updates after snap.through
	last       uint64   // the last record's sequence (0: empty subject)
	lastTime   time.Time
	lastActive uint64 // the last record's but stale fences
	epoch      uint64 // the highest epoch
	exists     bool   // an update or a snapshot was written
	deleted    bool
}

// fold sums up a subject's records, in sequence order. Epochs never
// decrease along a log (every append expects the last sequence, and a new
// writer fences before it appends), except for the fences of stale Opens,
// which are skipped: any other decrease is corruption.
func fold(recs []seqRecord) (folded, error) {
	var f folded
	for _, r := range recs {
		f.last, f.lastTime = r.seq, r.t
		if r.rec.epoch < f.epoch {
			if r.rec.kind == recFence {
				continue
			}
			return folded{}, fmt.Errorf("%w: record %d has epoch %d after epoch %d", ErrCorrupt, r.seq, r.rec.epoch, f.epoch)
		}
		f.epoch, f.lastActive = r.rec.epoch, r.seq
		switch r.rec.kind {
		case recUpdates:
			f.exists = true
			for _, u := range r.rec.updates {
				f.tail = append(f.tail, Entry{Seq: r.seq, Data: u})
			}
		case recSnapshot:
			f.exists = true
			snap := r.rec.snap
			f.snap = &snap
			// Drop the updates the snapshot covers (through may precede
			// records written while it was being taken).
			keep := f.tail[:0]
			for _, e := range f.tail {
				if e.Seq > snap.through {
					keep = append(keep, e)
				}
			}
			f.tail = keep
		case recTombstone:
			f.deleted = true
		}
	}
	return f, nil
}

// Load reads a document: its snapshot and the updates after it. It does
// not make this Store the document's writer (see Open). It returns
// ErrNotFound for a document never written, ErrDeleted for a deleted one,
// ErrCorrupt (with a *DecodeError where one applies) for undecodable
// records or a missing snapshot, ErrTooLarge past MaxDocBytes.
func (s *Store) Load(ctx context.Context, doc string) (Stored, error) {
	if err := checkID(doc); err != nil {
		return Stored{}, err
	}
	var err error
	for range 3 { // a compaction may delete the snapshot between the reads
		var f folded
		if f, err = s.read(ctx, doc, 0); err != nil {
			return Stored{}, err
		}
		var st Stored
		if st, err = s.stored(ctx, doc, f); !errors.Is(err, errSnapGone) {
			return st, err
		}
	}
	return Stored{}, fmt.Errorf("%w: %s: snapshot missing: %w", ErrCorrupt, doc, err)
}

var errSnapGone = errors.New("snapshot object missing")

// read reads and folds a document's subject, at least up to sequence
// atLeast.
func (s *Store) read(ctx context.Context, doc string, atLeast uint64) (folded, error) {
	var recs []seqRecord
	var err error
	for attempt := 0; ; attempt++ {
		recs, err = s.readSubject(ctx, s.Subject(doc), atLeast)
		// A consumer just created may not answer yet (a cluster placing it,
		// a leader moving): nothing was read, read again.
		if err == nil || !errors.Is(err, nats.ErrNoResponders) || attempt == 5 {
			break
		}
		t := time.NewTimer(time.Duration(attempt+1) * 20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return folded{}, fmt.Errorf("%s: %w (last: %w)", doc, ctx.Err(), err)
		case <-t.C:
		}
	}
	if err != nil {
		return folded{}, fmt.Errorf("%s: %w", doc, err)
	}
	f, err := fold(recs)
	if err != nil {
		return folded{}, fmt.Errorf("%s: %w", doc, err)
	}
	if f.snap != nil && int64(f.snap.size) > s.opts.MaxSnapshotBytes {
		return folded{}, fmt.Errorf("%w: %s: snapshot of %d bytes (limit %d)", ErrTooLarge, doc, f.snap.size, s.opts.MaxSnapshotBytes)
	}
	return f, nil
}

// stored turns a folded log into what Load returns, reading the snapshot.
func (s *Store) stored(ctx context.Context, doc string, f folded) (Stored, error) {
	switch {
	case f.deleted:
		return Stored{}, fmt.Errorf("%s: %w", doc, ErrDeleted)
	case !f.exists:
		return Stored{LastSeq: f.last}, fmt.Errorf("%s: %w", doc, ErrNotFound)
	}
	st := Stored{Tail: f.tail, LastSeq: f.last, Updated: f.lastTime}
	var size int64
	for _, e := range f.tail {
		size += int64(len(e.Data))
	}
	if f.snap != nil {
		size += int64(f.snap.size)
	}
	if size > s.opts.MaxDocBytes {
		return Stored{}, fmt.Errorf("%w: %s: %d bytes (limit %d)", ErrTooLarge, doc, size, s.opts.MaxDocBytes)
	}
	if f.snap != nil {
		snap, err := s.getSnapshot(ctx, *f.snap)
		if err != nil {
			return Stored{}, fmt.Errorf("%s: %w", doc, err)
		}
		st.Snapshot = snap
	}
	return st, nil
}

// getSnapshot reads a snapshot object, checking its size against the
// record that points to it (the object store checks its digest).
func (s *Store) getSnapshot(ctx context.Context, ref snapRef) ([]byte, error) {
	obj, err := s.snaps.Get(ctx, ref.name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		// A replica behind may have answered (snapcheck.go).
		switch there, lerr := s.snapOnLeader(ctx, ref.name); {
		case lerr != nil:
			return nil, fmt.Errorf("snapshot %s: %w (%w)", ref.name, errSnapNotYet, lerr)
		case there:
			return nil, fmt.Errorf("snapshot %s: %w", ref.name, errSnapNotYet)
		}
		return nil, fmt.Errorf("%s: %w", ref.name, errSnapGone)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", ref.name, err)
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", ref.name, err)
	}
	if info.Size != ref.size {
		return nil, fmt.Errorf("%w: snapshot %s has %d bytes, its record says %d", ErrCorrupt, ref.name, info.Size, ref.size)
	}
	b, err := io.ReadAll(io.LimitReader(obj, int64(ref.size)+1))
	if err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return nil, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, ref.name, err)
		}
		return nil, fmt.Errorf("snapshot %s: %w", ref.name, err)
	}
	if uint64(len(b)) != ref.size {
		return nil, fmt.Errorf("%w: snapshot %s: read %d bytes, want %d", ErrCorrupt, ref.name, len(b), ref.size)
	}
	return b, nil
}

// untilAnswered runs a JetStream API call with a deadline of WriteTimeout
// per try, and tries again while ctx lives if a try got no answer in
// time: a request that reaches JetStream while the leader it needs (the
// stream's, the meta group's) is being replaced can go unanswered, and
// would otherwise wait for all of ctx (seen: a load after the stream
// leader's SIGKILL waited out its caller's 90 s). Only a ctx with a
// deadline bounds the retries; without one, one try.
func (s *Store) untilAnswered(ctx context.Context, call func(context.Context) error) error {
	_, bounded := ctx.Deadline()
	for {
		tctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
		err := call(tctx)
		unanswered := tctx.Err() != nil
		cancel()
		if err == nil || !unanswered || !bounded || ctx.Err() != nil {
			return err
		}
	}
}

// readSubject reads every record of a subject, in order, with an ordered
// consumer (nothing if the subject is empty), at least up to sequence
// atLeast (a record this Store has just appended).
func (s *Store) readSubject(ctx context.Context, subj string, atLeast uint64) ([]seqRecord, error) {
	var last *jetstream.RawStreamMsg
	err := s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		last, err = s.stream.GetLastMsgForSubject(ctx, subj)
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) && atLeast == 0 {
		return nil, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("last record: %w", err)
	}
	target := atLeast
	if last != nil {
		target = max(target, last.Sequence)
	}
	if s.testHookRead != nil {
		s.testHookRead()
	}
	var cons jetstream.Consumer
	err = s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		cons, err = s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, MaxResetAttempts: orderedResets})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil && info.Name != "" {
			_ = s.stream.DeleteConsumer(context.WithoutCancel(ctx), info.Name) // best effort: it expires anyway
		}
	}()
	var recs []seqRecord
	var total int64
	want := 1 // the first fetch learns how many records follow
	for {
		wait := s.opts.WriteTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, context.DeadlineExceeded
		}
		// A fetch returns when it has want records: never ask for more
		// than are pending, or it waits its whole timeout.
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		got := 0
		var pending uint64
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("metadata: %w", err)
			}
			if total += int64(len(m.Data())); total > s.opts.MaxDocBytes+1<<20 {
				return nil, fmt.Errorf("%w: log past %d bytes", ErrTooLarge, s.opts.MaxDocBytes)
			}
			rec, err := decodeRecord(m.Data(), s.opts.MaxRecordBytes+4096, s.opts.MaxUpdates)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", md.Sequence.Stream, err)
			}
			recs = append(recs, seqRecord{md.Sequence.Stream, rec, md.Timestamp})
			pending = md.NumPending
			// Read to the end as the consumer sees it, not only to the
			// last record seen before: a compaction may purge records
			// between the two reads, and its snapshot record, appended
			// before the purge, can lie past that last record.
			if md.Sequence.Stream >= target && pending == 0 {
				return recs, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		if got == 0 {
			return nil, fmt.Errorf("fetch: no records within %v", wait)
		}
		want = int(min(max(pending, 1), 256))
	}
}

// lastRecord reads a subject's last record (nil if the subject is empty).
func (s *Store) lastRecord(ctx context.Context, subj string) (uint64, *record, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	rec, err := decodeRecord(m.Data, s.opts.MaxRecordBytes+4096, s.opts.MaxUpdates)
	if err != nil {
		return 0, nil, fmt.Errorf("record %d: %w", m.Sequence, err)
	}
	return m.Sequence, rec, nil
}

// orderedResets bounds the attempts of an ordered consumer to create its
// server-side consumer, which every Fetch makes. nats.go's default is
// unlimited (one attempt up to 10 s, then again after a backoff up to
// 10 s, for ever), and a Fetch does not take a context: while JetStream
// could not create the consumer (a crash's elections), a document's load
// waited for good, its owner answering nobody, until the crashed node
// came back (found by collabd chaos cluster: every writer of a document
// stalled). Bounded, the read fails (≤ 21 s) and the caller's retry
// path runs (a failed load is retried on the next Join).
const orderedResets = 2

// randomID is a writer's random id.
func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return binary.LittleEndian.Uint64(b[:])
}
