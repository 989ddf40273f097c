package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is what an endpoint receives, as the JSON body of the POST.
type Event struct {
	ID   string          `json:"id"`   // unique; the same on every redelivery
	Type string          `json:"type"` // doc.created, doc.changed, doc.deleted, ...
	Doc  string          `json:"doc,omitempty"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
}

// NewID returns a fresh event id ("evt_" and 24 hex digits).
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// Endpoint is a URL that receives events.
type Endpoint struct {
	URL    string
	Events []string // event types it takes (empty: every doc.* event; session.* events are opt-in); "doc.*", "session.*" take a family
	Secret []byte   // signs the requests (required)
}

func (e Endpoint) wants(typ string) bool {
	if len(e.Events) == 0 {
		return strings.HasPrefix(typ, "doc.")
	}
	for _, f := range e.Events {
		if f == typ || (len(f) > 1 && f[len(f)-1] == '*' && len(typ) >= len(f)-1 && typ[:len(f)-1] == f[:len(f)-1]) {
			return true
		}
	}
	return false
}

// Options configure an Outbox. Zero fields take the defaults beside them.
type Options struct {
	Endpoints   []Endpoint
	Client      *http.Client  // default: a client with a 10 s timeout
	MaxAttempts int           // attempts before a record is a dead letter (default 12)
	Backoff     time.Duration // first retry delay, doubled each attempt (default 1s)
	MaxBackoff  time.Duration // the longest retry delay (default 10m)
	Logger      *slog.Logger  // nil: none
}

// Stats count delivery attempts since Open.
type Stats struct {
	Delivered, Retried, Dead uint64
}

// Record is an event on its way to one endpoint.
type Record struct {
	Seq       uint64    `json:"-"`
	Event     Event     `json:"event"`
	URL       string    `json:"url"`
	Attempts  int       `json:"attempts"`
	Next      time.Time `json:"next"`
	LastError string    `json:"last_error,omitempty"`
}

var (
	bucketPending = []byte("pending")
	bucketDead    = []byte("dead")
)

// ErrNoEndpoint: a record's URL is no longer configured.
var ErrNoEndpoint = errors.New("webhook: endpoint not configured")

// Outbox is the durable queue of events to deliver.
type Outbox struct {
	db   *bolt.DB
	opts Options
	wake chan struct{} // capacity 1: a record was added or made due
	done chan struct{} // capacity 1: an attempt finished (Attempted)

	delivered, retried, dead atomic.Uint64
}

// Attempted is signalled (coalesced) after every delivery attempt, once
// its outcome is recorded: a watcher of Stats or Counts waits on it.
func (b *Outbox) Attempted() <-chan struct{} { return b.done }

// Stats returns the delivery counters.
func (b *Outbox) Stats() Stats {
	return Stats{Delivered: b.delivered.Load(), Retried: b.retried.Load(), Dead: b.dead.Load()}
}

// Open opens (creating it if needed) the outbox file at path.
func Open(path string, o Options) (*Outbox, error) {
	for _, e := range o.Endpoints {
		if len(e.Secret) == 0 {
			return nil, fmt.Errorf("webhook: endpoint %s has no secret", e.URL)
		}
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("webhook: outbox: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPending, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("webhook: outbox: %w", err)
	}
	return &Outbox{db: db, opts: o, wake: make(chan struct{}, 1), done: make(chan struct{}, 1)}, nil
}

// Close closes the file (after Run has returned).
func (b *Outbox) Close() error { return b.db.Close() }

// Wants reports whether some endpoint takes events of type typ.
func (b *Outbox) Wants(typ string) bool {
	for _, e := range b.opts.Endpoints {
		if e.wants(typ) {
			return true
		}
	}
	return false
}

// Enabled reports whether any endpoint is configured.
func (b *Outbox) Enabled() bool { return len(b.opts.Endpoints) > 0 }

// Enqueue stores ev for every endpoint that takes its type, durably, and
// wakes the sender. It returns the number of records written.
func (b *Outbox) Enqueue(ev Event) (int, error) {
	var recs []Record
	for _, e := range b.opts.Endpoints {
		if e.wants(ev.Type) {
			recs = append(recs, Record{Event: ev, URL: e.URL})
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketPending)
		for _, r := range recs {
			seq, err := p.NextSequence()
			if err != nil {
				return err
			}
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := p.Put(key(seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("webhook: enqueue: %w", err)
	}
	b.signal()
	return len(recs), nil
}

func (b *Outbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// List returns up to limit records of "pending" or "dead", oldest first.
func (b *Outbox) List(state string, limit int) ([]Record, error) {
	name := bucketPending
	if state == "dead" {
		name = bucketDead
	}
	var out []Record
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(name).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			r.Seq = binary.BigEndian.Uint64(k)
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Retry moves dead letters back to the queue with a fresh attempt count:
// the one with seq, or every one when seq is 0. It returns how many moved.
func (b *Outbox) Retry(seq uint64) (int, error) {
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		dead, p := tx.Bucket(bucketDead), tx.Bucket(bucketPending)
		var keys [][]byte
		if seq != 0 {
			if dead.Get(key(seq)) != nil {
				keys = append(keys, key(seq))
			}
		} else {
			_ = dead.ForEach(func(k, _ []byte) error { keys = append(keys, slices.Clone(k)); return nil })
		}
		for _, k := range keys {
			var r Record
			if err := json.Unmarshal(dead.Get(k), &r); err != nil {
				return err
			}
			r.Attempts, r.Next, r.LastError = 0, time.Time{}, ""
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := p.Put(k, v); err != nil {
				return err
			}
			if err := dead.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if n > 0 {
		b.signal()
	}
	return n, err
}

// Counts returns the pending and dead record counts.
func (b *Outbox) Counts() (pending, dead int) {
	_ = b.db.View(func(tx *bolt.Tx) error {
		pending, dead = tx.Bucket(bucketPending).Stats().KeyN, tx.Bucket(bucketDead).Stats().KeyN
		return nil
	})
	return pending, dead
}

// Run delivers records until ctx ends: the due ones in order, then it
// waits for the next one to be due or for Enqueue.
func (b *Outbox) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next, err := b.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			b.opts.Logger.Error("webhook outbox", "err", err)
			next = time.Now().Add(time.Second)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-timer.C:
		}
	}
}

// deliverDue attempts every due record once; it returns when the earliest
// record not yet due is.
func (b *Outbox) deliverDue(ctx context.Context) (time.Time, error) {
	for ctx.Err() == nil {
		r, next, err := b.firstDue()
		if err != nil || r == nil {
			return next, err
		}
		b.attempt(ctx, r)
	}
	return time.Time{}, nil
}

// firstDue returns the oldest due record, or nil and when the next is due.
func (b *Outbox) firstDue() (*Record, time.Time, error) {
	var due *Record
	var next time.Time
	now := time.Now()
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			r.Seq = binary.BigEndian.Uint64(k)
			if !r.Next.After(now) {
				due = &r
				return nil
			}
			if next.IsZero() || r.Next.Before(next) {
				next = r.Next
			}
		}
		return nil
	})
	return due, next, err
}

// attempt POSTs one record and records the outcome.
func (b *Outbox) attempt(ctx context.Context, r *Record) {
	err := b.post(ctx, r)
	if ctx.Err() != nil {
		return // shutting down: the record stays as it was
	}
	outcome := "ok"
	upd := func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketPending)
		if err == nil {
			return p.Delete(key(r.Seq))
		}
		r.Attempts++
		r.LastError = err.Error()
		if r.Attempts >= b.opts.MaxAttempts || errors.Is(err, ErrNoEndpoint) {
			outcome = "dead"
			v, _ := json.Marshal(r)
			if err := tx.Bucket(bucketDead).Put(key(r.Seq), v); err != nil {
				return err
			}
			return p.Delete(key(r.Seq))
		}
		outcome = "retry"
		r.Next = time.Now().Add(b.backoff(r.Attempts))
		v, _ := json.Marshal(r)
		return p.Put(key(r.Seq), v)
	}
	if uerr := b.db.Update(upd); uerr != nil {
		b.opts.Logger.Error("webhook outbox update", "err", uerr)
	}
	if outcome != "ok" {
		b.opts.Logger.Warn("webhook delivery failed", "url", r.URL, "event", r.Event.ID, "type", r.Event.Type,
			"attempt", r.Attempts, "outcome", outcome, "err", err)
	}
	switch outcome {
	case "ok":
		b.delivered.Add(1)
	case "retry":
		b.retried.Add(1)
	case "dead":
		b.dead.Add(1)
	}
	select {
	case b.done <- struct{}{}:
	default:
	}
}

// backoff is the delay before attempt n+1: exponential with full jitter.
func (b *Outbox) backoff(n int) time.Duration {
	d := float64(b.opts.Backoff) * math.Pow(2, float64(n-1))
	d = min(d, float64(b.opts.MaxBackoff))
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

func (b *Outbox) post(ctx context.Context, r *Record) error {
	var ep *Endpoint
	for i := range b.opts.Endpoints {
		if b.opts.Endpoints[i].URL == r.URL {
			ep = &b.opts.Endpoints[i]
		}
	}
	if ep == nil {
		return fmt.Errorf("%w: %s", ErrNoEndpoint, r.URL)
	}
	body, err := json.Marshal(r.Event)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "collabd-webhook")
	req.Header.Set("Collabd-Event-Id", r.Event.ID)
	req.Header.Set("Collabd-Event-Type", r.Event.Type)
	req.Header.Set("Collabd-Signature", Sign(ep.Secret, time.Now(), body))
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
