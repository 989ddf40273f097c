package server

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/server/webhook"
)

// Hooks let a program that embeds the server (server.New) react to its
// documents. Each is optional; they are called one at a time on the
// server's event goroutine, never on a document's owner, each with a
// context that ends after Config.HookTimeout: a slow hook delays the next
// hook and webhook, never an editor.
type Hooks struct {
	// OnAuthenticate has the last word on every authenticated connection
	// and request (auth mode): called with the claims a token or the auth
	// callback gave, on the connecting goroutine with HookTimeout; an
	// error refuses it (forbidden, 4502 / 403).
	OnAuthenticate func(ctx context.Context, a AuthInfo) error
	// OnLoad: a document was loaded into memory (exists: it was stored
	// before; false for a new document).
	OnLoad func(ctx context.Context, doc string, exists bool)
	// OnChange: a document changed; changes within Config.EventDebounce of
	// the first are reported together (From..To, every author).
	OnChange func(ctx context.Context, c Change)
	// OnDelete: a document was deleted (its tombstone is durable).
	OnDelete func(ctx context.Context, doc string)
}

// Change is what OnChange and the doc.changed webhook tell.
type Change struct {
	Doc      string            `json:"-"`
	From     uint64            `json:"from"`              // version before the first change reported
	To       uint64            `json:"to"`                // version after the last one
	Authors  []string          `json:"authors,omitempty"` // token subjects of the sessions that wrote (none for the server's own edits and in development mode)
	Created  bool              `json:"created,omitempty"` // the first write to a new document is among them
	Text     map[string]string `json:"text,omitempty"`    // root -> text, when asked for (Hooks: always; webhooks: Config.WebhookText)
	Duration time.Duration     `json:"-"`                 // how long the changes took to come in
}

// docEvents is what happened to one document since the last flush.
type docEvents struct {
	loaded, exists   bool // Loaded (and its exists)
	created, deleted bool
	newDoc           bool // created since the last change reported (Change.Created)
	changed          bool
	from, to         uint64
	authors          []string
	since            time.Time // the first change not yet reported
}

// dispatcher turns the owners' document events into hook calls and
// webhook events. Owners record events under the mutex (no I/O, never
// blocking); its goroutine reports them: loads, creations and deletions at
// once, changes debounced per document.
type dispatcher struct {
	srv *Server

	mu       sync.Mutex // guards docs, sessions, dropped
	docs     map[string]*docEvents
	sessions []webhook.Event // session.joined / session.left, in order
	dropped  int             // session events dropped past maxSessionEvents
	wake     chan struct{}   // capacity 1

	wantSessions bool // some webhook takes session.* events
}

// maxSessionEvents bounds the session events waiting for the dispatcher
// (a burst of joins never grows memory without bound: past it they are
// dropped, and counted in the log).
const maxSessionEvents = 10000

var _ owner.Events = (*dispatcher)(nil)

func newDispatcher(s *Server) *dispatcher {
	d := &dispatcher{srv: s, docs: make(map[string]*docEvents), wake: make(chan struct{}, 1)}
	if out := s.cfg.Webhooks; out != nil {
		d.wantSessions = out.Wants("session.joined") || out.Wants("session.left")
	}
	return d
}

func (d *dispatcher) Joined(doc, session, subject string) {
	d.session("session.joined", doc, map[string]string{"session": session, "subject": subject})
}

func (d *dispatcher) Left(doc, session string) {
	d.session("session.left", doc, map[string]string{"session": session})
}

// session queues a session event (opt-in: only when a webhook takes it).
func (d *dispatcher) session(typ, doc string, data map[string]string) {
	if !d.wantSessions {
		return
	}
	raw, _ := json.Marshal(data)
	ev := webhook.Event{ID: webhook.NewID(), Type: typ, Doc: doc, Time: time.Now().UTC(), Data: raw}
	d.mu.Lock()
	if len(d.sessions) < maxSessionEvents {
		d.sessions = append(d.sessions, ev)
	} else {
		d.dropped++
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) record(doc string, f func(e *docEvents)) {
	d.mu.Lock()
	e := d.docs[doc]
	if e == nil {
		e = &docEvents{}
		d.docs[doc] = e
	}
	f(e)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) Loaded(doc string, exists bool) {
	if d.srv.cfg.Hooks.OnLoad == nil {
		return
	}
	d.record(doc, func(e *docEvents) { e.loaded, e.exists = true, exists })
}

func (d *dispatcher) Created(doc string) {
	d.record(doc, func(e *docEvents) { e.created, e.newDoc = true, true })
}

func (d *dispatcher) Changed(doc string, from, to uint64, author string) {
	d.record(doc, func(e *docEvents) {
		if !e.changed {
			e.changed, e.from, e.since = true, from, time.Now()
		}
		e.to = to
		if author != "" && !slices.Contains(e.authors, author) {
			e.authors = append(e.authors, author)
		}
	})
}

func (d *dispatcher) Deleted(doc string) { d.record(doc, func(e *docEvents) { e.deleted = true }) }

// run reports events until ctx ends, then reports what is left at once.
func (d *dispatcher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := d.flush(ctx, time.Now(), false)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			d.flush(context.Background(), time.Now(), true)
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// flush reports the events that are due (all of them when final) and
// returns when the next debounced change is due (zero: none waits).
func (d *dispatcher) flush(ctx context.Context, now time.Time, final bool) time.Time {
	debounce := d.srv.cfg.EventDebounce
	type due struct {
		doc string
		ev  docEvents
	}
	var out []due
	var next time.Time
	d.mu.Lock()
	for doc, e := range d.docs {
		ready := *e
		ready.changed = e.changed && (final || e.deleted || now.Sub(e.since) >= debounce)
		if !ready.loaded && !ready.created && !ready.deleted && !ready.changed {
			if e.changed { // a change waiting for its debounce (else: only newDoc, kept for the next change)
				if at := e.since.Add(debounce); next.IsZero() || at.Before(next) {
					next = at
				}
			}
			continue
		}
		out = append(out, due{doc, ready})
		if ready.changed || !e.changed {
			if e.newDoc && !ready.changed && !e.deleted {
				// Reported as created before its first change was recorded
				// (the owner records Created, then Changed): the change,
				// when it comes, is still the new document's.
				*e = docEvents{newDoc: true}
				continue
			}
			delete(d.docs, doc)
			continue
		}
		// The change waits on: keep it, report the rest now.
		e.loaded, e.created, e.deleted = false, false, false
		if at := e.since.Add(debounce); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	sessions, dropped := d.sessions, d.dropped
	d.sessions, d.dropped = nil, 0
	d.mu.Unlock()
	for _, x := range out {
		d.report(ctx, x.doc, x.ev, now)
	}
	if dropped > 0 {
		d.srv.cfg.Logger.Warn("session webhook events dropped: too many at once", "dropped", dropped)
	}
	for _, ev := range sessions {
		if _, err := d.srv.cfg.Webhooks.Enqueue(ev); err != nil {
			d.srv.cfg.Logger.Error("webhook event not stored", "doc", ev.Doc, "type", ev.Type, "err", err)
		}
	}
	return next
}

// report calls the hooks and enqueues the webhook events of one document.
func (d *dispatcher) report(ctx context.Context, doc string, e docEvents, now time.Time) {
	h := d.srv.cfg.Hooks
	hook := func(f func(context.Context)) {
		hctx, cancel := context.WithTimeout(ctx, d.srv.cfg.HookTimeout)
		defer cancel()
		f(hctx)
	}
	if e.loaded && h.OnLoad != nil {
		hook(func(c context.Context) { h.OnLoad(c, doc, e.exists) })
	}
	if e.created {
		d.webhook(doc, "doc.created", nil, now)
	}
	if e.changed {
		c := Change{Doc: doc, From: e.from, To: e.to, Authors: e.authors, Created: e.newDoc, Duration: now.Sub(e.since)}
		if !e.deleted && (h.OnChange != nil || d.srv.cfg.WebhookText) {
			c.Text = d.texts(ctx, doc)
		}
		if h.OnChange != nil {
			hook(func(ctx context.Context) { h.OnChange(ctx, c) })
		}
		wc := c
		if !d.srv.cfg.WebhookText {
			wc.Text = nil
		}
		data, _ := json.Marshal(wc)
		d.webhook(doc, "doc.changed", data, now)
	}
	if e.deleted {
		if h.OnDelete != nil {
			hook(func(c context.Context) { h.OnDelete(c, doc) })
		}
		d.webhook(doc, "doc.deleted", nil, now)
	}
}

// texts reads every root of doc as text (for hooks and webhooks).
func (d *dispatcher) texts(ctx context.Context, doc string) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, d.srv.cfg.HookTimeout)
	defer cancel()
	info, err := ask(ctx, d.srv, doc, func(reply chan<- owner.ReadResult) owner.Msg {
		return owner.Read{What: owner.ReadInfo, Reply: reply}
	})
	if err != nil || info.Err != nil {
		return nil
	}
	out := make(map[string]string, len(info.Roots))
	for _, r := range info.Roots {
		res, err := ask(ctx, d.srv, doc, func(reply chan<- owner.ReadResult) owner.Msg {
			return owner.Read{Root: r, What: owner.ReadText, Reply: reply}
		})
		if err == nil && res.Err == nil {
			out[r] = res.Text
		}
	}
	return out
}

// webhook enqueues one event in the outbox (when webhooks are configured).
func (d *dispatcher) webhook(doc, typ string, data json.RawMessage, now time.Time) {
	out := d.srv.cfg.Webhooks
	if out == nil || !out.Enabled() {
		return
	}
	if data == nil {
		data = json.RawMessage(`{}`)
	}
	if _, err := out.Enqueue(webhook.Event{ID: webhook.NewID(), Type: typ, Doc: doc, Time: now.UTC(), Data: data}); err != nil {
		d.srv.cfg.Logger.Error("webhook event not stored", "doc", doc, "type", typ, "err", err)
	}
}
