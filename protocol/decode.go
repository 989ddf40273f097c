package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/mp"
)

// Default decode limits (see DecodeLimits).
const (
	DefaultMaxFrame   = 1 << 20  // bytes in one frame
	DefaultMaxDocID   = 255      // bytes in a document id (storage keys hold at most 255: storage.MaxIDBytes)
	DefaultMaxAgents  = 64       // agent ids claimed in one Hello
	DefaultMaxToken   = 8 << 10  // bytes in a token
	DefaultMaxString  = 1 << 10  // bytes in a client name, session id or error message
	DefaultMaxMessage = 16 << 10 // bytes of a broadcast message's JSON
)

// DecodeLimits bound what Decode accepts. A zero field means its default.
type DecodeLimits struct {
	MaxFrame   int // bytes in one frame (DefaultMaxFrame)
	MaxDocID   int // bytes in a document id (DefaultMaxDocID)
	MaxAgents  int // agents in a Hello (DefaultMaxAgents)
	MaxToken   int // bytes in a Hello or Refresh token (DefaultMaxToken)
	MaxString  int // bytes in a Hello client name, Welcome session id or Error message (DefaultMaxString)
	MaxMessage int // bytes of a Broadcast's JSON (DefaultMaxMessage)
}

func (l DecodeLimits) withDefaults() DecodeLimits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxFrame, DefaultMaxFrame)
	def(&l.MaxDocID, DefaultMaxDocID)
	def(&l.MaxAgents, DefaultMaxAgents)
	def(&l.MaxToken, DefaultMaxToken)
	def(&l.MaxString, DefaultMaxString)
	def(&l.MaxMessage, DefaultMaxMessage)
	return l
}

// Reasons a frame is refused; a *DecodeError wraps exactly one of them.
var (
	ErrTruncated          = errors.New("protocol: truncated frame")
	ErrTrailing           = errors.New("protocol: trailing bytes after the frame")
	ErrUnknownType        = errors.New("protocol: unknown message type")
	ErrFieldCount         = errors.New("protocol: wrong number of fields")
	ErrBadField           = errors.New("protocol: bad field")
	ErrBadDocID           = errors.New("protocol: bad document id")
	ErrTooLarge           = errors.New("protocol: over a limit")
	ErrUnsupportedVersion = errors.New("protocol: unsupported protocol version")
)

// DecodeError is a frame Decode refused. errors.Is(err, ErrTruncated) and so
// on tell the reason apart; Code gives the Code to answer with.
type DecodeError struct {
	Type   Type   // the frame's type, 0 if not read yet
	Offset int    // byte offset where decoding stopped
	Reason string // what was wrong, for logs
	Err    error  // one of the Err* sentinels of this package
}

func (e *DecodeError) Error() string {
	what := "frame"
	if e.Type != 0 {
		what = e.Type.String() + " frame"
	}
	return fmt.Sprintf("protocol: bad %s at byte %d: %s", what, e.Offset, e.Reason)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Code is the error code for the refusal: CodeUnsupportedVersion,
// CodeFrameTooLarge (a frame over MaxFrame), CodeBadDocID, or CodeBadFrame.
func (e *DecodeError) Code() Code {
	switch {
	case errors.Is(e.Err, ErrUnsupportedVersion):
		return CodeUnsupportedVersion
	case errors.Is(e.Err, ErrTooLarge) && e.Offset == 0:
		return CodeFrameTooLarge
	case errors.Is(e.Err, ErrBadDocID):
		return CodeBadDocID
	}
	return CodeBadFrame
}

// fieldCount is the number of elements of each frame type's array.
func fieldCount(t Type) int {
	switch t {
	case TypeHello:
		return 5
	case TypeWelcome, TypeJoin, TypeUpdate, TypeMessage:
		return 4
	case TypeSync, TypeAck, TypeError, TypePresenceSet, TypePresence:
		return 6
	case TypeLeave, TypePing, TypePong, TypeRefresh:
		return 2
	}
	return 0
}

// CheckDocID reports whether id is a valid document id: 1 to maxLen bytes
// (DefaultMaxDocID if maxLen <= 0) of UTF-8 without control characters
// (Unicode Cc: U+0000–U+001F, U+007F–U+009F). The error wraps ErrBadDocID.
func CheckDocID(id string, maxLen int) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxDocID
	}
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrBadDocID)
	case len(id) > maxLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadDocID, len(id), maxLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not UTF-8", ErrBadDocID)
	}
	for _, c := range id {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: control character %U", ErrBadDocID, c)
		}
	}
	return nil
}

// decoder reads one frame; the first error stops it.
type decoder struct {
	r   mp.Reader
	t   Type
	lim DecodeLimits
	err *DecodeError
}

func (d *decoder) failAt(off int, sentinel error, reason string) {
	if d.err == nil {
		d.err = &DecodeError{Type: d.t, Offset: off, Reason: reason, Err: sentinel}
	}
}

func (d *decoder) fail(sentinel error, reason string) { d.failAt(d.r.Offset(), sentinel, reason) }

// mpFail records an error of the mp reader: input that ends early (or a
// declared length past its end) is truncated, anything else a bad field.
func (d *decoder) mpFail(field string, err error) {
	off := d.r.Offset()
	var me *mp.Error
	if errors.As(err, &me) {
		off = me.Offset
	}
	s := ErrBadField
	if errors.Is(err, mp.ErrShort) || errors.Is(err, mp.ErrTooLarge) {
		s = ErrTruncated
	}
	d.failAt(off, s, fmt.Sprintf("%s: %v", field, err))
}

func (d *decoder) uint(field string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	off := d.r.Offset()
	v, err := d.r.Uint()
	if err != nil {
		d.mpFail(field, err)
		return 0
	}
	if v > max {
		d.failAt(off, ErrBadField, fmt.Sprintf("%s %d exceeds %d", field, v, max))
		return 0
	}
	return v
}

func (d *decoder) int(field string) int { return int(d.uint(field, maxInt)) }

func (d *decoder) bool(field string) bool {
	if d.err != nil {
		return false
	}
	v, err := d.r.Bool()
	if err != nil {
		d.mpFail(field, err)
	}
	return v
}

func (d *decoder) bin(field string) []byte {
	if d.err != nil {
		return nil
	}
	v, err := d.r.Bin()
	if err != nil {
		d.mpFail(field, err)
	}
	return v
}

// str reads a UTF-8 str of at most max bytes.
func (d *decoder) str(field string, max int) string {
	if d.err != nil {
		return ""
	}
	off := d.r.Offset()
	v, err := d.r.StringBytes()
	switch {
	case err != nil:
		d.mpFail(field, err)
	case len(v) > max:
		d.failAt(off, ErrTooLarge, fmt.Sprintf("%s of %d bytes exceeds %d", field, len(v), max))
	case !utf8.Valid(v):
		d.failAt(off, ErrBadField, field+" is not UTF-8")
	default:
		return string(v)
	}
	return ""
}

// doc reads a document id; "" is allowed only if empty is true.
func (d *decoder) doc(empty bool) string {
	if d.err != nil {
		return ""
	}
	off := d.r.Offset()
	v, err := d.r.StringBytes()
	if err != nil {
		d.mpFail("doc", err)
		return ""
	}
	if len(v) == 0 && empty {
		return ""
	}
	s := string(v)
	if err := CheckDocID(s, d.lim.MaxDocID); err != nil {
		d.failAt(off, ErrBadDocID, err.Error())
		return ""
	}
	return s
}

// sv reads a bin holding a crdt state vector.
func (d *decoder) sv() crdt.StateVector {
	off := d.r.Offset()
	p := d.bin("state vector")
	if d.err != nil {
		return nil
	}
	sv, err := crdt.DecodeStateVector(p, crdt.Limits{})
	if err != nil {
		var ce *crdt.DecodeError
		if errors.As(err, &ce) {
			off = d.r.Offset() - len(p) + ce.Offset
		}
		d.failAt(off, ErrBadField, err.Error())
		return nil
	}
	return sv
}

// Decode decodes one frame. It refuses, with a *DecodeError: a frame over
// lim.MaxFrame, anything but a msgpack array whose first element is a known
// Type (the unassigned presence types 34–63 included), a
// field count other than the type's, a field of the wrong msgpack type or out
// of range, a string over its limit or not UTF-8, a bad document id (see
// CheckDocID), a Hello or Welcome of another protocol version, and bytes
// after the array. The update bytes of a Sync or Update are not decoded
// (crdt does that when applying them), and alias b; strings are copies.
// Decode allocates at most in proportion to len(b).
func Decode(b []byte, lim DecodeLimits) (Message, error) {
	d := decoder{lim: lim.withDefaults()}
	if len(b) > d.lim.MaxFrame {
		return nil, &DecodeError{Reason: fmt.Sprintf("%d bytes exceed the frame limit %d", len(b), d.lim.MaxFrame), Err: ErrTooLarge}
	}
	d.r.Reset(b)
	n, err := d.r.ArrayLen()
	if err != nil {
		d.mpFail("frame array", err)
		return nil, d.err
	}
	if n == 0 {
		d.fail(ErrFieldCount, "empty array")
		return nil, d.err
	}
	t := d.uint("type", math.MaxUint8)
	if d.err != nil {
		return nil, d.err
	}
	d.t = Type(t)
	want := fieldCount(d.t)
	if want == 0 {
		reason := fmt.Sprintf("type %d", t)
		if d.t >= TypePresenceFirst && d.t <= TypePresenceLast {
			reason += " (reserved for presence)"
		}
		d.t = 0
		d.failAt(d.r.Offset()-1, ErrUnknownType, reason)
		return nil, d.err
	}
	if (d.t == TypeHello || d.t == TypeWelcome) && n >= 2 {
		off := d.r.Offset()
		if v := d.uint("version", math.MaxUint32); d.err == nil && v != Version {
			d.failAt(off, ErrUnsupportedVersion, fmt.Sprintf("version %d, this side speaks %d", v, Version))
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	// Join and Sync may carry one more, optional element (the snapshot flag).
	extra := n == want+1 && (d.t == TypeJoin || d.t == TypeSync)
	if n != want && !extra {
		d.fail(ErrFieldCount, fmt.Sprintf("%d elements, want %d", n, want))
		return nil, d.err
	}
	m := d.body()
	if extra && d.err == nil {
		snap := d.bool("snapshot")
		switch m := m.(type) {
		case *Join:
			m.Snapshot = snap
		case *Sync:
			m.Snapshot = snap
		}
	}
	if d.err == nil && d.r.Remaining() != 0 {
		d.fail(ErrTrailing, fmt.Sprintf("%d bytes after the frame", d.r.Remaining()))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// body decodes the fields after the type (and, for Hello and Welcome, after
// the version).
func (d *decoder) body() Message {
	switch d.t {
	case TypeHello:
		m := &Hello{Version: Version}
		m.Token = d.str("token", d.lim.MaxToken)
		m.Agents = d.agents()
		m.Client = d.str("client", d.lim.MaxString)
		return m
	case TypeWelcome:
		m := &Welcome{Version: Version}
		m.Session = d.str("session", d.lim.MaxString)
		if d.err == nil {
			if n, err := d.r.ArrayLen(); err != nil {
				d.mpFail("limits", err)
			} else if n != 6 {
				d.fail(ErrFieldCount, fmt.Sprintf("limits: %d elements, want 6", n))
			}
		}
		l := &m.Limits
		l.MaxFrame, l.MaxDocs, l.MaxOpsPerBatch = d.int("max frame"), d.int("max docs"), d.int("max ops per batch")
		l.MaxDocBytes, l.PingIntervalMs, l.PongTimeoutMs = d.int("max doc bytes"), d.int("ping interval"), d.int("pong timeout")
		return m
	case TypeJoin:
		m := &Join{Doc: d.doc(false)}
		if d.err == nil {
			m.SV = d.sv()
		}
		m.ReadOnly = d.bool("read-only")
		return m
	case TypeSync:
		m := &Sync{Doc: d.doc(false)}
		m.Chunk = d.int("chunk")
		m.Final = d.bool("final")
		m.Update = d.bin("update")
		if d.err != nil {
			return nil
		}
		if m.Final {
			m.SV = d.sv()
		} else if err := d.r.Nil(); err != nil {
			d.mpFail("state vector of a non-final chunk (want nil)", err)
		}
		return m
	case TypeUpdate:
		m := &Update{Doc: d.doc(false)}
		m.Batch = d.uint("batch", math.MaxUint64)
		m.Update = d.bin("update")
		return m
	case TypeAck:
		m := &Ack{Doc: d.doc(false)}
		m.Batch = d.uint("batch", math.MaxUint64)
		off := d.r.Offset()
		m.Status = AckStatus(d.uint("status", math.MaxUint8))
		if d.err == nil && (m.Status < AckApplied || m.Status > AckRejected) {
			d.failAt(off, ErrBadField, fmt.Sprintf("ack status %d", m.Status))
		}
		m.Applied = d.uint("applied", math.MaxUint64)
		m.Durable = d.uint("durable", math.MaxUint64)
		return m
	case TypeLeave:
		return &Leave{Doc: d.doc(false)}
	case TypeError:
		off := d.r.Offset()
		m := &Error{Code: Code(d.uint("code", uint64(CodeTerminalLast)))}
		if d.err == nil && m.Code < CodeRetryFirst {
			d.failAt(off, ErrBadField, fmt.Sprintf("error code %d outside 4000–4999", m.Code))
		}
		m.Doc = d.doc(true)
		m.Batch = d.uint("batch", math.MaxUint64)
		m.Message = d.str("message", d.lim.MaxString)
		m.RetryAfterMs = d.int("retry after")
		return m
	case TypePing:
		return &Ping{Nonce: d.uint("nonce", math.MaxUint64)}
	case TypePong:
		return &Pong{Nonce: d.uint("nonce", math.MaxUint64)}
	case TypeRefresh:
		return &Refresh{Token: d.str("token", d.lim.MaxToken)}
	case TypeMessage:
		m := &Broadcast{Doc: d.doc(false), From: d.str("from", d.lim.MaxString)}
		off := d.r.Offset()
		if data := d.str("data", d.lim.MaxMessage); d.err == nil {
			if !json.Valid([]byte(data)) {
				d.failAt(off, ErrBadField, "message data is not JSON")
			}
			m.Data = []byte(data)
		}
		return m
	case TypePresenceSet:
		return &PresenceSet{Doc: d.doc(false), State: d.state()}
	case TypePresence:
		return d.presence()
	}
	return nil
}

// agents reads the agents of a Hello: at most MaxAgents, non-zero, distinct.
func (d *decoder) agents() []crdt.AgentID {
	if d.err != nil {
		return nil
	}
	n, err := d.r.ArrayLen()
	if err != nil {
		d.mpFail("agents", err)
		return nil
	}
	if n > d.lim.MaxAgents {
		d.fail(ErrTooLarge, fmt.Sprintf("%d agents exceed %d", n, d.lim.MaxAgents))
		return nil
	}
	out := make([]crdt.AgentID, 0, n)
	for range n {
		off := d.r.Offset()
		a := crdt.AgentID(d.uint("agent", math.MaxUint64))
		if d.err != nil {
			return nil
		}
		if a == 0 {
			d.failAt(off, ErrBadField, "agent 0 is reserved")
			return nil
		}
		out = append(out, a)
	}
	if n == 0 {
		return nil
	}
	sorted := slices.Sorted(slices.Values(out))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			d.fail(ErrBadField, fmt.Sprintf("agent %x claimed twice", uint64(sorted[i])))
			return nil
		}
	}
	return out
}
