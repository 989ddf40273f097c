package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// Requests and answers larger than one NATS message (a snapshot import or
// restore, the text or snapshot of a large document) travel in parts, over
// request/reply, so that any node serves any request whatever its size:
//
//   - A request larger than one message is sent to the owner node on
//     "<prefix>.part.<node>" as parts of at most the connection's max
//     payload less reqHeadroom, one at a time and in order, each a request
//     of its own: the owner node acks every part but the last (partAck),
//     and answers the last one with the request's answer, as it answers a
//     request sent whole on "<prefix>.req.<node>".
//   - An answer larger than one message is kept on the owner node, and the
//     reply says so (partBig: its id, bytes and parts); the requester
//     fetches its parts on "<prefix>.get.<node>" (partGet → partChunk).
//   - Both sides bound what they hold: the owner node counts what it
//     assembles and what it keeps in its byte budget (NodeConfig.
//     MaxBodyBytes) and refuses past it (partRefused, code 4004: retry);
//     a request or answer is at most maxReqBytes; a part sequence not
//     completed, or an answer not fetched, within reqTimeout is dropped.
//     Every part is checked against what the first one declared.

// Messages on the fwd and event subjects larger than one NATS message (a
// Yjs document's whole state, which y-protocols sends as one sync step,
// for a client on another node) go in parts too: published in order on
// the same subject (core NATS keeps one publisher's order on a subject;
// every such message has one publishing goroutine at a time), reassembled
// by the receiver (Node.streams, within the same byte budget; a sequence
// left incomplete by a lost part is dropped after reqTimeout, and a
// reconnect makes every forwarded relation start over anyway).

// Part message kinds (after wireVersion); replies of a request kind are
// told apart by them (request kinds are small).
const (
	partData    byte = 0x40 // requester → owner node: one part of a request
	partAck     byte = 0x41 // the part was taken; send the next one
	partBig     byte = 0x42 // the answer is kept: fetch it in parts
	partGet     byte = 0x43 // requester → owner node: one part of a kept answer
	partChunk   byte = 0x44 // that part
	partRefused byte = 0x45 // the part (or fetch) was refused: an error
)

// Part limits.
const (
	maxPartID = 128 // an id: the requester's node id and a counter
	// partOverhead is what a part message takes besides its chunk.
	partOverhead = 256
)

func (n *Node) partSubject(node string) string { return n.cfg.Prefix + ".part." + node }
func (n *Node) getSubject(node string) string  { return n.cfg.Prefix + ".get." + node }

// part is a decoded partData, partGet, partBig or partChunk message.
type part struct {
	kind  byte
	id    string
	index int // partData, partGet
	parts int // partData, partBig: how many
	size  int // partData, partBig: bytes of the whole
	chunk []byte
	err   error // partRefused
}

func encodePart(p *part) []byte {
	w := &writer{b: make([]byte, 0, 32+len(p.id)+len(p.chunk))}
	w.byte(wireVersion)
	w.byte(p.kind)
	switch p.kind {
	case partData:
		w.string(p.id)
		w.uint(uint64(p.index))
		w.uint(uint64(p.parts))
		w.uint(uint64(p.size))
		w.bytes(p.chunk)
	case partBig:
		w.string(p.id)
		w.uint(uint64(p.parts))
		w.uint(uint64(p.size))
	case partGet:
		w.string(p.id)
		w.uint(uint64(p.index))
	case partChunk:
		w.bytes(p.chunk)
	case partRefused:
		writeErr(w, p.err)
	}
	return w.b
}

// isPart reports whether b is a part message (not a request's answer).
func isPart(b []byte) bool {
	return len(b) >= 2 && b[0] == wireVersion && b[1] >= partData && b[1] <= partRefused
}

func decodePart(b []byte) (*part, error) {
	if len(b) > maxWireBytes {
		return nil, fmt.Errorf("%w: %d bytes", errWire, len(b))
	}
	r := &reader{b: b}
	p := &part{kind: r.header()}
	switch p.kind {
	case partData:
		p.id = r.string(maxPartID)
		p.index = readInt(r, maxReqBytes)
		p.parts = readInt(r, maxReqBytes)
		p.size = readInt(r, maxReqBytes)
		p.chunk = r.bytes(maxWireBytes)
		if r.err == nil && (p.parts < 2 || p.index >= p.parts || len(p.chunk) == 0 || len(p.chunk) > p.size || p.parts > p.size) {
			r.fail("part %d of %d, %d of %d bytes", p.index, p.parts, len(p.chunk), p.size)
		}
	case partBig:
		p.id = r.string(maxPartID)
		p.parts = readInt(r, maxReqBytes)
		p.size = readInt(r, maxReqBytes)
		if r.err == nil && (p.parts < 1 || p.parts > p.size) {
			r.fail("%d parts of %d bytes", p.parts, p.size)
		}
	case partGet:
		p.id = r.string(maxPartID)
		p.index = readInt(r, maxReqBytes)
	case partChunk:
		p.chunk = r.bytes(maxWireBytes)
	case partAck:
	case partRefused:
		p.err = readErr(r)
		if r.err == nil && p.err == nil {
			r.fail("a refusal without an error")
		}
	default:
		r.fail("part kind %d", p.kind)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if p.id == "" && (p.kind == partData || p.kind == partBig || p.kind == partGet) {
		return nil, fmt.Errorf("%w: a part without an id", errWire)
	}
	return p, nil
}

// readInt reads a uvarint of at most max as an int.
func readInt(r *reader, max int) int {
	v := r.uint()
	if r.err == nil && v > uint64(max) {
		r.fail("%d past %d", v, max)
		return 0
	}
	return int(v)
}

// partsHeld is what the owner node holds of part sequences: requests being
// assembled and answers being fetched, each counted in the budget and
// dropped after ttl. Its methods take mu; they never send.
type partsHeld struct {
	budget *budget
	ttl    time.Duration
	now    func() time.Time

	mu  sync.Mutex
	in  map[string]*partIn  // requests being assembled, by id
	out map[string]*partOut // answers being fetched, by id
}

type partIn struct {
	since time.Time
	parts int
	size  int
	next  int
	buf   []byte
}

type partOut struct {
	since time.Time
	data  []byte
	chunk int
	parts int
}

func newPartsHeld(b *budget, ttl time.Duration, now func() time.Time) *partsHeld {
	return &partsHeld{budget: b, ttl: ttl, now: now, in: map[string]*partIn{}, out: map[string]*partOut{}}
}

// errPartsOverloaded refuses a part sequence past the byte budget.
var errPartsOverloaded = &owner.Refused{Code: protocol.CodeOverloaded, Message: "too many large forwarded requests or answers held on the document's node; retry"}

// sweep drops what is older than the ttl. mu is held.
func (h *partsHeld) sweep() {
	now := h.now()
	for id, p := range h.in {
		if now.Sub(p.since) > h.ttl {
			h.budget.give(int64(p.size))
			delete(h.in, id)
		}
	}
	for id, p := range h.out {
		if now.Sub(p.since) > h.ttl {
			h.budget.give(int64(len(p.data)))
			delete(h.out, id)
		}
	}
}

// add takes one part of a request. It returns the whole request once its
// last part is in (the caller gives its size back to the budget when it
// has served it), nil before, or the refusal (the sequence is dropped).
func (h *partsHeld) add(p *part) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep()
	in := h.in[p.id]
	if p.index == 0 {
		if in != nil {
			h.drop(p.id, in)
			return nil, &owner.Refused{Code: protocol.CodeInvalidOp, Message: "part sequence " + p.id + " started twice"}
		}
		if !h.budget.take(int64(p.size)) {
			return nil, errPartsOverloaded
		}
		in = &partIn{since: h.now(), parts: p.parts, size: p.size}
		h.in[p.id] = in
	}
	switch {
	case in == nil:
		return nil, &owner.Refused{Code: protocol.CodeDocUnloading, Message: "part sequence " + p.id + " unknown or expired: retry"}
	case p.index != in.next || p.parts != in.parts || p.size != in.size || len(p.chunk) > in.size-len(in.buf):
		h.drop(p.id, in)
		return nil, &owner.Refused{Code: protocol.CodeInvalidOp, Message: fmt.Sprintf("part %d of %d (%d bytes) does not follow part %d of %d (%d of %d bytes)",
			p.index, p.parts, len(p.chunk), in.next-1, in.parts, len(in.buf), in.size)}
	}
	in.buf = append(in.buf, p.chunk...)
	in.next++
	if in.next < in.parts {
		return nil, nil
	}
	delete(h.in, p.id) // its budget is the caller's now
	if len(in.buf) != in.size {
		h.budget.give(int64(in.size))
		return nil, &owner.Refused{Code: protocol.CodeInvalidOp, Message: fmt.Sprintf("part sequence %s: %d bytes, %d declared", p.id, len(in.buf), in.size)}
	}
	return in.buf, nil
}

// drop forgets a request being assembled. mu is held.
func (h *partsHeld) drop(id string, in *partIn) {
	h.budget.give(int64(in.size))
	delete(h.in, id)
}

// keep holds an answer to be fetched in parts of chunk bytes, and returns
// the partBig reply that says so, or false past the budget.
func (h *partsHeld) keep(id string, data []byte, chunk int) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep()
	if _, dup := h.out[id]; dup || !h.budget.take(int64(len(data))) {
		return nil, false
	}
	parts := (len(data) + chunk - 1) / chunk
	h.out[id] = &partOut{since: h.now(), data: data, chunk: chunk, parts: parts}
	return encodePart(&part{kind: partBig, id: id, parts: parts, size: len(data)}), true
}

// get is part index of a kept answer; the last part forgets it.
func (h *partsHeld) get(id string, index int) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep()
	o := h.out[id]
	if o == nil || index >= o.parts {
		return nil, &owner.Refused{Code: protocol.CodeDocUnloading, Message: "answer " + id + " unknown or expired: retry"}
	}
	from := index * o.chunk
	to := min(from+o.chunk, len(o.data))
	c := o.data[from:to]
	if index == o.parts-1 {
		h.budget.give(int64(len(o.data)))
		delete(h.out, id)
	}
	return c, nil
}

// clear drops everything held (the node is closing).
func (h *partsHeld) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, in := range h.in {
		h.drop(id, in)
	}
	for id, o := range h.out {
		h.budget.give(int64(len(o.data)))
		delete(h.out, id)
	}
}

// partLimit is the largest chunk a part message carries on this
// connection (at least 1 KiB: a smaller max payload fails the publish,
// which the requester answers as a retryable refusal).
func (n *Node) partLimit() int {
	return max(int(n.cfg.Conn.MaxPayload())-reqHeadroom-partOverhead, 1<<10)
}

// partID is a new id for a part sequence: unique in the cluster (this
// node's id and a counter).
func (n *Node) partID() string {
	return n.id + "." + strconv.FormatUint(n.partSeq.Add(1), 36)
}

// errPartRefused wraps a refusal the owner node sent in a part reply.
type errPartRefused struct{ err error }

func (e errPartRefused) Error() string { return e.err.Error() }
func (e errPartRefused) Unwrap() error { return e.err }

// exchange sends a forwarded request to node, whole or in parts, and
// returns its answer, fetched in parts if the owner node kept it. An
// error the owner node sent is an errPartRefused.
func (n *Node) exchange(ctx context.Context, node string, data []byte) ([]byte, error) {
	limit := n.partLimit()
	var reply []byte
	if len(data) <= limit+partOverhead {
		msg, err := n.cfg.Conn.RequestWithContext(ctx, n.reqSubject(node), data)
		if err != nil {
			return nil, err
		}
		reply = msg.Data
	} else {
		if len(data) > maxReqBytes {
			return nil, errPartRefused{&owner.Refused{Code: protocol.CodeFrameTooLarge,
				Message: fmt.Sprintf("the request is %d bytes, more than the cluster forwards (%d)", len(data), maxReqBytes)}}
		}
		id := n.partID()
		parts := (len(data) + limit - 1) / limit
		for i := range parts {
			chunk := data[i*limit : min((i+1)*limit, len(data))]
			msg, err := n.cfg.Conn.RequestWithContext(ctx, n.partSubject(node),
				encodePart(&part{kind: partData, id: id, index: i, parts: parts, size: len(data), chunk: chunk}))
			if err != nil {
				return nil, err
			}
			if i == parts-1 {
				reply = msg.Data
				break
			}
			if _, err := expectPart(msg.Data, partAck); err != nil {
				return nil, err
			}
		}
	}
	if !isPart(reply) {
		return reply, nil
	}
	return n.fetch(ctx, node, reply)
}

// fetch reads a kept answer in parts, as the partBig reply big says.
func (n *Node) fetch(ctx context.Context, node string, big []byte) ([]byte, error) {
	p, err := expectPart(big, partBig)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := range p.parts {
		msg, err := n.cfg.Conn.RequestWithContext(ctx, n.getSubject(node), encodePart(&part{kind: partGet, id: p.id, index: i}))
		if err != nil {
			return nil, err
		}
		c, err := expectPart(msg.Data, partChunk)
		if err != nil {
			return nil, err
		}
		if len(c.chunk) > p.size-len(out) {
			return nil, fmt.Errorf("%w: part %d of an answer of %d bytes: %d bytes after %d", errWire, i, p.size, len(c.chunk), len(out))
		}
		if out == nil {
			out = make([]byte, 0, min(p.size, 2*len(c.chunk)))
		}
		out = append(out, c.chunk...)
	}
	if len(out) != p.size {
		return nil, fmt.Errorf("%w: an answer of %d bytes, %d declared", errWire, len(out), p.size)
	}
	return out, nil
}

// expectPart decodes a part reply of kind want; a refusal is an
// errPartRefused.
func expectPart(b []byte, want byte) (*part, error) {
	p, err := decodePart(b)
	switch {
	case err != nil:
		return nil, err
	case p.kind == partRefused:
		return nil, errPartRefused{p.err}
	case p.kind != want:
		return nil, fmt.Errorf("%w: part reply kind %d, want %d", errWire, p.kind, want)
	}
	return p, nil
}

// publish sends b on subject, in parts if it is larger than one message.
func (n *Node) publish(subject string, b []byte) error {
	limit := n.partLimit()
	if len(b) <= limit+partOverhead {
		return n.cfg.Conn.Publish(subject, b)
	}
	if len(b) > maxReqBytes {
		return fmt.Errorf("%w: a message of %d bytes (at most %d)", errWire, len(b), maxReqBytes)
	}
	id := n.partID()
	parts := (len(b) + limit - 1) / limit
	for i := range parts {
		chunk := b[i*limit : min((i+1)*limit, len(b))]
		if err := n.cfg.Conn.Publish(subject, encodePart(&part{kind: partData, id: id, index: i, parts: parts, size: len(b), chunk: chunk})); err != nil {
			return err
		}
	}
	return nil
}

// reassemble is a fwd or event message's bytes: data itself, or, for a
// part, the whole message once its last part is in (nil before, and for a
// part refused). release, if not nil, gives the whole message's bytes
// back to the budget; call it once the message is decoded.
func (n *Node) reassemble(data []byte) (whole []byte, release func()) {
	if !isPart(data) {
		return data, nil
	}
	p, err := decodePart(data)
	if err == nil && p.kind != partData {
		err = fmt.Errorf("%w: part kind %d on a message subject", errWire, p.kind)
	}
	if err == nil {
		whole, err = n.streams.add(p)
	}
	if err != nil {
		n.log.Warn("cluster: a message in parts dropped", "err", err)
		return nil, nil
	}
	if whole == nil {
		return nil, nil
	}
	size := int64(p.size)
	return whole, func() { n.streams.budget.give(size) }
}

// onPart takes one part of a request forwarded in parts; the last one is
// served as onReq serves a whole request.
func (n *Node) onPart(msg *nats.Msg) {
	p, err := decodePart(msg.Data)
	if err != nil || p.kind != partData {
		n.log.Warn("forwarded request part refused", "err", err)
		_ = msg.Respond(encodePart(&part{kind: partRefused, err: &owner.Refused{Code: protocol.CodeInvalidOp, Message: "not a request part"}}))
		return
	}
	data, err := n.held.add(p)
	switch {
	case err != nil:
		_ = msg.Respond(encodePart(&part{kind: partRefused, err: err}))
	case data == nil:
		_ = msg.Respond(encodePart(&part{kind: partAck}))
	default:
		size := int64(p.size)
		n.serveData(msg, data, func() { n.held.budget.give(size) })
	}
}

// onGet answers a fetch of one part of a kept answer.
func (n *Node) onGet(msg *nats.Msg) {
	p, err := decodePart(msg.Data)
	if err != nil || p.kind != partGet {
		_ = msg.Respond(encodePart(&part{kind: partRefused, err: &owner.Refused{Code: protocol.CodeInvalidOp, Message: "not an answer part request"}}))
		return
	}
	c, err := n.held.get(p.id, p.index)
	if err != nil {
		_ = msg.Respond(encodePart(&part{kind: partRefused, err: err}))
		return
	}
	_ = msg.Respond(encodePart(&part{kind: partChunk, chunk: c}))
}

// answerFor is what onReq sends for q's answer b: b, or, if b is larger
// than one message, the partBig reply of b kept for fetching (a refusal
// past the budget).
func (n *Node) answerFor(q *req, b []byte) []byte {
	limit := n.partLimit()
	if len(b) <= limit+partOverhead {
		return b
	}
	if len(b) > maxReqBytes {
		return q.refusal(&owner.Refused{Code: protocol.CodeFrameTooLarge,
			Message: fmt.Sprintf("the answer is %d bytes, more than the cluster forwards (%d): ask node %s, which owns the document", len(b), maxReqBytes, n.id)})
	}
	big, ok := n.held.keep(n.partID(), b, limit)
	if !ok {
		return q.refusal(errPartsOverloaded)
	}
	return big
}

// refusedByOwner is the owner node's own refusal in err, if it is one.
func refusedByOwner(err error) (error, bool) {
	var pr errPartRefused
	if errors.As(err, &pr) {
		return pr.err, true
	}
	return nil, false
}
