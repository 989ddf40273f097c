package protocol

import (
	"fmt"

	"github.com/collabd/collabd/crdt"
)

// Version is the protocol version this package speaks, sent in Hello and
// Welcome. A frame layout changes only with a new version.
const Version = 1

// Type is the first element of every frame. The zero value is invalid.
type Type uint8

// Message types. The numbers are part of the wire format and never change.
const (
	TypeHello   Type = iota + 1 // client -> server: [1, version, token, agents, client]
	TypeWelcome                 // server -> client: [2, version, session, limits]
	TypeJoin                    // client -> server: [3, doc, state vector, read-only(, snapshot)]
	TypeSync                    // server -> client: [4, doc, chunk, final, update, state vector or nil(, snapshot)]
	TypeUpdate                  // both ways: [5, doc, batch, update]
	TypeAck                     // server -> client: [6, doc, batch, status, applied, durable]
	TypeLeave                   // client -> server: [7, doc]
	TypeError                   // server -> client: [8, code, doc, batch, message, retry-after ms]
	TypePing                    // both ways: [9, nonce]
	TypePong                    // both ways: [10, nonce]
	TypeRefresh                 // client -> server: [11, token]
	TypeMessage                 // both ways: [12, doc, from, data] (an ephemeral broadcast)
)

// Types 32 through 63 are reserved for presence messages; 32 and 33 are
// defined in presence.go, the rest are refused with ErrUnknownType.
const (
	TypePresenceFirst Type = 32
	TypePresenceLast  Type = 63
)

// String returns the lower-case name of t ("hello"), or "type(N)".
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeWelcome:
		return "welcome"
	case TypeJoin:
		return "join"
	case TypeSync:
		return "sync"
	case TypeUpdate:
		return "update"
	case TypeAck:
		return "ack"
	case TypeLeave:
		return "leave"
	case TypeError:
		return "error"
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeRefresh:
		return "refresh"
	case TypeMessage:
		return "message"
	case TypePresenceSet:
		return "presence-set"
	case TypePresence:
		return "presence"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Message is one decoded frame. The concrete types are the pointer types of
// this package (*Hello, *Join, ...): Decode returns them, and a type switch
// on a Message names them with a star.
type Message interface{ Type() Type }

// Hello is the first frame a client sends on a connection.
type Hello struct {
	Version int            // protocol version the client speaks; 0 encodes as Version
	Token   string         // auth token; "" if sent in the Authorization header or query
	Agents  []crdt.AgentID // agent ids whose ops this session will send (non-zero, distinct)
	Client  string         // free-form client name and version, for logs ("collab-go/0.1")
}

// Welcome is the server's answer to an accepted Hello.
type Welcome struct {
	Version int    // protocol version the session uses; 0 encodes as Version
	Session string // server-chosen session id, for logs and support
	Limits  Limits // what the server enforces on this session
}

// Limits are the limits a server enforces, told to the client in Welcome.
// Every field is a non-negative integer below 2^31; 0 means "no limit" for
// the size and count fields, "no pings" for PingIntervalMs.
type Limits struct {
	MaxFrame       int // bytes in one frame the server accepts
	MaxDocs        int // documents joined at once on one connection
	MaxOpsPerBatch int // ops in one Update's crdt update
	MaxDocBytes    int // bytes of a document's encoded state
	PingIntervalMs int // the server sends a Ping this often
	PongTimeoutMs  int // and closes the connection if no Pong answers it in time
}

// Join asks for a document: the server answers with Sync frames carrying the
// ops the client lacks, then fans out every later update.
type Join struct {
	Doc      string
	SV       crdt.StateVector // what the client has; nil or empty: nothing
	ReadOnly bool             // the client will not send updates for Doc
	// Snapshot: with an empty SV, the client takes the whole document as
	// a snapshot (Sync.Snapshot) rather than as updates. Encoded as a fifth
	// element only when true, so a join without it keeps the four-element
	// layout older servers read.
	Snapshot bool
}

// Sync is one chunk of the server's answer to a Join. Chunks are numbered
// from 0; the last has Final set and carries the server's state vector.
type Sync struct {
	Doc    string
	Chunk  int
	Final  bool
	Update []byte           // a complete crdt update (docs/FORMATS.md), at most MaxChunk bytes
	SV     crdt.StateVector // the server's state vector; only (and always) when Final
	// Snapshot: Update is a piece of one crdt snapshot (docs/FORMATS.md,
	// "Snapshot"), not an update: the pieces of chunks 0 through the final
	// one, concatenated, are the snapshot. Sent only to a Join with Snapshot
	// set and an empty state vector; encoded as a seventh element only when
	// true.
	Snapshot bool
}

// Update carries a crdt update: local edits from a client (Batch > 0, chosen
// by the client) or ops fanned out by the server (Batch 0).
type Update struct {
	Doc    string
	Batch  uint64
	Update []byte // a complete crdt update (docs/FORMATS.md)
}

// AckStatus says how far a batch has got. The zero value is invalid.
type AckStatus uint8

// Ack statuses.
const (
	AckApplied  AckStatus = iota + 1 // in the document and fanned out to the other sessions
	AckDurable                       // committed to disk: survives kill -9 of the server
	AckRejected                      // refused; an Error with the same Doc and Batch says why
)

func (s AckStatus) String() string {
	switch s {
	case AckApplied:
		return "applied"
	case AckDurable:
		return "durable"
	case AckRejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Ack reports the progress of one client batch.
type Ack struct {
	Doc     string
	Batch   uint64
	Status  AckStatus
	Applied uint64 // document version (crdt StateVector.Version) once the batch was applied
	Durable uint64 // highest document version committed to disk when the ack was sent
}

// Leave stops the client's subscription to a document.
type Leave struct {
	Doc string
}

// Error reports a failure. Doc is "" when it concerns the whole connection
// (the server then closes it with Code as the close code); Batch is the
// client batch it concerns, or 0. RetryAfterMs is the server's hint: a client
// retries no sooner (see Backoff).
type Error struct {
	Code         Code
	Doc          string
	Batch        uint64
	Message      string
	RetryAfterMs int
}

// Error makes *Error usable as a Go error on the receiving side.
func (e *Error) Error() string {
	s := fmt.Sprintf("protocol: %s (%d)", e.Code, uint16(e.Code))
	if e.Doc != "" {
		s += fmt.Sprintf(" doc %q", e.Doc)
	}
	if e.Batch != 0 {
		s += fmt.Sprintf(" batch %d", e.Batch)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Ping asks the peer for a Pong with the same Nonce.
type Ping struct{ Nonce uint64 }

// Pong answers a Ping.
type Pong struct{ Nonce uint64 }

// Refresh replaces the session's token before it expires.
type Refresh struct{ Token string }

// Broadcast is an ephemeral message on a document: a client sends it to
// the document's other clients (From empty; the server fills it in), and
// the server delivers it (and those an app posts over HTTP, From empty) to
// every session of the document but its sender. Data is JSON (at most
// DecodeLimits.MaxMessage bytes). It is not stored and not part of the
// document.
type Broadcast struct {
	Doc  string
	From string // the sending session's id ("" from the app, over HTTP)
	Data []byte // JSON
}

// Type implements Message.
func (*Hello) Type() Type   { return TypeHello }
func (*Welcome) Type() Type { return TypeWelcome }
func (*Join) Type() Type    { return TypeJoin }
func (*Sync) Type() Type    { return TypeSync }
func (*Update) Type() Type  { return TypeUpdate }
func (*Ack) Type() Type     { return TypeAck }
func (*Leave) Type() Type   { return TypeLeave }
func (*Error) Type() Type   { return TypeError }
func (*Ping) Type() Type    { return TypePing }
func (*Pong) Type() Type    { return TypePong }
func (*Refresh) Type() Type { return TypeRefresh }

// Type implements Message.
func (*Broadcast) Type() Type { return TypeMessage }
