package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// Requests (the HTTP API's reads, REST edits, app messages, creations,
// deletions, snapshot imports, checkpoints and restores) to a document
// owned by another node go there by NATS request/reply on
// "<prefix>.req.<node>": the owner node answers once the owner has (a
// write: once durable). An import or a restore carries its replica as the
// engine's snapshot, which the owner node loads again (NodeConfig.NewEngine)
// within a byte budget (NodeConfig.MaxBodyBytes); a request larger than
// one NATS message travels in parts (parts.go), as does an answer larger
// than one message.

// request kinds.
const (
	reqRead byte = iota + 1
	reqEdit
	reqBroadcast
	reqCreate
	reqDelete
	reqImport
	reqCheckpoint
	reqRestore
)

// reqTimeout bounds a forwarded request (an edit waits for durability).
const reqTimeout = 30 * time.Second

// reqHeadroom is what a forwarded request leaves of NATS' max payload for
// the message's subject, reply inbox and headers.
const reqHeadroom = 4 << 10

// maxReqInFlight bounds the forwarded requests an owner node serves at once.
const maxReqInFlight = 256

func (n *Node) reqSubject(node string) string { return n.cfg.Prefix + ".req." + node }

// encodeReq encodes a forwardable request (nil: not forwarded).
func encodeReq(doc string, m owner.Msg) []byte {
	w := &writer{}
	w.byte(wireVersion)
	switch m := m.(type) {
	case owner.Read:
		w.byte(reqRead)
		w.string(doc)
		w.string(m.Root)
		w.uint(uint64(m.What))
	case owner.Edit:
		w.byte(reqEdit)
		w.string(doc)
		w.string(m.Root)
		w.uint(uint64(len(m.Edits)))
		for _, e := range m.Edits {
			w.int(int64(e.Pos))
			w.int(int64(e.Del))
			w.string(e.Ins)
		}
		w.bool(m.Version != nil)
		if m.Version != nil {
			w.uint(*m.Version)
		}
		w.string(m.Key)
	case owner.Broadcast:
		if m.From != nil {
			return nil
		}
		w.byte(reqBroadcast)
		w.string(doc)
		w.bytes(m.Data)
	case owner.Create:
		w.byte(reqCreate)
		w.string(doc)
		w.uint(uint64(m.Kind))
	case owner.Delete:
		w.byte(reqDelete)
		w.string(doc)
	case owner.Import:
		if m.From == nil {
			return nil
		}
		w.byte(reqImport)
		w.string(doc)
		w.uint(uint64(m.Kind))
		w.bytes(m.From.Snapshot())
	case owner.Checkpoint:
		w.byte(reqCheckpoint)
		w.string(doc)
		w.string(m.Label)
		w.string(m.Author)
	case owner.Restore:
		w.byte(reqRestore)
		w.string(doc)
		roots := make([]string, 0, len(m.Texts))
		for r := range m.Texts {
			roots = append(roots, r)
		}
		slices.Sort(roots) // one encoding per request
		w.uint(uint64(len(roots)))
		for _, r := range roots {
			w.string(r)
			w.string(m.Texts[r])
		}
		w.bool(m.From != nil)
		if m.From != nil {
			w.uint(uint64(m.Kind))
			w.bytes(m.From.Snapshot())
		}
	default:
		return nil
	}
	return w.b
}

// req is a decoded request; msg builds its owner message around a reply
// channel of the matching type (see serveReq).
type req struct {
	kind    byte
	doc     string
	read    owner.Read
	edit    owner.Edit
	bcast   owner.Broadcast
	docKind owner.Kind // Create; Import and Restore: the snapshot's kind
	ckpt    owner.Checkpoint
	texts   map[string]string // Restore
	hasSnap bool              // Restore: a version replica is sent (Import: always)
	snap    []byte            // Import, Restore: the replica's engine snapshot
}

func decodeReq(b []byte) (*req, error) {
	if len(b) > maxReqBytes {
		return nil, fmt.Errorf("%w: %d bytes", errWire, len(b))
	}
	r := &reader{b: b}
	q := &req{kind: r.header(), doc: r.string(maxWireString)}
	switch q.kind {
	case reqRead:
		q.read.Root = r.string(maxWireString)
		w := r.uint()
		if w < uint64(owner.ReadInfo) || w > uint64(owner.ReadSnapshot) {
			r.fail("read view %d", w)
		}
		q.read.What = owner.ReadWhat(w)
	case reqEdit:
		q.edit.Root = r.string(maxWireString)
		n := r.count(maxWireCount, 3)
		if n > 0 {
			q.edit.Edits = make([]owner.Splice, n)
			for i := range q.edit.Edits {
				q.edit.Edits[i] = owner.Splice{Pos: int(r.int()), Del: int(r.int()), Ins: r.string(maxReqBytes)}
			}
		}
		if r.bool() {
			v := r.uint()
			q.edit.Version = &v
		}
		q.edit.Key = r.string(maxWireString)
	case reqBroadcast:
		q.bcast.Data = r.bytes(maxReqBytes)
	case reqCreate:
		q.docKind = readKind(r)
	case reqDelete:
	case reqImport:
		q.docKind = readKind(r)
		q.hasSnap, q.snap = true, r.bytes(maxReqBytes)
	case reqCheckpoint:
		q.ckpt.Label = r.string(maxWireString)
		q.ckpt.Author = r.string(maxWireString)
	case reqRestore:
		n := r.count(maxWireCount, 2)
		q.texts = make(map[string]string, n)
		for range n {
			root := r.string(maxWireString)
			q.texts[root] = r.string(maxReqBytes)
		}
		if r.err == nil && len(q.texts) != n {
			r.fail("a root twice")
		}
		if q.hasSnap = r.bool(); q.hasSnap {
			q.docKind = readKind(r)
			q.snap = r.bytes(maxReqBytes)
		}
	default:
		r.fail("request kind %d", q.kind)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return q, nil
}

func readKind(r *reader) owner.Kind {
	k := r.uint()
	if k > math.MaxUint8 {
		r.fail("kind %d", k)
	}
	return owner.Kind(k)
}

// Error kinds in a reply.
const (
	errNone byte = iota
	errRefused
	errNoDocument
	errOther
	errExists
)

func writeErr(w *writer, err error) {
	var ref *owner.Refused
	switch {
	case err == nil:
		w.byte(errNone)
	case errors.As(err, &ref):
		w.byte(errRefused)
		w.uint(uint64(ref.Code))
		w.string(ref.Message)
	case errors.Is(err, owner.ErrNoDocument):
		w.byte(errNoDocument)
	case errors.Is(err, owner.ErrExists):
		w.byte(errExists)
	default:
		w.byte(errOther)
		w.string(err.Error())
	}
}

func readErr(r *reader) error {
	switch k := r.byte(); k {
	case errNone:
		return nil
	case errRefused:
		c := r.uint()
		if c > math.MaxUint16 {
			r.fail("code %d", c)
		}
		return &owner.Refused{Code: protocol.Code(c), Message: r.string(maxWireString)}
	case errNoDocument:
		return owner.ErrNoDocument
	case errExists:
		return owner.ErrExists
	case errOther:
		return errors.New(r.string(maxWireString))
	default:
		r.fail("error kind %d", k)
		return nil
	}
}

func encodeReadResult(res owner.ReadResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqRead)
	writeErr(w, res.Err)
	w.uint(uint64(res.Kind))
	w.uint(res.Version)
	w.string(res.Text)
	w.uint(uint64(len(res.Roots)))
	for _, s := range res.Roots {
		w.string(s)
	}
	w.uint(uint64(len(res.Clock)))
	for k, v := range res.Clock {
		w.string(k)
		w.uint(v)
	}
	w.uint(uint64(max(0, res.Pending)))
	w.uint(uint64(max(0, res.Peers)))
	w.uint(uint64(max(0, res.Sessions)))
	w.bool(res.Snapshot != nil)
	w.bytes(res.Snapshot)
	w.uint(uint64(len(res.Awareness)))
	for k, v := range res.Awareness {
		w.uint(k)
		w.string(v)
	}
	w.bool(res.Content != nil)
	w.uint(uint64(len(res.Content)))
	for k, v := range res.Content {
		w.string(k)
		w.bytes(v)
	}
	return w.b
}

func decodeReadResult(b []byte) (owner.ReadResult, error) {
	var res owner.ReadResult
	r := &reader{b: b}
	if k := r.header(); k != reqRead && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	k := r.uint()
	if k > math.MaxUint8 {
		r.fail("kind %d", k)
	}
	res.Kind = owner.Kind(k)
	res.Version = r.uint()
	res.Text = r.string(maxReqBytes)
	if n := r.count(maxWireCount, 1); n > 0 {
		res.Roots = make([]string, n)
		for i := range res.Roots {
			res.Roots[i] = r.string(maxWireString)
		}
	}
	if n := r.count(maxWireCount, 2); n > 0 {
		res.Clock = make(map[string]uint64, n)
		for range n {
			k := r.string(maxWireString)
			res.Clock[k] = r.uint()
		}
	}
	res.Pending = int(min(r.uint(), math.MaxInt32))
	res.Peers = int(min(r.uint(), math.MaxInt32))
	res.Sessions = int(min(r.uint(), math.MaxInt32))
	hasSnap := r.bool()
	res.Snapshot = r.bytes(maxReqBytes)
	if hasSnap && res.Snapshot == nil {
		res.Snapshot = []byte{}
	}
	if n := r.count(maxWireCount, 2); n > 0 {
		res.Awareness = make(map[uint64]string, n)
		for range n {
			k := r.uint()
			res.Awareness[k] = r.string(maxReqBytes)
		}
	}
	hasContent := r.bool()
	n := r.count(maxWireCount, 2)
	if hasContent {
		res.Content = make(map[string][]byte, n)
	}
	for range n {
		k := r.string(maxWireString)
		v := r.bytes(maxReqBytes)
		if res.Content != nil {
			res.Content[k] = v
		}
	}
	return res, r.end()
}

func encodeEditResult(res owner.EditResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqEdit)
	writeErr(w, res.Err)
	w.uint(res.Version)
	w.uint(uint64(max(0, res.Applied)))
	w.bool(res.Replay)
	return w.b
}

func decodeEditResult(b []byte) (owner.EditResult, error) {
	var res owner.EditResult
	r := &reader{b: b}
	if k := r.header(); k != reqEdit && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	res.Version = r.uint()
	res.Applied = int(min(r.uint(), math.MaxInt32))
	res.Replay = r.bool()
	return res, r.end()
}

func encodeBroadcastResult(res owner.BroadcastResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqBroadcast)
	writeErr(w, res.Err)
	w.uint(uint64(max(0, res.Delivered)))
	return w.b
}

func decodeBroadcastResult(b []byte) (owner.BroadcastResult, error) {
	var res owner.BroadcastResult
	r := &reader{b: b}
	if k := r.header(); k != reqBroadcast && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	res.Delivered = int(min(r.uint(), math.MaxInt32))
	return res, r.end()
}

func encodeImportResult(res owner.ImportResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqImport)
	writeErr(w, res.Err)
	w.uint(res.Version)
	return w.b
}

func decodeImportResult(b []byte) (owner.ImportResult, error) {
	var res owner.ImportResult
	r := &reader{b: b}
	if k := r.header(); k != reqImport && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	res.Version = r.uint()
	return res, r.end()
}

func encodeCheckpointResult(res owner.CheckpointResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqCheckpoint)
	writeErr(w, res.Err)
	w.uint(res.Seq)
	w.uint(res.Version)
	return w.b
}

func decodeCheckpointResult(b []byte) (owner.CheckpointResult, error) {
	var res owner.CheckpointResult
	r := &reader{b: b}
	if k := r.header(); k != reqCheckpoint && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	res.Seq = r.uint()
	res.Version = r.uint()
	return res, r.end()
}

func encodeRestoreResult(res owner.RestoreResult) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(reqRestore)
	writeErr(w, res.Err)
	w.uint(res.Version)
	w.uint(uint64(max(0, res.Applied)))
	return w.b
}

func decodeRestoreResult(b []byte) (owner.RestoreResult, error) {
	var res owner.RestoreResult
	r := &reader{b: b}
	if k := r.header(); k != reqRestore && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res.Err = readErr(r)
	res.Version = r.uint()
	res.Applied = int(min(r.uint(), math.MaxInt32))
	return res, r.end()
}

// encodeErrReply is the reply to a Create or Delete: its error.
func encodeErrReply(kind byte, err error) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(kind)
	writeErr(w, err)
	return w.b
}

func decodeErrReply(kind byte, b []byte) (error, error) {
	r := &reader{b: b}
	if k := r.header(); k != kind && r.err == nil {
		r.fail("reply kind %d", k)
	}
	res := readErr(r)
	return res, r.end()
}

// forwardRequest sends a request message to the owner node (in parts if
// it is larger than one NATS message: parts.go) and answers its reply
// channel with the owner's answer, or a retryable refusal. It reports false
// when m is not a forwardable request.
func (r *Ref) forwardRequest(ctx context.Context, node string, m owner.Msg) bool {
	data := encodeReq(r.doc, m)
	if data == nil {
		return false
	}
	n := r.n
	n.goroutine(func() {
		rctx, cancel := context.WithTimeout(ctx, reqTimeout)
		defer cancel()
		stop := context.AfterFunc(n.ctx, cancel)
		defer stop()
		b, err := n.exchange(rctx, node, data)
		if err == nil {
			err = answerReply(m, b)
		}
		if refused, ok := refusedByOwner(err); ok {
			failRequest(m, refused)
			return
		}
		if err != nil {
			r.markStale()
			failRequest(m, &owner.Refused{Code: protocol.CodeDocUnloading,
				Message: "the document's node " + node + " did not answer: retry (" + err.Error() + ")"})
		}
	})
	return true
}

// answerReply decodes a reply and answers m's reply channel.
func answerReply(m owner.Msg, b []byte) error {
	switch m := m.(type) {
	case owner.Read:
		res, err := decodeReadResult(b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Edit:
		res, err := decodeEditResult(b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Broadcast:
		res, err := decodeBroadcastResult(b)
		if err != nil {
			return err
		}
		if m.Reply != nil {
			answer(m.Reply, res)
		}
	case owner.Create:
		res, err := decodeErrReply(reqCreate, b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Delete:
		res, err := decodeErrReply(reqDelete, b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Import:
		res, err := decodeImportResult(b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Checkpoint:
		res, err := decodeCheckpointResult(b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	case owner.Restore:
		res, err := decodeRestoreResult(b)
		if err != nil {
			return err
		}
		answer(m.Reply, res)
	}
	return nil
}

// onReq serves a request forwarded to this node whole.
func (n *Node) onReq(msg *nats.Msg) { n.serveData(msg, msg.Data, nil) }

// serveData serves a forwarded request's bytes on a goroutine of its own
// (at most maxReqInFlight at once) and replies to msg; done, if not nil,
// runs once it is served or refused.
func (n *Node) serveData(msg *nats.Msg, data []byte, done func()) {
	q, err := decodeReq(data)
	if err != nil {
		n.log.Warn("forwarded request refused", "err", err)
		if done != nil {
			done()
		}
		return // the requester times out
	}
	select {
	case n.reqSlots <- struct{}{}:
	default:
		if done != nil {
			done()
		}
		_ = msg.Respond(q.refusal(&owner.Refused{Code: protocol.CodeOverloaded, Message: "too many forwarded requests; retry"})) // best effort
		return
	}
	n.goroutine(func() {
		defer func() { <-n.reqSlots }()
		b := n.serveReq(q)
		if done != nil {
			done()
		}
		_ = msg.Respond(n.answerFor(q, b)) // a requester gone meanwhile has timed out
	})
}

// refusal is q's reply carrying err.
func (q *req) refusal(err error) []byte {
	switch q.kind {
	case reqRead:
		return encodeReadResult(owner.ReadResult{Err: err})
	case reqEdit:
		return encodeEditResult(owner.EditResult{Err: err})
	case reqCreate, reqDelete:
		return encodeErrReply(q.kind, err)
	case reqImport:
		return encodeImportResult(owner.ImportResult{Err: err})
	case reqCheckpoint:
		return encodeCheckpointResult(owner.CheckpointResult{Err: err})
	case reqRestore:
		return encodeRestoreResult(owner.RestoreResult{Err: err})
	default:
		return encodeBroadcastResult(owner.BroadcastResult{Err: err})
	}
}

// serveReq claims the document (unless another node holds it), asks its
// owner and encodes the answer.
func (n *Node) serveReq(q *req) []byte {
	ctx, cancel := context.WithTimeout(n.ctx, reqTimeout)
	defer cancel()
	e, holder, err := n.use(ctx, q.doc, false)
	if err != nil {
		msg := "the document is not owned here: retry"
		if holder != "" {
			msg = "the document is owned by node " + holder + ": retry"
		}
		return q.refusal(&owner.Refused{Code: protocol.CodeDocUnloading, Message: msg})
	}
	defer n.unuse(e)
	gone := &owner.Refused{Code: protocol.CodeDocUnloading, Message: "the document moved: retry"}
	switch q.kind {
	case reqRead:
		reply := make(chan owner.ReadResult, 1)
		q.read.Reply = reply
		return encodeReadResult(await(ctx, e.o, q.read, reply, owner.ReadResult{Err: gone}))
	case reqEdit:
		reply := make(chan owner.EditResult, 1)
		q.edit.Reply = reply
		return encodeEditResult(await(ctx, e.o, q.edit, reply, owner.EditResult{Err: gone}))
	case reqCreate:
		reply := make(chan error, 1)
		return encodeErrReply(q.kind, await(ctx, e.o, owner.Create{Kind: q.docKind, Reply: reply}, reply, error(gone)))
	case reqDelete:
		reply := make(chan error, 1)
		return encodeErrReply(q.kind, await(ctx, e.o, owner.Delete{Reply: reply}, reply, error(gone)))
	case reqCheckpoint:
		reply := make(chan owner.CheckpointResult, 1)
		q.ckpt.Reply = reply
		return encodeCheckpointResult(await(ctx, e.o, q.ckpt, reply, owner.CheckpointResult{Err: gone}))
	case reqImport, reqRestore:
		return n.serveReplica(ctx, e, q, gone)
	default:
		reply := make(chan owner.BroadcastResult, 1)
		q.bcast.Reply = reply
		return encodeBroadcastResult(await(ctx, e.o, q.bcast, reply, owner.BroadcastResult{Err: gone}))
	}
}

// await sends m to o and waits for its answer (failed if o exits or ctx ends).
func await[R any](ctx context.Context, o *owner.Owner, m owner.Msg, reply <-chan R, failed R) R {
	if !o.Send(ctx, m) {
		return failed
	}
	select {
	case r := <-reply:
		return r
	case <-o.Done():
		select {
		case r := <-reply:
			return r
		default:
			return failed
		}
	case <-ctx.Done():
		return failed
	}
}

// serveReplica serves an Import or a Restore: the replica it carries is
// loaded within the node's byte budget for forwarded replicas, then sent to
// the owner.
func (n *Node) serveReplica(ctx context.Context, e *entry, q *req, gone *owner.Refused) []byte {
	var from owner.Engine
	if q.hasSnap {
		// A loaded replica takes a few times its snapshot's bytes; the
		// budget counts the snapshot, as single-node counts request bodies.
		size := int64(len(q.snap))
		if !n.bodies.take(size) {
			return q.refusal(&owner.Refused{Code: protocol.CodeOverloaded, Message: "too many forwarded snapshots being loaded on the document's node; retry"})
		}
		defer n.bodies.give(size)
		if n.cfg.NewEngine == nil {
			return q.refusal(&owner.Refused{Code: protocol.CodeInvalidOp, Message: "this node does not load forwarded snapshots"})
		}
		var err error
		if from, err = n.cfg.NewEngine(q.docKind, q.snap); err != nil {
			return q.refusal(&owner.Refused{Code: protocol.CodeInvalidOp, Message: "snapshot: " + err.Error()})
		}
		q.snap = nil // the replica holds what it needs
	}
	if q.kind == reqImport {
		reply := make(chan owner.ImportResult, 1)
		return encodeImportResult(await(ctx, e.o, owner.Import{Kind: q.docKind, From: from, Reply: reply}, reply, owner.ImportResult{Err: gone}))
	}
	reply := make(chan owner.RestoreResult, 1)
	m := owner.Restore{Texts: q.texts, From: from, Kind: q.docKind, Reply: reply}
	return encodeRestoreResult(await(ctx, e.o, m, reply, owner.RestoreResult{Err: gone}))
}

// budget bounds bytes in use (a replica's snapshot being loaded); take
// never waits.
type budget struct {
	max  int64
	used atomic.Int64
}

func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max && u > 0 { // one request past the bound alone is let through: it is bounded by the payload
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }
