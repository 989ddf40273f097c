package owner

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/collabd/collabd/protocol"
)

// ErrNoDocument answers a Read of a document that was never written.
var ErrNoDocument = errors.New("owner: no such document")

// follow starts an HTTP follower: the text of its root, or the steps after
// its resume point when the change log still has them all (else a reset),
// then every later step; presence with the next flush.
func (o *Owner) follow(m Follow) {
	version := o.doc.Version()
	start := &FeedStartEvent{Version: version}
	text, _ := o.doc.Text(m.Root)
	var js []byte
	if v, ok := o.doc.(Viewer); ok {
		js, _ = v.RootJSON(m.Root)
	}
	switch steps, ok := o.resume(m.Since, version); {
	case js != nil && m.Since != nil && *m.Since == version:
		start.Current = true
	case js != nil: // a map, array or fragment: its JSON now, never steps
		start.JSON = js
	case m.Since == nil:
		start.Text = text
	case ok && len(steps) == 0:
		start.Current = true
	case ok && (m.MaxSteps == 0 || len(steps) <= m.MaxSteps):
		start.Steps = steps
	default:
		start.Text, start.Reset = text, true
	}
	if !m.Sub.Deliver(start) {
		return
	}
	o.putSub(m.Sub, &sub{follows: true, root: m.Root})
	o.pres.markStale(m.Sub) // the whole presence with the next flush
	o.schedulePresence(time.Now())
}

func (o *Owner) resume(since *uint64, now uint64) ([]Step, bool) {
	if since == nil {
		return nil, false
	}
	return o.changes.since(*since, now)
}

// followerCount and trackFollowers keep the followers gauge. The count is
// kept by putSub and dropSub: handle asks for it around every message, and
// counting the subscribers each time was a tenth of the server's CPU in a
// presence storm (100 subscribers, 3,000 messages/s).
func (o *Owner) followerCount() int { return o.followers }

// putSub adds or replaces subscriber s; every change of o.subs goes through
// putSub, dropSub or clearSubs, which keep o.followers and o.order. A new
// subscriber goes to the end of o.order; a replaced one keeps its place.
func (o *Owner) putSub(s Subscriber, st *sub) {
	old, had := o.subs[s]
	if old != nil && old.follows {
		o.followers--
	}
	if st.follows {
		o.followers++
	}
	o.subs[s] = st
	if !had {
		o.order = append(o.order, s)
	}
}

// dropSub forgets subscriber s (see putSub). Removing it from o.order is a
// scan and a copy into a new array (a few microseconds at 500 subscribers,
// once per leave): a loop over the old o.order (step) may be running, and
// its array must not shift under it.
func (o *Owner) dropSub(s Subscriber) {
	old, had := o.subs[s]
	if !had {
		return
	}
	if old != nil && old.follows {
		o.followers--
	}
	delete(o.subs, s)
	if i := slices.Index(o.order, s); i >= 0 {
		o.order = append(o.order[:i:i], o.order[i+1:]...)
	}
}

// clearSubs forgets every subscriber (see putSub); o.followers is left as
// it was, as before o.order existed.
func (o *Owner) clearSubs() {
	o.subs = make(map[Subscriber]*sub)
	o.order = nil
}

func (o *Owner) trackFollowers(before int) {
	if d := o.followerCount() - before; d != 0 {
		o.metrics().Followers(d)
	}
}

// read answers a Read.
func (o *Owner) read(m Read) ReadResult {
	if !o.exists && o.doc.Version() == 0 {
		return ReadResult{Err: ErrNoDocument}
	}
	r := ReadResult{Kind: o.kind, Version: o.doc.Version()}
	switch m.What {
	case ReadSnapshot:
		r.Snapshot = o.doc.Snapshot()
	case ReadText:
		r.Text, _ = o.doc.Text(m.Root)
	case ReadInfo:
		r.Text, _ = o.doc.Text(m.Root)
		r.Roots, r.Clock, r.Pending = o.doc.Roots(), o.doc.Clock(), o.doc.Pending()
		r.Peers = o.pres.set.Len()
		r.Awareness = o.awarenessStates()
		if v, ok := o.doc.(Viewer); ok {
			r.Content = v.Content()
		}
		for _, st := range o.subs {
			if st.peer {
				r.Sessions++
			}
		}
	}
	return r
}

// edit applies a REST edit batch: rebased over the steps since its version,
// all or nothing, at most once per idempotency key; the reply comes when it
// is durable.
func (o *Owner) edit(m Edit) {
	if m.Key != "" {
		if r, ok := o.idem.get(m.Key); ok {
			r.Replay = true
			answer(m.Reply, r)
			return
		}
	}
	now := o.doc.Version()
	var ps []Prim
	if m.Version != nil {
		steps, ok := o.changes.since(*m.Version, now)
		if !ok {
			answer(m.Reply, EditResult{Err: &Refused{protocol.CodeResync, fmt.Sprintf("version %d is not in the recent history (now %d): read the document and retry", *m.Version, now)}})
			return
		}
		ps = rebase(m.Edits, splicesOf(steps, m.Root))
	} else {
		ps = Prims(m.Edits)
	}
	if len(ps) == 0 {
		answer(m.Reply, EditResult{Version: now})
		return
	}
	update, changes, err := o.doc.Edit(m.Root, ps)
	if err != nil {
		code := protocol.CodeInvalidOp
		if errors.Is(err, ErrTooLarge) {
			code = protocol.CodeDocTooLarge
		}
		err = &Refused{code, err.Error()}
		if update == nil { // refused before anything applied
			answer(m.Reply, EditResult{Err: err})
			return
		}
		// What applied before the document hit its size limit is stored
		// (memory never holds what storage does not); the edit still fails.
	}
	res := EditResult{Version: o.doc.Version(), Applied: len(ps)}
	if m.Key != "" && err == nil {
		o.idem.put(m.Key, res)
	}
	if len(update) == 0 && err == nil { // the edits changed nothing: nothing to store or send
		answer(m.Reply, res)
		return
	}
	o.serverUpdate(now, [][]byte{update}, changes, func(stored error) {
		switch {
		case stored != nil:
			answer(m.Reply, EditResult{Err: stored})
		case err != nil:
			answer(m.Reply, EditResult{Err: err})
		default:
			answer(m.Reply, res)
		}
	})
}

// importFrom merges a replica loaded from a snapshot.
func (o *Owner) importFrom(m Import) {
	if err := o.ensureKind(m.Kind); err != nil {
		answer(m.Reply, ImportResult{Err: err})
		return
	}
	if max := maxUpdate(o.cfg.Store); max > 0 {
		if w, ok := o.doc.(WholeMerger); ok && w.MergesWhole() {
			if n := len(m.From.Snapshot()); n > max {
				answer(m.Reply, ImportResult{Err: &Refused{protocol.CodeFrameTooLarge, fmt.Sprintf(
					"the imported state is %d bytes, stored as one update, and this server stores updates up to %d bytes (in a cluster, one NATS message)", n, max)}})
				return
			}
		}
	}
	before := o.doc.Version()
	updates, changes, err := o.doc.Merge(m.From)
	if err != nil {
		code := protocol.CodeInvalidOp
		if errors.Is(err, ErrTooLarge) {
			code = protocol.CodeDocTooLarge
		}
		err = &Refused{code, err.Error()}
	}
	version := o.doc.Version()
	reply := func(stored error) {
		if stored == nil {
			stored = err
		}
		answer(m.Reply, ImportResult{Err: stored, Version: version})
	}
	if len(updates) == 0 {
		reply(nil)
		return
	}
	o.serverUpdate(before, updates, changes, reply)
}

// serverUpdate fans out and stores updates the owner made itself (REST
// edits, imports), already applied (the document was at version before).
func (o *Owner) serverUpdate(before uint64, updates [][]byte, changes []Change, reply func(error)) {
	version := o.doc.Version()
	o.markExists()
	var chunks [][]byte
	for _, u := range updates {
		chunks = append(chunks, o.doc.Split(u)...)
	}
	// Every update here brought something new (the engines say so): it is
	// a step even when the version did not move (a Yjs delete).
	o.metrics().Applied(version - before)
	o.step(&UpdateEvent{Doc: o.id, Updates: chunks, From: before, Version: version, Changes: changes}, nil)
	o.events().Changed(o.id, before, version, "")
	o.store(chunks, commit{version: version, reply: reply})
	o.noteChange(before, "")
}

// delete deletes the document: from now on every new request is refused;
// the tombstone goes to the store behind the commits in flight (their acks
// go out first), and once it is durable every subscriber is told and the
// reply sent. The owner never waits for it.
func (o *Owner) delete(m Delete) {
	p, err := o.cfg.Store.Delete(o.id)
	if err != nil {
		answer(m.Reply, fmt.Errorf("delete: %w", err))
		return
	}
	o.failed = ErrDeleted
	o.commits.push(commit{p: p, reply: func(err error) {
		if err != nil {
			o.failed = nil // the document is still there
			answer(m.Reply, fmt.Errorf("delete: %w", err))
			return
		}
		o.deleted()
		o.events().Deleted(o.id)
		answer(m.Reply, nil)
	}})
}

// deleted tells every subscriber the document is gone and forgets them.
func (o *Owner) deleted() {
	ev := &ErrorEvent{Doc: o.id, Code: protocol.CodeDocDeleted, Message: "document deleted", End: true}
	now := time.Now()
	for s, st := range o.subs {
		o.deliver(s, ev)
		o.dropSub(s)
		if st.peer {
			o.presenceLeave(s, now)
		}
	}
}

// answer sends a reply without ever blocking the owner: reply channels have
// capacity 1 and get one answer (a second, after a recovered panic already
// answered, is dropped).
func answer[T any](reply chan<- T, v T) {
	select {
	case reply <- v:
	default:
	}
}

// idemCache remembers the results of recent REST edits by idempotency key
// (bounded, oldest forgotten first; in memory while the document is loaded).
type idemCache struct {
	max   int
	order []string
	seen  map[string]EditResult
}

func newIdemCache(max int) idemCache {
	return idemCache{max: max} // seen is made with the first key
}

func (c *idemCache) get(key string) (EditResult, bool) {
	r, ok := c.seen[key]
	return r, ok
}

func (c *idemCache) put(key string, r EditResult) {
	if c.seen == nil {
		c.seen = make(map[string]EditResult)
	}
	if _, ok := c.seen[key]; !ok {
		c.order = append(c.order, key)
	}
	c.seen[key] = r
	for len(c.order) > c.max {
		delete(c.seen, c.order[0])
		c.order = c.order[1:]
	}
}
