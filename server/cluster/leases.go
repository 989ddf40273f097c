package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaseOptions configures Leases. A zero field is the documented default.
type LeaseOptions struct {
	// Prefix names the bucket "<Prefix>_leases"; "" is "collabd".
	Prefix string
	// Node is this node's id (required; letters, digits, '-', '_').
	Node string
	// TTL is how long a lease lives after its last renewal; 0 is 5 s. It
	// is the bucket's TTL: every node of a cluster must use the same.
	TTL time.Duration
	// Replicas of the bucket (1..5); 0 is 3.
	Replicas int
	// RenewEvery is the renewal period; 0 is TTL/3.
	RenewEvery time.Duration
	// Renew, if set, drives renewals instead of a ticker every RenewEvery
	// (tests send on it to renew at chosen moments); each renewal counts
	// from the time received.
	Renew <-chan time.Time
	// RenewParallel bounds the renewals in flight at once; 0 is 64.
	RenewParallel int
	// Now is the clock of acquisitions and of the expiry check after a
	// failed renewal; nil is time.Now.
	Now func() time.Time
	// Logger gets renewal failures; nil discards them.
	Logger *slog.Logger
}

// Leases is this node's side of the document leases: one key per document
// in a JetStream KV bucket whose keys expire TTL after their last write.
// Acquire creates the key if absent; a goroutine renews every held lease
// by revision; Release deletes it (the next owner takes over at once,
// without waiting for the TTL). The revision that created a lease is its
// fencing epoch: KV revisions are the bucket stream's sequences, so a
// later acquisition of any document has a higher epoch.
//
// A lease is lost when a renewal finds another revision or no key (it
// expired and was perhaps taken): Lease.Lost is then closed and the holder
// must stop writing; fencing (storage/jetstream) refuses its writes
// anyway. A renewal that gets no answer (the bucket has no leader, NATS is
// unreachable) does not lose the lease, however long it lasts: nobody can
// acquire it meanwhile either (docs/CLUSTER.md, "a lease bucket without a
// leader is not a lost lease").
//
// Leases' methods are safe for concurrent use; Close stops its goroutine
// and releases the leases it holds.
type Leases struct {
	opts LeaseOptions
	kv   jetstream.KeyValue

	stop chan struct{} // closed by Close
	done chan struct{} // closed when the renewer has returned
	mu   sync.Mutex    // guards held and every Lease's mutable fields
	held map[string]*Lease
	wg   sync.WaitGroup // the renewer
}

// Lease is a held lease.
type Lease struct {
	Doc   string
	Epoch uint64 // the fencing epoch: the revision that created the lease

	ls   *Leases
	lost chan struct{} // closed when lost or released
	// Guarded by Leases.mu:
	rev     uint64    // the current revision (renewals move it)
	renewed time.Time // start of the last successful write
	err     error     // why it ended
}

// Lost is closed when the lease is lost or released.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// NewLeases creates or opens the lease bucket through nc and starts the
// renewer. nc stays the caller's.
func NewLeases(ctx context.Context, nc *nats.Conn, opts LeaseOptions) (*Leases, error) {
	if opts.Prefix == "" {
		opts.Prefix = "collabd"
	}
	if err := checkName("prefix", opts.Prefix); err != nil {
		return nil, err
	}
	if err := checkName("node id", opts.Node); err != nil {
		return nil, err
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.RenewEvery <= 0 {
		opts.RenewEvery = opts.TTL / 3
	}
	if opts.RenewEvery >= opts.TTL {
		return nil, fmt.Errorf("cluster: renewing every %v with a TTL of %v", opts.RenewEvery, opts.TTL)
	}
	if opts.RenewParallel <= 0 {
		opts.RenewParallel = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	kv, err := bucket(ctx, js, opts.Prefix+"_leases", "collabd document leases (value: holder node)", opts.TTL, opts.Replicas)
	if err != nil {
		return nil, err
	}
	l := &Leases{opts: opts, kv: kv, stop: make(chan struct{}), done: make(chan struct{}), held: map[string]*Lease{}}
	l.wg.Add(1)
	go l.renewer()
	return l, nil
}

// Node is this node's id.
func (l *Leases) Node() string { return l.opts.Node }

// TTL is the leases' time to live.
func (l *Leases) TTL() time.Duration { return l.opts.TTL }

// Acquire takes the document's lease if nobody holds it. It returns the
// lease this node already holds, or an error wrapping ErrHeld (a
// *HeldError) if another node holds it. The holder named can be this
// node's own id: a lease of a previous run of this node (restarted before
// its leases expired), or one whose creation was not confirmed (a
// timeout); nobody renews those, and they expire within the TTL
// (AwaitFree waits for that).
func (l *Leases) Acquire(ctx context.Context, doc string) (*Lease, error) {
	l.mu.Lock()
	select {
	case <-l.stop:
		l.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	if h := l.held[doc]; h != nil && h.err == nil {
		l.mu.Unlock()
		return h, nil
	}
	l.mu.Unlock()
	start := l.opts.Now()
	rev, err := l.kv.Create(ctx, docKey(doc), []byte(l.opts.Node))
	// Create on a released key (a delete marker) updates the marker by
	// revision, and nats.go returns a lost race there unwrapped.
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err) {
		holder, rev, herr := l.Holder(ctx, doc)
		if herr != nil {
			return nil, fmt.Errorf("%w: %q (holder unknown: %w)", ErrHeld, doc, herr)
		}
		return nil, &HeldError{Doc: doc, Holder: holder, Revision: rev}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: acquire %q: %w", doc, err)
	}
	lease := &Lease{Doc: doc, Epoch: rev, ls: l, lost: make(chan struct{}), rev: rev, renewed: start}
	l.mu.Lock()
	select {
	case <-l.stop: // closed meanwhile: nobody would renew or release it
		l.mu.Unlock()
		_ = l.Release(ctx, lease) // best effort: it expires anyway
		return nil, ErrClosed
	default:
	}
	l.held[doc] = lease
	l.mu.Unlock()
	return lease, nil
}

// Held is the lease this node holds on the document, if any.
func (l *Leases) Held(doc string) (*Lease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[doc]
	return h, h != nil && h.err == nil
}

// Holder is the node holding the document's lease and the revision of its
// last renewal (ErrKeyNotFound-wrapping error if free). A read that gets
// no answer within a lease TTL is sent again while ctx lives: a read that
// reaches the bucket while its leading NATS server is being replaced can
// go unanswered, and would otherwise wait for all of ctx (a session's
// resolution: 30 s; seen in the chaos run after the bucket's leading
// server was shut down). Only a ctx with a deadline bounds the retries.
func (l *Leases) Holder(ctx context.Context, doc string) (string, uint64, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, l.opts.TTL)
		e, err := l.kv.Get(tctx, docKey(doc))
		unanswered := tctx.Err() != nil
		cancel()
		if _, bounded := ctx.Deadline(); err != nil && unanswered && bounded && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("cluster: lease of %q: %w", doc, err)
		}
		return string(e.Value()), e.Revision(), nil
	}
}

// Release gives the lease up at once: the key is deleted (if it is still
// ours) so another node can acquire it without waiting for the TTL.
func (l *Leases) Release(ctx context.Context, lease *Lease) error {
	l.mu.Lock()
	rev, live := lease.rev, lease.err == nil
	if live {
		lease.err = ErrReleased
		close(lease.lost)
	}
	if l.held[lease.Doc] == lease {
		delete(l.held, lease.Doc)
	}
	l.mu.Unlock()
	if !live {
		return nil
	}
	err := l.kv.Delete(ctx, docKey(lease.Doc), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSeq(err) {
		return nil // expired and perhaps taken since: not ours to delete
	}
	if err != nil {
		return fmt.Errorf("cluster: release %q: %w", lease.Doc, err)
	}
	return nil
}

// AwaitFree returns once the document's lease is free (absent, released
// or expired), or ctx's error.
func (l *Leases) AwaitFree(ctx context.Context, doc string) error {
	w, err := l.kv.Watch(ctx, docKey(doc))
	if err != nil {
		return fmt.Errorf("cluster: watch lease of %q: %w", doc, err)
	}
	defer func() { _ = w.Stop() }() // stopping a watcher only unsubscribes
	held := false
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("cluster: watch lease of %q: closed", doc)
			}
			switch {
			case e == nil: // the initial values are in
				if !held {
					return nil
				}
			case e.Operation() == jetstream.KeyValuePut:
				held = true
			default: // deleted, purged or expired
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops renewing and releases every held lease (hand-over at once),
// within ctx.
func (l *Leases) Close(ctx context.Context) error {
	l.mu.Lock()
	select {
	case <-l.stop:
		l.mu.Unlock()
		<-l.done
		return nil
	default:
	}
	close(l.stop)
	held := make([]*Lease, 0, len(l.held))
	for _, h := range l.held {
		held = append(held, h)
	}
	l.mu.Unlock()
	l.wg.Wait()
	var errs []error
	for _, h := range held {
		errs = append(errs, l.Release(ctx, h))
	}
	return errors.Join(errs...)
}

// renewer renews the held leases on every tick.
func (l *Leases) renewer() {
	defer l.wg.Done()
	defer close(l.done)
	tick := l.opts.Renew
	if tick == nil {
		t := time.NewTicker(l.opts.RenewEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick:
			l.renewAll(now)
		}
	}
}

// renewAll renews every held lease once, RenewParallel at a time (each
// within a third of the TTL), on goroutines it waits for. now is the
// tick's time: a renewal counts from it (no later than its request).
func (l *Leases) renewAll(now time.Time) {
	l.mu.Lock()
	held := make([]*Lease, 0, len(l.held))
	for _, h := range l.held {
		held = append(held, h)
	}
	l.mu.Unlock()
	sem := make(chan struct{}, l.opts.RenewParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, h := range held {
		select {
		case <-l.stop:
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.renew(h, now)
		}()
	}
}

// renew renews one lease at start, or declares it lost.
func (l *Leases) renew(h *Lease, start time.Time) { l.renewOnce(h, start, false) }

// renewOnce is renew; retried is set on its one retry after adopting a
// revision of its own that landed late.
func (l *Leases) renewOnce(h *Lease, start time.Time, retried bool) {
	l.mu.Lock()
	rev, renewed, live := h.rev, h.renewed, h.err == nil
	l.mu.Unlock()
	if !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/3)
	nrev, err := l.kv.Update(ctx, docKey(h.Doc), []byte(l.opts.Node), rev)
	cancel()
	switch {
	case err == nil:
		l.mu.Lock()
		if h.rev == rev {
			h.rev, h.renewed = nrev, start
		}
		l.mu.Unlock()
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSeq(err):
		// Another revision: taken over, or one of this lease's own earlier
		// renewals landed after its request timed out (seen under CPU
		// load: the answer came too late, the write did not fail).
		if nrev, ok := l.ownLater(h.Doc, rev); ok {
			l.mu.Lock()
			adopted := h.rev == rev
			if adopted {
				h.rev = nrev // renewed counts from the last confirmed renewal
			}
			l.mu.Unlock()
			if adopted && !retried {
				l.renewOnce(h, start, true) // renew from the landed revision
			}
			return
		}
		l.lose(h, rev, fmt.Errorf("%w: %q: taken over or expired: %w", ErrLeaseLost, h.Doc, err))
	case errors.Is(err, jetstream.ErrKeyNotFound):
		l.lose(h, rev, fmt.Errorf("%w: %q: taken over or expired: %w", ErrLeaseLost, h.Doc, err))
	case l.expired(renewed, l.opts.Now()):
		// No answer (the bucket has no leader, or NATS is unreachable)
		// past the TTL: the lease is held on, not lost (docs/CLUSTER.md,
		// "a lease bucket without a leader is not a lost lease"). Nobody
		// can acquire it without the same leader either, and once a leader
		// answers, a lease taken meanwhile is reported lost by the
		// revision check above. Safety does not depend on it: the log
		// fences a deposed owner's appends.
		l.opts.Logger.Warn("cluster: lease renewal failed past the TTL; held on until the lease bucket answers", "doc", h.Doc, "since", renewed, "err", err)
	default:
		l.opts.Logger.Warn("cluster: lease renewal failed; retrying", "doc", h.Doc, "err", err)
	}
}

// ownLater reports whether the lease key of doc is still a plain value
// written by this node at a revision after rev: a renewal of this lease
// whose request timed out but which landed. It is this lease's: the key
// was never deleted or expired in between (that would leave a marker and
// Update by revision would then create nothing), and while this node holds
// the lease, Acquire does not create it again. A key expired and created
// again by another node holds that node's id; one created again by this
// node would need the key deleted first, which this lease's revision
// check reports as no key. Any doubt (no answer) is not a renewal.
func (l *Leases) ownLater(doc string, rev uint64) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/3)
	defer cancel()
	e, err := l.kv.Get(ctx, docKey(doc))
	if err != nil || e.Operation() != jetstream.KeyValuePut || e.Revision() <= rev || string(e.Value()) != l.opts.Node {
		return 0, false
	}
	return e.Revision(), true
}

// expired reports whether a lease last renewed at renewed may have expired
// on the servers by now (a tenth of the TTL kept as a margin for clock
// rates and the servers' expiry timers).
func (l *Leases) expired(renewed, now time.Time) bool {
	return now.Sub(renewed) >= l.opts.TTL-l.opts.TTL/10
}

// lose ends a lease that was at revision rev.
func (l *Leases) lose(h *Lease, rev uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.err != nil || h.rev != rev {
		return
	}
	h.err = err
	close(h.lost)
	if l.held[h.Doc] == h {
		delete(l.held, h.Doc)
	}
}

// Err is why the lease ended (ErrLeaseLost or ErrReleased wrapped), nil
// while it is held.
func (h *Lease) Err() error {
	h.ls.mu.Lock()
	defer h.ls.mu.Unlock()
	return h.err
}

// isWrongLastSeq reports a refused expected-last-sequence.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
