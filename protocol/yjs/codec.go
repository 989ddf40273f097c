package yjs

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Type is a message's first varUint.
type Type uint64

// Message types of y-protocols (y-websocket's messageSync, …).
const (
	TypeSync           Type = 0
	TypeAwareness      Type = 1
	TypeAuth           Type = 2
	TypeQueryAwareness Type = 3
)

// SyncType is the subtype of a sync message.
type SyncType uint64

// Sync subtypes (y-protocols/sync).
const (
	SyncStep1  SyncType = 0 // payload: the sender's state vector
	SyncStep2  SyncType = 1 // payload: the update the receiver lacks
	SyncUpdate SyncType = 2 // payload: an update
)

// Message is one decoded message. Payload is a view into the decoded
// frame: copy it to keep it past the frame's buffer.
type Message struct {
	Type Type
	// Sync is the subtype of a TypeSync message.
	Sync SyncType
	// Payload is the state vector or update of a sync message, or the
	// awareness update of a TypeAwareness message (DecodeAwareness reads it).
	Payload []byte
	// Reason is the reason of a TypeAuth permission-denied message.
	Reason string
}

// Limits bounds what Decode and DecodeAwareness accept. A zero field
// means its default.
type Limits struct {
	MaxMessage    int // bytes of one message (default 16 MiB)
	MaxAwareness  int // entries of one awareness update (default 1024)
	MaxStateBytes int // bytes of one awareness state JSON (default 64 KiB)
	// MaxAwarenessBytes bounds the states an Awareness holds together
	// (default 1 MiB): carets and names, not a document's worth of data.
	MaxAwarenessBytes int
	MaxReasonBytes    int // bytes of an auth reason (default 4 KiB)
}

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = 16 << 20
	}
	if l.MaxAwareness <= 0 {
		l.MaxAwareness = 1024
	}
	if l.MaxStateBytes <= 0 {
		l.MaxStateBytes = 64 << 10
	}
	if l.MaxAwarenessBytes <= 0 {
		l.MaxAwarenessBytes = 1 << 20
	}
	if l.MaxReasonBytes <= 0 {
		l.MaxReasonBytes = 4 << 10
	}
	return l
}

// Errors a decoder wraps in a *DecodeError.
var (
	ErrMalformed = errors.New("yjs protocol: malformed message")
	ErrTooLarge  = errors.New("yjs protocol: over a limit")
)

// DecodeError says where and what a decoder refused.
type DecodeError struct {
	Offset int
	Field  string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d", e.Err, e.Field, e.Offset)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// maxSafe is JavaScript's Number.MAX_SAFE_INTEGER: lib0 refuses larger varUints.
const maxSafe = 1<<53 - 1

// reader reads lib0 encodings; the first error sticks.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = &DecodeError{Offset: r.pos, Field: field, Err: err}
	}
	r.pos = len(r.b)
}

func (r *reader) varUint(field string) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if r.err != nil {
			return 0
		}
		if r.pos >= len(r.b) || shift > 49 {
			r.fail(field, ErrMalformed)
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		v |= uint64(c&0x7f) << shift
		if v > maxSafe {
			r.fail(field, ErrMalformed)
			return 0
		}
		if c < 0x80 {
			return v
		}
	}
}

// bytes reads a varUint8Array (a view) of at most max bytes.
func (r *reader) bytes(field string, max int) []byte {
	n := r.varUint(field)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.pos) {
		r.fail(field, ErrMalformed)
		return nil
	}
	if n > uint64(max) {
		r.fail(field, ErrTooLarge)
		return nil
	}
	v := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return v
}

func (r *reader) str(field string, max int) string {
	start := r.pos
	v := r.bytes(field, max)
	if r.err == nil && !utf8.Valid(v) {
		r.pos = start
		r.fail(field, ErrMalformed)
		return ""
	}
	return string(v)
}

// syncBody reads a y-protocols sync message: subtype, then payload.
func (r *reader) syncBody(lim Limits) (SyncType, []byte) {
	t := SyncType(r.varUint("sync type"))
	if r.err == nil && t > SyncUpdate {
		r.fail("sync type", ErrMalformed)
	}
	return t, r.bytes("sync payload", lim.MaxMessage)
}

func (r *reader) end(field string) {
	if r.err == nil && r.pos != len(r.b) {
		r.fail(field, ErrMalformed)
	}
}

// Decode reads one message (one WebSocket frame).
func Decode(b []byte, lim Limits) (Message, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxMessage {
		return Message{}, &DecodeError{Field: "message", Err: ErrTooLarge}
	}
	r := &reader{b: b}
	var m Message
	m.Type = Type(r.varUint("message type"))
	switch {
	case r.err != nil:
	case m.Type == TypeSync:
		m.Sync, m.Payload = r.syncBody(lim)
	case m.Type == TypeAwareness:
		m.Payload = r.bytes("awareness update", lim.MaxMessage)
	case m.Type == TypeAuth:
		if k := r.varUint("auth type"); r.err == nil && k != 0 {
			r.fail("auth type", ErrMalformed)
		}
		m.Reason = r.str("auth reason", lim.MaxReasonBytes)
	case m.Type == TypeQueryAwareness:
	default:
		r.fail("message type", ErrMalformed)
	}
	r.end("trailing bytes")
	if r.err != nil {
		return Message{}, r.err
	}
	return m, nil
}

// AwarenessEntry is one client's state in an awareness update. State is
// its JSON; "null" means the client is gone.
type AwarenessEntry struct {
	Client uint64
	Clock  uint64
	State  string
}

// Removed reports whether the entry says the client left.
func (e AwarenessEntry) Removed() bool { return e.State == "null" }

// DecodeAwareness reads an awareness update (the payload of a
// TypeAwareness message).
func DecodeAwareness(b []byte, lim Limits) ([]AwarenessEntry, error) {
	lim = lim.withDefaults()
	r := &reader{b: b}
	n := r.varUint("awareness entries")
	if r.err == nil && n > uint64(lim.MaxAwareness) {
		r.fail("awareness entries", ErrTooLarge)
	}
	// each entry takes at least 3 bytes: n is checked against the input
	// before anything is allocated for it
	if r.err == nil && n > uint64(len(b)-r.pos)/3 {
		r.fail("awareness entries", ErrMalformed)
	}
	if r.err != nil {
		return nil, r.err
	}
	out := make([]AwarenessEntry, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		var e AwarenessEntry
		e.Client = r.varUint("awareness client")
		e.Clock = r.varUint("awareness clock")
		start := r.pos
		e.State = r.str("awareness state", lim.MaxStateBytes)
		if r.err == nil && !json.Valid([]byte(e.State)) {
			r.pos = start
			r.fail("awareness state", ErrMalformed)
		}
		out = append(out, e)
	}
	r.end("trailing bytes")
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

func appendVarUint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytes(b, v []byte) []byte {
	return append(appendVarUint(b, uint64(len(v))), v...)
}

// AppendSync appends a sync message of subtype t carrying payload.
func AppendSync(dst []byte, t SyncType, payload []byte) []byte {
	return appendBytes(appendVarUint(appendVarUint(dst, uint64(TypeSync)), uint64(t)), payload)
}

// AppendAwareness appends an awareness message carrying an awareness update.
func AppendAwareness(dst, update []byte) []byte {
	return appendBytes(appendVarUint(dst, uint64(TypeAwareness)), update)
}

// AppendQueryAwareness appends a query-awareness message.
func AppendQueryAwareness(dst []byte) []byte {
	return appendVarUint(dst, uint64(TypeQueryAwareness))
}

// AppendAuthDenied appends an auth message that denies permission.
func AppendAuthDenied(dst []byte, reason string) []byte {
	return appendBytes(appendVarUint(appendVarUint(dst, uint64(TypeAuth)), 0), []byte(reason))
}

// AppendAwarenessUpdate appends an awareness update of entries (the
// payload of AppendAwareness).
func AppendAwarenessUpdate(dst []byte, entries []AwarenessEntry) []byte {
	dst = appendVarUint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = appendVarUint(appendVarUint(dst, e.Client), e.Clock)
		dst = appendBytes(dst, []byte(e.State))
	}
	return dst
}
