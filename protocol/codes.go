package protocol

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Code is an error code, carried by Error frames and used as the WebSocket
// close code. The numbers are stable. Codes 4000–4499 mean "retry and
// resync": reconnect (or rejoin) with backoff, honouring the retry-after hint.
// Codes 4500–4999 are terminal: retrying without a change (a new token, a
// smaller frame, fixed code) fails the same way. A client that meets a code
// it does not know decides by its range.
type Code uint16

// Retry-and-resync codes (4000–4499).
const (
	CodeGoingAway       Code = 4001 // the server is shutting down or restarting
	CodeDocUnloading    Code = 4002 // the document is being unloaded or moved; rejoin
	CodeRateLimited     Code = 4003 // too many frames or ops; slow down
	CodeOverloaded      Code = 4004 // the server is at capacity (connections, documents, memory)
	CodeInternal        Code = 4005 // an unexpected server error
	CodeStorageFailed   Code = 4006 // a commit failed; batches not acked durable must be resent
	CodePendingFull     Code = 4007 // too many ops wait for missing dependencies; rejoin to resync
	CodeSlow            Code = 4008 // the client did not read fast enough (outbound queue full)
	CodeNoPong          Code = 4009 // no Pong within PongTimeoutMs
	CodeHelloTimeout    Code = 4010 // no Hello within the handshake deadline
	CodeAgentInUse      Code = 4011 // an agent id is claimed by another live session (often this client's previous one)
	CodeResync          Code = 4012 // the server's copy changed under the session (e.g. restored); rejoin
	CodeTooManyRequests Code = 4013 // too many connections from this address or user
)

// Terminal codes (4500–4999).
const (
	CodeBadFrame           Code = 4500 // a frame that does not decode, a text frame, or a message out of place
	CodeUnauthorized       Code = 4501 // no token, or one that does not verify
	CodeForbidden          Code = 4502 // the token does not grant this document (or writing to it)
	CodeTokenExpired       Code = 4503 // the token expired; retry only with a new token
	CodeUnsupportedVersion Code = 4504 // the server does not speak the Hello's protocol version
	CodeFrameTooLarge      Code = 4505 // a frame above Limits.MaxFrame
	CodeTooManyDocs        Code = 4506 // joining more than Limits.MaxDocs documents
	CodeDocTooLarge        Code = 4507 // the update would grow the document past Limits.MaxDocBytes
	CodeNotJoined          Code = 4508 // an Update or Leave for a document the session has not joined
	CodeForgedAgent        Code = 4509 // ops of an agent the session did not claim in Hello
	CodeInvalidOp          Code = 4510 // an update that does not decode or apply (crdt refused it)
	CodeDocDeleted         Code = 4511 // the document was deleted
	CodeDocCorrupt         Code = 4512 // the stored document cannot be loaded; it is refused, never replaced
	CodeReadOnly           Code = 4513 // an Update on a document joined read-only
	CodeTooManyOps         Code = 4514 // a batch with more than Limits.MaxOpsPerBatch ops
	CodeBadDocID           Code = 4515 // a document id that breaks the id rules
	CodePresenceRefused    Code = 4516 // a PresenceSet over a presence limit or invalid; the document stays joined
	CodeWrongKind          Code = 4517 // the document is of the other kind (native or Yjs) than the door it was opened through
)

// Code ranges.
const (
	CodeRetryFirst    Code = 4000
	CodeRetryLast     Code = 4499
	CodeTerminalFirst Code = 4500
	CodeTerminalLast  Code = 4999
)

// Codes returns every code of the table, in ascending order.
func Codes() []Code {
	return []Code{
		CodeGoingAway, CodeDocUnloading, CodeRateLimited, CodeOverloaded, CodeInternal,
		CodeStorageFailed, CodePendingFull, CodeSlow, CodeNoPong, CodeHelloTimeout,
		CodeAgentInUse, CodeResync, CodeTooManyRequests,
		CodeBadFrame, CodeUnauthorized, CodeForbidden, CodeTokenExpired, CodeUnsupportedVersion,
		CodeFrameTooLarge, CodeTooManyDocs, CodeDocTooLarge, CodeNotJoined, CodeForgedAgent,
		CodeInvalidOp, CodeDocDeleted, CodeDocCorrupt, CodeReadOnly, CodeTooManyOps, CodeBadDocID,
		CodePresenceRefused, CodeWrongKind,
	}
}

// Retry reports whether a client should reconnect (or rejoin) after c, with
// backoff. It is true for 4000–4499 and for the standard WebSocket close codes
// that mean a transient failure: 1001 going away, 1005 no status, 1006
// abnormal closure (the connection dropped), 1011 internal error, 1012
// service restart, 1013 try again later, 1014 bad gateway.
func (c Code) Retry() bool {
	switch {
	case c >= CodeRetryFirst && c <= CodeRetryLast:
		return true
	case c == 1001 || c == 1005 || c == 1006 || (c >= 1011 && c <= 1014):
		return true
	}
	return false
}

// String returns the code's name in the table ("slow"), or for a code outside
// it "retry(N)", "terminal(N)" or "code(N)" by its range.
func (c Code) String() string {
	switch c {
	case CodeGoingAway:
		return "going away"
	case CodeDocUnloading:
		return "doc unloading"
	case CodeRateLimited:
		return "rate limited"
	case CodeOverloaded:
		return "overloaded"
	case CodeInternal:
		return "internal error"
	case CodeStorageFailed:
		return "storage failed"
	case CodePendingFull:
		return "pending full"
	case CodeSlow:
		return "slow"
	case CodeNoPong:
		return "no pong"
	case CodeHelloTimeout:
		return "hello timeout"
	case CodeAgentInUse:
		return "agent in use"
	case CodeResync:
		return "resync"
	case CodeTooManyRequests:
		return "too many requests"
	case CodeBadFrame:
		return "bad frame"
	case CodeUnauthorized:
		return "unauthorized"
	case CodeForbidden:
		return "forbidden"
	case CodeTokenExpired:
		return "token expired"
	case CodeUnsupportedVersion:
		return "unsupported version"
	case CodeFrameTooLarge:
		return "frame too large"
	case CodeTooManyDocs:
		return "too many docs"
	case CodeDocTooLarge:
		return "doc too large"
	case CodeNotJoined:
		return "not joined"
	case CodeForgedAgent:
		return "forged agent"
	case CodeInvalidOp:
		return "invalid op"
	case CodeDocDeleted:
		return "doc deleted"
	case CodeDocCorrupt:
		return "doc corrupt"
	case CodeReadOnly:
		return "read only"
	case CodeTooManyOps:
		return "too many ops"
	case CodeBadDocID:
		return "bad doc id"
	case CodePresenceRefused:
		return "presence refused"
	case CodeWrongKind:
		return "wrong kind"
	}
	switch {
	case c >= CodeRetryFirst && c <= CodeRetryLast:
		return fmt.Sprintf("retry(%d)", uint16(c))
	case c >= CodeTerminalFirst && c <= CodeTerminalLast:
		return fmt.Sprintf("terminal(%d)", uint16(c))
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// MaxCloseReason is the most bytes a WebSocket close reason may have (a
// control frame's payload is at most 125 bytes, 2 of them the code).
const MaxCloseReason = 123

// CloseReason returns msg (or, if msg is "", the code's name) as a WebSocket
// close reason: valid UTF-8, truncated at a code point boundary to at most
// MaxCloseReason bytes.
func CloseReason(c Code, msg string) string {
	if msg == "" {
		msg = c.String()
	}
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxCloseReason {
		return msg
	}
	n := MaxCloseReason
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n]
}

// Reconnect backoff parameters (see Backoff).
const (
	BackoffBase = 250 * time.Millisecond
	BackoffMax  = 30 * time.Second
)

// Backoff returns how long a client waits before reconnect attempt number
// attempt (0 for the first retry after a connection ended): exponential
// backoff with full jitter, added to the server's hint, so never sooner than
// retryAfter:
//
//	retryAfter + r × min(BackoffMax, BackoffBase × 2^attempt)
//
// r is a uniform random number in [0, 1) supplied by the caller (the package
// keeps no random source). Reset attempt to 0 once a connection has stayed up
// for 30 s.
func Backoff(attempt int, retryAfter time.Duration, r float64) time.Duration {
	ceil := BackoffMax
	if attempt >= 0 && attempt < 20 {
		ceil = min(BackoffMax, BackoffBase<<attempt)
	}
	r = max(0, min(r, 1))
	return max(retryAfter, 0) + time.Duration(r*float64(ceil))
}
