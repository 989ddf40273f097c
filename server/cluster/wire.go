package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// The forwarding wire (docs/CLUSTER.md "Forwarding"): what a node sends the
// owner node of a document on a subscriber's behalf (a fwd, subject
// "<prefix>.fwd.<owner node>"), and what the owner node sends back to the
// subscriber's node (an evt, subject "<prefix>.ev.<node>"). Both are
// hostile input to their receiver: every declared length and count is
// checked against the bytes left and the limits below before anything is
// allocated, unknown kinds and trailing bytes refuse the message whole.
//
// Layout: a version byte (wireVersion), a kind byte, then the fields in the
// order the encoders write them; integers are uvarints (signed ones
// zig-zag varints), byte strings a uvarint length and the bytes.

const wireVersion = 1

// Wire limits.
const (
	maxWireBytes   = maxReqBytes // a whole message, assembled from parts past one NATS message (parts.go)
	maxReqBytes    = 256 << 20   // a forwarded request, its answer or a message, whole
	maxWireString  = 64 << 10    // an id, a name, a root, a message
	maxWireCount   = 1 << 20     // elements of any list
	maxNodeIDBytes = 64
)

// errWire wraps every decode failure.
var errWire = errors.New("cluster: bad forwarding message")

// fwd kinds (origin -> owner node).
const (
	fwdJoin byte = iota + 1
	fwdLeave
	fwdReadOnly
	fwdUpdate
	fwdPresence
	fwdSync
	fwdAwareness
	fwdFollow
	fwdUnfollow
	fwdBroadcast
	fwdSeen // a liveness ping of a forwarded session (no owner message)
)

// fwd is one forwarded message: the origin node, the subscriber's key
// there, the document and the message's fields.
type fwd struct {
	kind   byte
	origin string
	key    uint64
	doc    string

	subID    string // Join: the session id (presence); Follow: "" for a follower
	docKind  owner.Kind
	noSync   bool
	readOnly bool
	sv       []byte        // Join, Sync
	user     presence.User // Join
	subject  string        // Join
	agents   []uint64      // Join: the agents the session claimed (checked)
	checkOps bool          // Join: apply the native checks (agents, ops per batch)
	batch    uint64        // Update
	data     []byte        // Update, Awareness (nil: query), Broadcast, Presence (a PresenceSet frame)
	hasData  bool          // Awareness: data present (a nil update asks for every state)
	root     string        // Follow
	since    *uint64       // Follow
	maxSteps uint64        // Follow
}

// evt kinds (owner node -> origin).
const (
	evSync byte = iota + 1
	evUpdate
	evAck
	evError
	evPresence
	evAwareness
	evFeedStart
	evMessage
	evFanRef // "deliver the update of fan-out seq of doc to key too" (fanout.go)
	evJoined // a NoSync join accepted (owner.JoinedEvent; added last: earlier kinds keep their numbers)
)

type writer struct{ b []byte }

func (w *writer) byte(v byte)     { w.b = append(w.b, v) }
func (w *writer) uint(v uint64)   { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) int(v int64)     { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) bytes(v []byte)  { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) string(v string) { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) bool(v bool) {
	if v {
		w.byte(1)
	} else {
		w.byte(0)
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errWire, fmt.Sprintf(format, a...))
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad bool")
	return false
}

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, at most max and at most the bytes left
// divided by min, the smallest encoding of one element.
func (r *reader) count(max, minBytes int) int {
	n := r.uint()
	if r.err == nil && (n > uint64(max) || n*uint64(minBytes) > uint64(len(r.b))) {
		r.fail("count %d past its limit or the bytes left", n)
		return 0
	}
	return int(n)
}

func (r *reader) bytes(max int) []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail("length %d past its limit or the bytes left", n)
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) string(max int) string { return string(r.bytes(max)) }

func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// header reads the version and kind.
func (r *reader) header() byte {
	if v := r.byte(); r.err == nil && v != wireVersion {
		r.fail("version %d", v)
	}
	return r.byte()
}

func encodeFwd(f *fwd) []byte {
	w := &writer{b: make([]byte, 0, 64+len(f.data)+len(f.sv)+len(f.doc))}
	w.byte(wireVersion)
	w.byte(f.kind)
	w.string(f.origin)
	w.uint(f.key)
	w.string(f.doc)
	switch f.kind {
	case fwdJoin:
		w.string(f.subID)
		w.uint(uint64(f.docKind))
		w.bool(f.noSync)
		w.bool(f.readOnly)
		w.bytes(f.sv)
		w.string(f.user.ID)
		w.string(f.user.Name)
		w.string(f.user.Color)
		w.string(f.subject)
		w.bool(f.checkOps)
		w.uint(uint64(len(f.agents)))
		for _, a := range f.agents {
			w.uint(a)
		}
	case fwdUpdate:
		w.uint(f.batch)
		w.bytes(f.data)
	case fwdPresence, fwdBroadcast:
		w.bytes(f.data)
	case fwdSync:
		w.bytes(f.sv)
	case fwdAwareness:
		w.bool(f.data != nil)
		w.bytes(f.data)
	case fwdFollow:
		w.string(f.root)
		w.bool(f.since != nil)
		if f.since != nil {
			w.uint(*f.since)
		}
		w.uint(f.maxSteps)
	}
	return w.b
}

func decodeFwd(b []byte) (*fwd, error) {
	if len(b) > maxWireBytes {
		return nil, fmt.Errorf("%w: %d bytes", errWire, len(b))
	}
	r := &reader{b: b}
	f := &fwd{kind: r.header()}
	f.origin = r.string(maxNodeIDBytes)
	f.key = r.uint()
	f.doc = r.string(maxWireString)
	switch f.kind {
	case fwdJoin:
		f.subID = r.string(maxWireString)
		k := r.uint()
		if k > math.MaxUint8 {
			r.fail("kind %d", k)
		}
		f.docKind = owner.Kind(k)
		f.noSync = r.bool()
		f.readOnly = r.bool()
		f.sv = r.bytes(maxWireBytes)
		f.user.ID = r.string(maxWireString)
		f.user.Name = r.string(maxWireString)
		f.user.Color = r.string(maxWireString)
		f.subject = r.string(maxWireString)
		f.checkOps = r.bool()
		n := r.count(maxWireCount, 1)
		if n > 0 {
			f.agents = make([]uint64, n)
			for i := range f.agents {
				f.agents[i] = r.uint()
			}
		}
	case fwdUpdate:
		f.batch = r.uint()
		f.data = r.bytes(maxWireBytes)
	case fwdPresence, fwdBroadcast:
		f.data = r.bytes(maxWireBytes)
	case fwdSync:
		f.sv = r.bytes(maxWireBytes)
	case fwdAwareness:
		f.hasData = r.bool()
		f.data = r.bytes(maxWireBytes)
		if !f.hasData {
			f.data = nil
		} else if f.data == nil {
			f.data = []byte{}
		}
	case fwdFollow:
		f.root = r.string(maxWireString)
		if r.bool() {
			v := r.uint()
			f.since = &v
		}
		f.maxSteps = r.uint()
	case fwdLeave, fwdReadOnly, fwdUnfollow, fwdSeen:
	default:
		r.fail("kind %d", f.kind)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if f.origin == "" {
		return nil, fmt.Errorf("%w: no origin", errWire)
	}
	return f, nil
}

// evt is one event for a forwarded subscriber.
type evt struct {
	key  uint64
	soft bool // DeliverSoft
	ev   owner.Event
	// A follower's view, resolved by the owner node in its root: the
	// root's JSON after an update (nil: a text root), the cursors of a
	// presence event.
	json    []byte
	cursors map[string][2]int
	// Fan-out (fanout.go): an update event numbered seq within doc's
	// fan-out to this node (fan set), or a reference to it (ref set).
	fan, ref bool
	seq      uint64
	doc      string
}

// encodeEvt encodes ev for the subscriber key. root is the follower's root
// (JSON and cursors are resolved for it here, on the owner's goroutine).
func encodeEvt(key uint64, soft bool, ev owner.Event, root string, follower bool) ([]byte, bool) {
	return encodeEvtSeq(key, soft, ev, root, follower, 0)
}

// encodeEvtSeq is encodeEvt with an update event's fan-out number (0:
// none; fanout.go).
func encodeEvtSeq(key uint64, soft bool, ev owner.Event, root string, follower bool, seq uint64) ([]byte, bool) {
	w := &writer{}
	w.byte(wireVersion)
	switch ev := ev.(type) {
	case *owner.SyncEvent:
		w.byte(evSync)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.uint(uint64(ev.Chunk))
		w.bool(ev.Final)
		w.bytes(ev.Update)
		w.bool(ev.SV != nil)
		w.bytes(ev.SV)
	case *owner.UpdateEvent:
		w.byte(evUpdate)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.uint(uint64(len(ev.Updates)))
		for _, u := range ev.Updates {
			w.bytes(u)
		}
		w.uint(ev.From)
		w.uint(ev.Version)
		writeChanges(w, ev.Changes)
		var js []byte
		if follower {
			js, _ = ev.JSON(root)
		}
		w.bool(js != nil)
		w.bytes(js)
		w.uint(seq)
	case *owner.AckEvent:
		w.byte(evAck)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.uint(ev.Batch)
		w.uint(uint64(ev.Status))
		w.uint(ev.Applied)
		w.uint(ev.Durable)
	case *owner.ErrorEvent:
		w.byte(evError)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.uint(ev.Batch)
		w.uint(uint64(ev.Code))
		w.string(ev.Message)
		w.int(int64(ev.RetryAfter))
		w.bool(ev.End)
	case *owner.PresenceEvent:
		w.byte(evPresence)
		w.uint(key)
		w.bool(soft)
		w.bytes(protocol.Encode(ev.Msg))
		var cur map[string][2]int
		if follower {
			cur = ev.Cursors(root)
		}
		w.uint(uint64(len(cur)))
		for id, c := range cur {
			w.string(id)
			w.int(int64(c[0]))
			w.int(int64(c[1]))
		}
	case *owner.AwarenessEvent:
		w.byte(evAwareness)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.bytes(ev.Update)
		w.bool(ev.Full)
	case *owner.FeedStartEvent:
		w.byte(evFeedStart)
		w.uint(key)
		w.bool(soft)
		w.uint(ev.Version)
		w.string(ev.Text)
		w.bool(ev.JSON != nil)
		w.bytes(ev.JSON)
		w.bool(ev.Reset)
		w.bool(ev.Current)
		w.bool(ev.Steps != nil)
		w.uint(uint64(len(ev.Steps)))
		for _, st := range ev.Steps {
			w.uint(st.From)
			w.uint(st.To)
			writeChanges(w, st.Changes)
		}
	case *owner.JoinedEvent:
		w.byte(evJoined)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
	case *owner.MessageEvent:
		w.byte(evMessage)
		w.uint(key)
		w.bool(soft)
		w.string(ev.Doc)
		w.string(ev.From)
		w.bytes(ev.Data)
	default:
		return nil, false
	}
	return w.b, true
}

// encodeFanRef encodes a reference to update seq of doc's fan-out.
func encodeFanRef(key uint64, soft bool, doc string, seq uint64) []byte {
	w := &writer{}
	w.byte(wireVersion)
	w.byte(evFanRef)
	w.uint(key)
	w.bool(soft)
	w.string(doc)
	w.uint(seq)
	return w.b
}

func writeChanges(w *writer, cs []owner.Change) {
	w.uint(uint64(len(cs)))
	for _, c := range cs {
		w.string(c.Root)
		w.int(int64(c.Pos))
		w.int(int64(c.Del))
		w.string(c.Ins)
	}
}

func readChanges(r *reader) []owner.Change {
	n := r.count(maxWireCount, 4)
	if n == 0 {
		return nil
	}
	cs := make([]owner.Change, n)
	for i := range cs {
		cs[i].Root = r.string(maxWireString)
		cs[i].Pos = int(r.int())
		cs[i].Del = int(r.int())
		cs[i].Ins = r.string(maxWireBytes)
	}
	return cs
}

// decodeEvt decodes an event; root is the receiving follower's root (""
// for a session), under which a follower's JSON and cursors are recorded.
func decodeEvt(b []byte, lim protocol.DecodeLimits) (*evt, error) {
	if len(b) > maxWireBytes {
		return nil, fmt.Errorf("%w: %d bytes", errWire, len(b))
	}
	r := &reader{b: b}
	kind := r.header()
	e := &evt{key: r.uint(), soft: r.bool()}
	switch kind {
	case evSync:
		ev := &owner.SyncEvent{Doc: r.string(maxWireString), Chunk: int(min(r.uint(), math.MaxInt32)), Final: r.bool(), Update: r.bytes(maxWireBytes)}
		hasSV := r.bool()
		ev.SV = r.bytes(maxWireBytes)
		if hasSV && ev.SV == nil {
			ev.SV = []byte{}
		} else if !hasSV {
			ev.SV = nil
		}
		e.ev = ev
	case evUpdate:
		ev := &owner.UpdateEvent{Doc: r.string(maxWireString)}
		n := r.count(maxWireCount, 1)
		for range n {
			ev.Updates = append(ev.Updates, r.bytes(maxWireBytes))
		}
		ev.From, ev.Version = r.uint(), r.uint()
		ev.Changes = readChanges(r)
		hasJSON := r.bool()
		js := r.bytes(maxWireBytes)
		if hasJSON {
			if js == nil {
				js = []byte{}
			}
			e.json = js
		}
		if e.seq = r.uint(); e.seq != 0 {
			e.fan, e.doc = true, ev.Doc
		}
		e.ev = ev
	case evAck:
		ev := &owner.AckEvent{Doc: r.string(maxWireString), Batch: r.uint()}
		st := r.uint()
		if st > math.MaxUint8 {
			r.fail("ack status %d", st)
		}
		ev.Status = protocol.AckStatus(st)
		ev.Applied, ev.Durable = r.uint(), r.uint()
		e.ev = ev
	case evError:
		ev := &owner.ErrorEvent{Doc: r.string(maxWireString), Batch: r.uint()}
		c := r.uint()
		if c > math.MaxUint16 {
			r.fail("code %d", c)
		}
		ev.Code = protocol.Code(c)
		ev.Message = r.string(maxWireString)
		ev.RetryAfter = max(0, time.Duration(r.int()))
		ev.End = r.bool()
		e.ev = ev
	case evPresence:
		frame := r.bytes(maxWireBytes)
		n := r.count(maxWireCount, 3)
		var cur map[string][2]int
		if n > 0 {
			cur = make(map[string][2]int, n)
			for range n {
				id := r.string(maxWireString)
				cur[id] = [2]int{int(r.int()), int(r.int())}
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		m, err := protocol.Decode(frame, lim)
		if err != nil {
			return nil, fmt.Errorf("%w: presence: %w", errWire, err)
		}
		p, ok := m.(*protocol.Presence)
		if !ok {
			return nil, fmt.Errorf("%w: presence frame of type %v", errWire, m.Type())
		}
		e.ev = &owner.PresenceEvent{Msg: p}
		e.cursors = cur
	case evAwareness:
		e.ev = &owner.AwarenessEvent{Doc: r.string(maxWireString), Update: r.bytes(maxWireBytes), Full: r.bool()}
	case evFeedStart:
		ev := &owner.FeedStartEvent{Version: r.uint(), Text: r.string(maxWireBytes)}
		hasJSON := r.bool()
		ev.JSON = r.bytes(maxWireBytes)
		if hasJSON && ev.JSON == nil {
			ev.JSON = []byte{}
		} else if !hasJSON {
			ev.JSON = nil
		}
		ev.Reset, ev.Current = r.bool(), r.bool()
		hasSteps := r.bool()
		n := r.count(maxWireCount, 3)
		if hasSteps {
			ev.Steps = make([]owner.Step, 0, n)
		}
		for range n {
			st := owner.Step{From: r.uint(), To: r.uint()}
			st.Changes = readChanges(r)
			ev.Steps = append(ev.Steps, st)
		}
		e.ev = ev
	case evMessage:
		e.ev = &owner.MessageEvent{Doc: r.string(maxWireString), From: r.string(maxWireString), Data: r.bytes(maxWireBytes)}
	case evJoined:
		e.ev = &owner.JoinedEvent{Doc: r.string(maxWireString)}
	case evFanRef:
		e.ref, e.doc, e.seq = true, r.string(maxWireString), r.uint()
		if e.seq == 0 {
			r.fail("fan-out reference to seq 0")
		}
	default:
		r.fail("event kind %d", kind)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return e, nil
}
