package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/collabd/collabd/protocol"
)

// guard is the one gate every request of Handler passes before its route:
//
//   - Host: only the names Config.AllowedHosts allows (in development mode,
//     loopback names and addresses), so a DNS-rebinding page cannot reach a
//     server on localhost through a name it controls (421 otherwise). The
//     health, readiness and metrics probes answer any Host.
//   - Origin: a state-changing request (POST, PUT, DELETE, PATCH) from a
//     browser must come from an allowed origin (checkOrigin), like the
//     WebSocket upgrade (403 otherwise). Cross-site "simple" requests are
//     thereby refused even in development mode.
//   - Bodies: a request with a body must send it within BodyTimeout (a read
//     deadline on the connection), and a response written before the body
//     was read to the end (a refusal) closes the connection instead of
//     reading the rest: nobody can hold a handler open with a slow body.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) && !probe(r) {
			s.refused(r, "host", "host", hostOnly(r.Host))
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusMisdirectedRequest, protocol.CodeForbidden, "host not allowed: "+hostOnly(r.Host))
			return
		}
		if s.cors(w, r) {
			return // a preflight, answered
		}
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
			if !s.checkOrigin(r) {
				s.refused(r, "origin", "origin", r.Header.Get("Origin"))
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusForbidden, protocol.CodeForbidden, "origin not allowed")
				return
			}
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
		b := &eofBody{ReadCloser: r.Body}
		r.Body = b
		next.ServeHTTP(&closeUnread{ResponseWriter: w, body: b}, r)
	})
}

// CORS: the methods and request headers a browser on an allowed origin may
// use, and the response headers it may read.
const (
	corsMethods        = "GET, POST, PUT, DELETE"
	corsHeaders        = "Authorization, Content-Type, Last-Event-ID, X-Collabd-Key"
	corsExposedHeaders = "X-Collabd-Version, Retry-After, Content-Disposition"
)

// cors applies the cross-origin rules: a request from an origin on
// AllowedOrigins gets CORS headers for exactly that origin (credentials
// only with Config.CORSCredentials: tokens go in Authorization); a
// preflight (OPTIONS with Access-Control-Request-Method) is answered here,
// 204 for an allowed origin and 403 otherwise. It reports whether it
// answered the request.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if origin == "" || !s.listedOrigin(origin) {
		if preflight {
			s.refused(r, "origin", "origin", origin, "preflight", true)
			writeError(w, http.StatusForbidden, protocol.CodeForbidden, "origin not allowed")
			return true
		}
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if s.cfg.CORSCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if !preflight {
		h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
		return false
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// probe reports whether r is a health, readiness or metrics probe: those
// carry no document data and are answered whatever the Host (orchestrators
// probe by address).
func probe(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return r.Method == http.MethodGet || r.Method == http.MethodHead
	}
	return false
}

// hostAllowed applies Config.AllowedHosts to a request's Host header.
func (s *Server) hostAllowed(hostport string) bool {
	host := strings.ToLower(hostOnly(hostport))
	for _, h := range s.cfg.AllowedHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	if s.auth != nil {
		return len(s.cfg.AllowedHosts) == 0
	}
	return loopbackHost(host)
}

// hostOnly strips the port (and IPv6 brackets) from a Host header.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// loopbackHost reports whether host names this machine's loopback: the
// name localhost (and *.localhost, RFC 6761) or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// eofBody records whether a request body was read to its end.
type eofBody struct {
	io.ReadCloser
	mu  sync.Mutex // guards eof (a handler may read on one goroutine and answer on another)
	eof bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *eofBody) done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// closeUnread marks the connection to be closed when the response starts
// before the request body was read to its end (net/http would otherwise read
// up to 256 KiB of it first, at the client's pace).
type closeUnread struct {
	http.ResponseWriter
	body  *eofBody
	wrote bool
}

func (c *closeUnread) WriteHeader(code int) {
	if !c.wrote {
		c.wrote = true
		if !c.body.done() {
			c.Header().Set("Connection", "close")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *closeUnread) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *closeUnread) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// budget bounds the request body bytes being read at once, server wide.
type budget struct {
	mu   sync.Mutex // guards used
	used int64
	max  int64
}

func newBudget(max int64) *budget { return &budget{max: max} }

// take reserves n bytes; it reports false when they do not fit.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// errBodyBusy: the server-wide body budget is spent.
var errBodyBusy = errors.New("server: too many request bodies in flight")

// readBody reads a request body of at most max bytes, reserving its size
// (the declared Content-Length, else max) in the server's body budget before
// anything is read. On failure it has answered the request. The caller calls
// release once it no longer needs the bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, max int64) (body []byte, release func(), ok bool) {
	n := max
	if r.ContentLength > max {
		writeError(w, 0, protocol.CodeFrameTooLarge, fmt.Sprintf("body of %d bytes, more than %d", r.ContentLength, max))
		return nil, nil, false
	}
	if r.ContentLength >= 0 {
		n = r.ContentLength
	}
	if !s.bodies.take(n) {
		s.metrics.CapacityRefusal()
		writeError(w, 0, protocol.CodeOverloaded, errBodyBusy.Error())
		return nil, nil, false
	}
	release = func() { s.bodies.give(n) }
	body, err := io.ReadAll(io.LimitReader(r.Body, n+1))
	if err == nil && int64(len(body)) > n {
		release()
		writeError(w, 0, protocol.CodeFrameTooLarge, fmt.Sprintf("body over %d bytes", n))
		return nil, nil, false
	}
	if err != nil {
		release()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			writeError(w, http.StatusRequestTimeout, protocol.CodeBadFrame, "request body not sent in time")
		} else {
			writeError(w, http.StatusBadRequest, protocol.CodeBadFrame, "reading the body: "+err.Error())
		}
		return nil, nil, false
	}
	return body, release, true
}

// requireJSON refuses a request whose Content-Type is not JSON (415): a
// browser can send text/plain or form bodies cross-site without asking, JSON
// only after a CORS preflight. On failure it has answered.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return true
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusUnsupportedMediaType, protocol.CodeBadFrame, "Content-Type must be application/json")
	return false
}
