package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// Document is a joined document. Its methods are safe for concurrent use;
// they run on the client's loop (see the package doc).
type Document struct {
	c  *Client
	id string
	st *docState // touched only on the loop
}

// Status is how far a document's local edits have got.
type Status struct {
	Unapplied int    // batches the server has not yet acked applied
	Undurable int    // batches the server has not yet acked durable (includes Unapplied)
	Version   uint64 // local document version (ops seen)
	Live      bool   // joined and synced on the current connection
}

// Saved reports whether every local edit is durable on the server.
func (s Status) Saved() bool { return s.Undurable == 0 }

// batch is a local update on its way to the server.
type batch struct {
	id      uint64
	update  []byte
	from    uint64 // first seq of the client's agent it holds
	applied bool
	durable bool
}

// docState is a document as the loop sees it.
type docState struct {
	id      string
	doc     *crdt.Doc
	live    bool // the final sync of the current join has arrived
	joining bool // a join was sent on the current connection
	synced  bool // the initial sync has completed once
	unacked []*batch
	retryAt time.Time // zero: no document retry scheduled
	// joinDeadline: the current Join is sent again if neither a sync chunk
	// nor an error has come by then (zero: not waiting).
	joinDeadline time.Time
	retries      int
	err          error // terminal error for this document
	left         bool

	joinWaiters    []chan error
	durableWaiters []durableWaiter
	changes        chan struct{} // capacity 1
	messages       chan Message  // broadcast messages; dropped when full
	pres           docPresence
	snap           []byte // the snapshot pieces of the current cold join so far
}

type durableWaiter struct {
	upto uint64 // every batch with id <= upto must be durable
	ch   chan error
}

// Join joins the document id and returns once its initial sync has been
// applied. Joining a document already joined returns the same Document.
// If ctx ends first, the document is left. A replica with nothing asks for
// the document's snapshot (docs/PROTOCOL.md, cold join): its texts are read
// at once and the CRDT structure is built on the first op; the replica View
// and Edit pass is then the loaded snapshot (which is why fn must not keep it).
func (c *Client) Join(ctx context.Context, id string) (*Document, error) {
	if err := protocol.CheckDocID(id, 0); err != nil {
		return nil, fmt.Errorf("collab: %w", err)
	}
	var d *docState
	ready := make(chan error, 1)
	err := c.do(func() {
		d = c.docs[id]
		if d == nil {
			d = &docState{id: id, doc: crdt.NewDoc(crdt.Options{Agent: c.agent}), changes: make(chan struct{}, 1),
				messages: make(chan Message, messageQueue), pres: newDocPresence()}
			c.docs[id] = d
			if c.cn != nil && c.cn.welcome {
				c.join(d)
			}
		}
		switch {
		case d.err != nil:
			ready <- d.err
		case d.synced:
			ready <- nil
		default:
			d.joinWaiters = append(d.joinWaiters, ready)
		}
	})
	if err != nil {
		return nil, err
	}
	doc := &Document{c: c, id: id, st: d}
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
		_ = c.do(func() {
			if !d.synced && c.docs[id] == d {
				c.leave(d, err)
			}
		})
	}
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// join sends a Join with the document's state vector on the current
// (welcomed) connection. A replica with nothing asks for the snapshot (the
// cold join: the texts are read at once, the structure built on first use).
func (c *Client) join(d *docState) {
	d.live, d.joining, d.snap = false, true, nil
	d.joinDeadline = time.Time{}
	if c.opts.JoinTimeout > 0 {
		d.joinDeadline = time.Now().Add(c.opts.JoinTimeout)
	}
	cold := d.doc.Version() == 0 && d.doc.Pending() == 0
	c.send(&protocol.Join{Doc: d.id, SV: d.doc.StateVector(), Snapshot: cold})
}

// rejoin restarts the sync of a document on the same connection.
func (c *Client) rejoin(d *docState) {
	if d.joining {
		c.send(&protocol.Leave{Doc: d.id})
	}
	c.join(d)
}

// leave forgets a document, failing its waiters with err.
func (c *Client) leave(d *docState, err error) {
	if d.joining && c.cn != nil {
		c.send(&protocol.Leave{Doc: d.id})
	}
	delete(c.docs, d.id)
	d.left = true
	d.fail(err)
}

// sync applies one Sync chunk; on the final one the document is live: the
// client sends its own ops the server lacks and resends unacked batches.
func (c *Client) sync(d *docState, m *protocol.Sync) {
	if !d.joining {
		return
	}
	d.joinDeadline = time.Time{}
	if !m.Final && c.opts.JoinTimeout > 0 {
		d.joinDeadline = time.Now().Add(c.opts.JoinTimeout) // progress: the rest is on its way
	}
	before := d.doc.Version()
	var err error
	if m.Snapshot {
		err = c.syncSnapshot(d, m)
	} else {
		err = d.doc.ApplyUpdate(m.Update)
	}
	if err != nil {
		c.log.Warn("sync chunk refused; retrying", "doc", d.id, "err", err)
		d.retries++
		d.retryAt = time.Now().Add(backoff(d.retries-1, 0, 0.5, c.opts.BackoffBase, c.opts.BackoffMax))
		d.joining = false
		c.send(&protocol.Leave{Doc: d.id})
		return
	}
	if d.doc.Version() != before {
		d.notify()
	}
	if !m.Final {
		return
	}
	d.live = true
	d.retries = 0
	// Own ops the server lacks and that no unacked batch holds (the server
	// lost them, e.g. restored from a backup): send them as a new batch.
	// Other agents' ops cannot be sent (the server refuses ops of agents a
	// session did not claim).
	lowest := d.doc.StateVector()[c.agent]
	for _, b := range d.unacked {
		lowest = min(lowest, b.from)
	}
	if m.SV[c.agent] < lowest {
		if u := ownOps(d.doc.EncodeDiff(m.SV), c.agent); u != nil {
			c.addBatch(d, u, m.SV[c.agent])
		}
	}
	for _, b := range d.unacked {
		b.applied, b.durable = false, false
		c.send(&protocol.Update{Doc: d.id, Batch: b.id, Update: b.update})
	}
	c.presenceResumed(d)
	if !d.synced {
		d.synced = true
		for _, w := range d.joinWaiters {
			w <- nil
		}
		d.joinWaiters = nil
	}
	d.checkDurable()
}

// syncSnapshot takes one piece of a cold join's snapshot; with the final
// one it loads the snapshot: it becomes the document if the replica still
// has nothing, else (local edits made while joining) its whole history is
// applied to the replica.
func (c *Client) syncSnapshot(d *docState, m *protocol.Sync) error {
	if m.Chunk == 0 {
		d.snap = d.snap[:0]
	}
	if lim := d.doc.Limits().MaxSnapshot; len(m.Update) > lim-len(d.snap) {
		d.snap = nil
		return fmt.Errorf("collab: snapshot of %q larger than %d bytes", d.id, lim)
	}
	d.snap = append(d.snap, m.Update...)
	if !m.Final {
		return nil
	}
	b := d.snap
	d.snap = nil
	loaded, err := crdt.LoadSnapshot(b, crdt.Options{Agent: c.agent, Limits: d.doc.Limits()})
	if err != nil {
		return err
	}
	if d.doc.Version() == 0 && d.doc.Pending() == 0 {
		d.doc = loaded
		return nil
	}
	if err := d.doc.ApplyUpdate(loaded.EncodeDiff(d.doc.StateVector())); err != nil {
		return err
	}
	if p := loaded.PendingUpdate(); p != nil {
		return d.doc.ApplyUpdate(p)
	}
	return nil
}

// ownOps keeps the ops of agent in update u; nil if there are none.
func ownOps(u []byte, agent crdt.AgentID) []byte {
	ops, err := crdt.DecodeUpdate(u, crdt.Limits{})
	if err != nil {
		return nil
	}
	mine := ops[:0]
	for _, op := range ops {
		if op.ID.Agent == agent {
			mine = append(mine, op)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	b, err := crdt.EncodeOps(mine)
	if err != nil {
		return nil
	}
	return b
}

// remote applies an update fanned out by the server.
func (c *Client) remote(d *docState, u []byte) {
	before := d.doc.Version()
	if err := d.doc.ApplyUpdate(u); err != nil {
		c.log.Warn("remote update refused; resyncing", "doc", d.id, "err", err)
		d.live = false
		d.retries++
		d.retryAt = time.Now().Add(backoff(d.retries-1, 0, 0.5, c.opts.BackoffBase, c.opts.BackoffMax))
		return
	}
	if d.doc.Version() != before {
		d.notify()
	}
}

// addBatch queues a local update (split to fit a frame) and sends it if the
// document is live.
func (c *Client) addBatch(d *docState, u []byte, from uint64) {
	limit := protocol.MaxChunk
	if c.limits.MaxFrame > 0 {
		limit = min(limit, c.limits.MaxFrame-1024)
	}
	pieces := [][]byte{u}
	if len(u) > limit {
		if p, err := protocol.SplitUpdate(u, limit); err == nil {
			pieces = p
		}
	}
	for _, p := range pieces {
		c.nextBatch++
		b := &batch{id: c.nextBatch, update: p, from: from}
		d.unacked = append(d.unacked, b)
		if d.live && c.cn != nil {
			c.send(&protocol.Update{Doc: d.id, Batch: b.id, Update: p})
		}
	}
}

// ack records an Ack. Durability is counted in order: a batch leaves the
// queue only when it and every earlier batch are durable, so a batch is never
// dropped while one it may depend on could still be resent.
func (d *docState) ack(m *protocol.Ack) {
	for _, b := range d.unacked {
		if b.id != m.Batch {
			continue
		}
		switch m.Status {
		case protocol.AckApplied:
			b.applied = true
		case protocol.AckDurable:
			b.applied, b.durable = true, true
		}
	}
	d.popDurable()
}

// popDurable drops the durable batches at the front of the queue and wakes
// the waiters they satisfy.
func (d *docState) popDurable() {
	n := 0
	for n < len(d.unacked) && d.unacked[n].durable {
		d.unacked[n] = nil
		n++
	}
	d.unacked = d.unacked[n:]
	d.checkDurable()
}

func (d *docState) checkDurable() {
	kept := d.durableWaiters[:0]
	for _, w := range d.durableWaiters {
		if len(d.unacked) == 0 || d.unacked[0].id > w.upto {
			w.ch <- nil
			continue
		}
		kept = append(kept, w)
	}
	d.durableWaiters = kept
}

func (d *docState) notify() {
	select {
	case d.changes <- struct{}{}:
	default:
	}
}

func (d *docState) disconnected() {
	d.live, d.joining = false, false
	d.joinDeadline = time.Time{}
	d.pres.lost()
}

// terminal ends the document with a terminal server error.
func (d *docState) terminal(e *protocol.Error) {
	if e.Batch != 0 {
		// The batch will never be accepted: drop it so later ones can
		// become durable, and surface the error.
		for i, b := range d.unacked {
			if b.id == e.Batch {
				d.unacked = append(d.unacked[:i], d.unacked[i+1:]...)
				break
			}
		}
	}
	d.err = e
	d.fail(e)
	d.popDurable()
}

func (d *docState) fail(err error) {
	for _, w := range d.joinWaiters {
		w <- err
	}
	d.joinWaiters = nil
	for _, w := range d.durableWaiters {
		w.ch <- err
	}
	d.durableWaiters = nil
}

// ID is the document id.
func (d *Document) ID() string { return d.id }

// Insert inserts s at code point pos of root, applies it locally at once
// and queues it for the server.
func (d *Document) Insert(root string, pos int, s string) error {
	return d.Edit(func(doc *crdt.Doc) error { return doc.Text(root).Insert(pos, s) })
}

// Delete removes n code points of root from pos, locally at once, and
// queues the deletion for the server.
func (d *Document) Delete(root string, pos, n int) error {
	return d.Edit(func(doc *crdt.Doc) error { return doc.Text(root).Delete(pos, n) })
}

// Edit runs fn on the client's loop with the document's replica and queues
// the ops it made as one batch (also when fn returns an error after editing).
// fn must not keep doc or call the client.
func (d *Document) Edit(fn func(doc *crdt.Doc) error) error {
	var err error
	if e := d.c.do(func() {
		st := d.st
		if st.left {
			err = ErrLeft
			return
		}
		from := st.doc.StateVector()[d.c.agent]
		err = fn(st.doc)
		if u := st.doc.TakeUpdate(); u != nil {
			d.c.addBatch(st, u, from)
		}
	}); e != nil {
		return e
	}
	return err
}

// View runs fn on the client's loop with the document's replica, for reads.
// fn must not edit doc, keep it or call the client.
func (d *Document) View(fn func(doc *crdt.Doc)) error {
	return d.c.do(func() { fn(d.st.doc) })
}

// String returns the text of root ("" if it does not exist).
func (d *Document) String(root string) string {
	var s string
	_ = d.View(func(doc *crdt.Doc) {
		for _, r := range doc.Roots() {
			if r == root {
				s = doc.Text(root).String()
			}
		}
	})
	return s
}

// StateVector returns which ops the local replica has seen.
func (d *Document) StateVector() crdt.StateVector {
	var sv crdt.StateVector
	_ = d.View(func(doc *crdt.Doc) { sv = doc.StateVector() })
	return sv
}

// Changes is signalled (capacity 1, coalesced) after remote ops changed the
// local replica. It is never closed.
func (d *Document) Changes() <-chan struct{} { return d.st.changes }

// Message is an ephemeral broadcast on a document: From is the sending
// session's id ("" when the app sent it over HTTP), Data its JSON.
type Message struct {
	From string
	Data json.RawMessage
}

// messageQueue is how many received messages a document holds for its
// reader; past it new ones are dropped (they are ephemeral).
const messageQueue = 256

// Messages delivers the broadcast messages other clients of the document
// (and the app, POST /v1/docs/{id}/messages) send while this client is
// connected. Messages are ephemeral: not stored, not replayed; if the
// reader falls 256 behind, new ones are dropped. It is never closed.
func (d *Document) Messages() <-chan Message { return d.st.messages }

// SendMessage broadcasts v (marshalled to JSON, at most the server's 16 KiB)
// to the document's other clients, if the client is connected and the
// document joined; otherwise it returns ErrNotConnected (messages are never
// queued). The server drops messages from read-only sessions and past its
// rate (20/s by default, answering with an error frame the client logs):
// such a message is lost, which is what ephemeral means.
func (d *Document) SendMessage(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("collab: message: %w", err)
	}
	if e := d.c.do(func() {
		switch {
		case d.st.left:
			err = ErrLeft
		case !d.st.live || d.c.cn == nil:
			err = ErrNotConnected
		default:
			d.c.send(&protocol.Broadcast{Doc: d.id, Data: data})
		}
	}); e != nil {
		return e
	}
	return err
}

// Status counts the batches the server has not yet acked.
func (d *Document) Status() Status {
	var s Status
	_ = d.c.do(func() {
		st := d.st
		for _, b := range st.unacked {
			if !b.applied {
				s.Unapplied++
			}
		}
		s.Undurable = len(st.unacked)
		s.Version = st.doc.Version()
		s.Live = st.live
	})
	return s
}

// Err is the terminal error that ended the document, or nil.
func (d *Document) Err() error {
	var err error
	if e := d.c.do(func() { err = d.st.err }); e != nil {
		return e
	}
	return err
}

// WaitDurable waits until every local edit made before the call is durable
// on the server (kept across reconnects), or ctx ends, or the document or
// client fails.
func (d *Document) WaitDurable(ctx context.Context) error {
	ch := make(chan error, 1)
	if err := d.c.do(func() {
		st := d.st
		switch {
		case st.err != nil:
			ch <- st.err
		case st.left:
			ch <- ErrLeft
		case len(st.unacked) == 0:
			ch <- nil
		default:
			st.durableWaiters = append(st.durableWaiters, durableWaiter{upto: st.unacked[len(st.unacked)-1].id, ch: ch})
		}
	}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-d.c.done:
		select {
		case err := <-ch:
			return err
		default:
			return d.c.stoppedErr()
		}
	}
}

// Leave leaves the document. Edits not yet durable are dropped: call
// WaitDurable first to keep them.
func (d *Document) Leave(ctx context.Context) error {
	err := d.c.do(func() {
		if d.c.docs[d.id] == d.st {
			d.c.leave(d.st, ErrLeft)
		}
	})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	_ = ctx // Leave does not wait for the server
	return err
}
