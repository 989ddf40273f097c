package server

import (
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/collabd/collabd/protocol"
)

// refusalLog rate-limits the info lines that name every refused connection
// or request (a flood of bad requests must not become a flood of log
// lines): at most refusalRate lines a second, the rest counted and reported
// with the next line that goes out.
type refusalLog struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

const refusalRate, refusalBurst = 20, 100

func newRefusalLog() *refusalLog {
	return &refusalLog{lim: rate.NewLimiter(refusalRate, refusalBurst)}
}

// refused logs (at info, rate limited) and counts a refused HTTP request or
// connection: reason is one word (host, origin, auth, limits, capacity,
// rate, slow, bad input), attrs add the details.
func (s *Server) refused(r *http.Request, reason string, attrs ...any) {
	s.metrics.Refused(reason)
	s.logRefusal(reason, append([]any{"remote", s.clientIP(r), "method", r.Method, "path", r.URL.Path}, attrs...))
}

func (s *Server) logRefusal(reason string, attrs []any) {
	if s.refusals == nil { // a Server not made by New (tests)
		return
	}
	if !s.refusals.lim.Allow() {
		s.refusals.suppressed.Add(1)
		return
	}
	args := append([]any{"reason", reason}, attrs...)
	if n := s.refusals.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	s.cfg.Logger.Info("refused", args...)
}

// closeReason is the refusal reason of a session close code ("" for a
// close that refuses nothing: going away, a client leaving).
func closeReason(code protocol.Code) string {
	switch code {
	case protocol.CodeGoingAway, protocol.CodeNoPong, 0:
		return ""
	case protocol.CodeUnauthorized, protocol.CodeTokenExpired, protocol.CodeForbidden:
		return "auth"
	case protocol.CodeSlow:
		return "slow"
	case protocol.CodeRateLimited, protocol.CodeTooManyRequests:
		return "rate"
	case protocol.CodeOverloaded, protocol.CodeTooManyDocs:
		return "limits"
	case protocol.CodeBadFrame, protocol.CodeFrameTooLarge, protocol.CodeBadDocID, protocol.CodeForgedAgent,
		protocol.CodeUnsupportedVersion, protocol.CodeHelloTimeout, protocol.CodeAgentInUse:
		return "bad input"
	}
	return code.String()
}

// sessionClosed logs a session's end: a refusal at info (rate limited), an
// ordinary end at debug.
func (s *Server) sessionClosed(sess *session, code protocol.Code, reason string) {
	if why := closeReason(code); why != "" {
		s.metrics.Refused(why)
		s.logRefusal(why, []any{"remote", sess.remote, "session", sess.id, "code", int(code), "detail", reason})
		return
	}
	s.cfg.Logger.Debug("session closed", "session", sess.id, "remote", sess.remote, "code", int(code),
		"lasted", time.Since(sess.opened).Round(time.Millisecond))
}
