package yjs

import "strings"

// HType is a Hocuspocus message type (@hocuspocus/provider's MessageType).
type HType uint64

// Hocuspocus message types. Sync, Awareness and QueryAwareness carry the
// y-protocols bodies; Auth has Hocuspocus's own subtypes (AuthType).
const (
	HSync           HType = 0
	HAwareness      HType = 1
	HAuth           HType = 2
	HQueryAwareness HType = 3
	HStateless      HType = 5
	HClose          HType = 7
	HSyncStatus     HType = 8
	HPing           HType = 9  // a bare one-byte frame, no document
	HPong           HType = 10 // a bare one-byte frame, no document
)

// AuthType is the subtype of a Hocuspocus auth message (@hocuspocus/common).
type AuthType uint64

// Auth subtypes.
const (
	AuthToken            AuthType = 0 // client: the token (and its version); server: "send your token"
	AuthPermissionDenied AuthType = 1 // server: the reason
	AuthAuthenticated    AuthType = 2 // server: the scope ("read-write" or "readonly")
)

// HMessage is one Hocuspocus frame. Hocuspocus multiplexes documents over
// one WebSocket: every frame but Ping and Pong starts with the document's
// name (Doc), followed by "\x00" and a session id when the provider sends
// one (Session).
type HMessage struct {
	Type    HType
	Doc     string
	Session string
	HasKey  bool // Session was present (even empty)
	// Sync and Payload: as in Message, for HSync and HAwareness.
	Sync    SyncType
	Payload []byte
	// Auth is the subtype of an HAuth message; Text is its token, reason
	// or scope (HasText: present; a token request has none), Version the
	// provider version that follows a token.
	Auth    AuthType
	Text    string
	HasText bool
	Version string
	// Stateless is the payload of HStateless; Reason that of HClose (a
	// provider's close carries none).
	Stateless string
	Reason    string
	// Synced is the flag of HSyncStatus.
	Synced bool
}

// DecodeHocuspocus reads one Hocuspocus frame. The same hostile-input
// rules as Decode apply (lengths checked before slicing, typed errors, no
// trailing bytes).
func DecodeHocuspocus(b []byte, lim Limits) (HMessage, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxMessage {
		return HMessage{}, &DecodeError{Field: "message", Err: ErrTooLarge}
	}
	if len(b) == 1 && (b[0] == byte(HPing) || b[0] == byte(HPong)) {
		return HMessage{Type: HType(b[0])}, nil
	}
	r := &reader{b: b}
	var m HMessage
	key := r.str("document name", maxDocKey)
	if doc, session, ok := strings.Cut(key, "\x00"); ok {
		m.Doc, m.Session, m.HasKey = doc, session, true
	} else {
		m.Doc = key
	}
	m.Type = HType(r.varUint("message type"))
	switch {
	case r.err != nil:
	case m.Type == HSync:
		m.Sync, m.Payload = r.syncBody(lim)
	case m.Type == HAwareness:
		m.Payload = r.bytes("awareness update", lim.MaxMessage)
	case m.Type == HAuth:
		m.Auth = AuthType(r.varUint("auth type"))
		switch {
		case r.err != nil:
		case m.Auth > AuthAuthenticated:
			r.fail("auth type", ErrMalformed)
		case m.Auth == AuthToken && r.pos == len(r.b): // a token request
		default:
			m.Text, m.HasText = r.str("auth text", lim.MaxMessage), true
			if m.Auth == AuthToken && r.err == nil && r.pos < len(r.b) {
				m.Version = r.str("provider version", lim.MaxReasonBytes)
			}
		}
	case m.Type == HQueryAwareness:
	case m.Type == HStateless:
		m.Stateless = r.str("stateless payload", lim.MaxMessage)
	case m.Type == HClose:
		if r.pos < len(r.b) {
			m.Reason = r.str("close reason", lim.MaxReasonBytes)
		}
	case m.Type == HSyncStatus:
		switch v := r.varInt("sync status"); {
		case r.err != nil:
		case v == 0 || v == 1:
			m.Synced = v == 1
		default:
			r.fail("sync status", ErrMalformed)
		}
	default:
		r.fail("message type", ErrMalformed)
	}
	r.end("trailing bytes")
	if r.err != nil {
		return HMessage{}, r.err
	}
	return m, nil
}

// maxDocKey bounds a document name with its session id (collabd's ids are
// at most 255 bytes).
const maxDocKey = 1024

// varInt reads lib0's signed varInt (first byte: continuation, sign, 6 bits).
func (r *reader) varInt(field string) int64 {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail(field, ErrMalformed)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	v := uint64(c & 0x3f)
	neg := c&0x40 != 0
	for shift := uint(6); c&0x80 != 0; shift += 7 {
		if r.pos >= len(r.b) || shift > 46 {
			r.fail(field, ErrMalformed)
			return 0
		}
		c = r.b[r.pos]
		r.pos++
		v |= uint64(c&0x7f) << shift
		if v > maxSafe {
			r.fail(field, ErrMalformed)
			return 0
		}
	}
	if neg {
		return -int64(v)
	}
	return int64(v)
}

// AppendHocuspocus appends m as a Hocuspocus frame.
func AppendHocuspocus(dst []byte, m HMessage) []byte {
	if m.Type == HPing || m.Type == HPong {
		return append(dst, byte(m.Type))
	}
	key := m.Doc
	if m.HasKey {
		key += "\x00" + m.Session
	}
	dst = appendVarUint(appendBytes(dst, []byte(key)), uint64(m.Type))
	switch m.Type {
	case HSync:
		dst = appendBytes(appendVarUint(dst, uint64(m.Sync)), m.Payload)
	case HAwareness:
		dst = appendBytes(dst, m.Payload)
	case HAuth:
		dst = appendVarUint(dst, uint64(m.Auth))
		if m.HasText {
			dst = appendBytes(dst, []byte(m.Text))
			if m.Auth == AuthToken && m.Version != "" {
				dst = appendBytes(dst, []byte(m.Version))
			}
		}
	case HStateless:
		dst = appendBytes(dst, []byte(m.Stateless))
	case HClose:
		if m.Reason != "" {
			dst = appendBytes(dst, []byte(m.Reason))
		}
	case HSyncStatus:
		if m.Synced {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}
