package server

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
)

// Server routes WebSocket sessions to document owners. Create it with New,
// serve its Handler, and stop it with Shutdown.
type Server struct {
	cfg          Config
	auth         *authenticator // nil: development mode
	agent        crdt.AgentID   // the server's own agent (for server-made edits)
	reg          *owner.Registry
	node         *cluster.Node // cluster mode's routing (nil: single node)
	drains       *drainPool    // runs the read loops' bursts of frames (drainpool.go)
	backingUp    atomic.Bool   // a cluster backup is being copied (one at a time)
	upgrader     websocket.Upgrader
	decodeLimits protocol.DecodeLimits
	metrics      *metrics // Prometheus metrics (GET /metrics), own registry
	refusals     *refusalLog
	events       *dispatcher // nil without webhooks and hooks
	bodies       *budget     // request body bytes being read (Config.MaxBodyBytes)
	syncs        *budget     // sync bytes queued beyond connections' QueueBytes (Config.SyncBudget)
	frameBufs    sync.Pool   // *[]byte: WebSocket frames being read and handled (readWS)

	ctx    context.Context // cancelled by Shutdown: owners flush and exit
	cancel context.CancelFunc
	wg     sync.WaitGroup // owners, sessions and their helpers

	mu       sync.Mutex // guards sessions, agents, conns, perIP, rt, closing
	sessions map[*session]bool
	agents   map[crdt.AgentID]*session
	conns    int                     // long-lived connections admitted (sessions and HTTP followers)
	perIP    map[string]int          // the same, by remote address
	rt       map[string]*rtTransport // fallback sessions by id
	closing  bool
}

// MinSecretBytes is the shortest Config.AuthSecret New accepts: an HS256
// key shorter than the hash is guessable offline from one token.
const MinSecretBytes = 32

// ErrWeakSecret is returned by New for an AuthSecret under MinSecretBytes.
var ErrWeakSecret = errors.New("server: auth secret too short")

// New returns a ready Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	cfg = cfg.withDefaults()
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:          cfg,
		auth:         auth,
		agent:        crdt.NewAgentID(),
		ctx:          ctx,
		cancel:       cancel,
		sessions:     make(map[*session]bool),
		agents:       make(map[crdt.AgentID]*session),
		perIP:        make(map[string]int),
		rt:           make(map[string]*rtTransport),
		decodeLimits: protocol.DecodeLimits{MaxFrame: cfg.MaxFrame, MaxMessage: cfg.MaxMessage},
	}
	s.metrics = newMetrics(s)
	if auth != nil {
		s.metrics.reg.MustRegister(auth.metrics.collectors()...)
	}
	s.refusals = newRefusalLog()
	var events owner.Events
	if h := cfg.Hooks; cfg.Webhooks != nil || h.OnLoad != nil || h.OnChange != nil || h.OnDelete != nil {
		s.events = newDispatcher(s)
		events = s.events
	}
	s.reg = owner.NewRegistry(owner.Config{
		Logger: cfg.Logger, Store: cfg.ownerStore(), Metrics: s.metrics, Events: events, NewEngine: s.newEngine,
		IdleUnload: cfg.IdleUnload, CompactEntries: cfg.CompactEntries,
		PresenceInterval: cfg.PresenceInterval, PresenceTTL: cfg.PresenceTTL, PresenceLimits: cfg.PresenceLimits,
		HideReadOnlyCursors: cfg.HideReadOnlyCursors, ChangeLogEntries: cfg.ChangeLogEntries, ChangeLogBytes: cfg.ChangeLogBytes,
		MaxReplicaBytes: cfg.MaxReplicaBytes, MaxColdJoinBytes: 8 << 20, MessageRate: cfg.MessageRate, MessageBurst: cfg.MessageBurst,
		Versions: s.ownerVersions(), VersionQuiet: cfg.VersionQuiet, VersionEvery: cfg.VersionEvery,
	}, owner.RegistryLimits{MaxDocs: cfg.MaxLoadedDocs, MaxBytes: cfg.MaxReplicaBytes, EvictWait: 500 * time.Millisecond})
	if err := s.startNode(); err != nil {
		cancel()
		return nil, err
	}
	s.bodies = newBudget(cfg.MaxBodyBytes)
	s.syncs = newBudget(cfg.SyncBudget)
	s.startAuth()
	s.drains = newDrainPool(s.ctx, &s.wg)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pinger()
	}()
	if s.events != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.events.run(s.ctx)
		}()
	}
	if cfg.Webhooks != nil && cfg.Webhooks.Enabled() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			cfg.Webhooks.Run(s.ctx)
		}()
	}
	s.upgrader = websocket.Upgrader{
		// 0: gorilla keeps the reader the hijack hands it when larger than
		// 256 bytes, and corkHijacker hands it one of readBufferSize (not
		// the HTTP server's 4 KiB one; 1 KiB was a tenth of an idle
		// connection's heap): a frame's header and small frames are read
		// through it, a payload larger than it straight into the message.
		ReadBufferSize:    0,
		WriteBufferSize:   4096,
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: false, // gorilla's read limit counts compressed bytes
		CheckOrigin: func(r *http.Request) bool {
			if s.checkOrigin(r) {
				return true
			}
			s.refused(r, "origin", "origin", r.Header.Get("Origin"))
			return false
		},
	}
	return s, nil
}

// checkOrigin allows requests without an Origin header (native clients),
// the server's own origin (an origin whose host is the request's Host: the
// demo page, an app served by the same host), and the origins on the
// exact-match AllowedOrigins list.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.listedOrigin(origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// listedOrigin reports whether origin is on AllowedOrigins.
func (s *Server) listedOrigin(origin string) bool {
	return slices.Contains(s.cfg.AllowedOrigins, origin)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ip := s.clientIP(r)
	release, code := s.admit(ip)
	if release == nil {
		s.refused(r, "limits", "code", int(code))
		w.Header().Set("Retry-After", "10")
		http.Error(w, code.String(), httpStatus(code))
		return
	}
	// Credentials on the upgrade request (a token in the Authorization
	// header or the token query parameter; with an auth callback also any
	// Authorization header or the auth cookie) are checked before
	// upgrading; otherwise the Hello must carry them.
	var claims *Claims
	if in := s.httpAuthInput(r, ""); s.auth.offered(in) {
		c, err := s.auth.authenticate(r.Context(), in, time.Now())
		if err != nil {
			release()
			s.refused(r, "auth", "err", err.Error())
			code := authCode(err)
			if code == protocol.CodeOverloaded {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, code.String(), httpStatus(code))
			return
		}
		claims = c
	}
	conn, t, err := s.upgradeWS(w, r)
	if err != nil {
		release()
		return // the upgrader has answered
	}
	sess := newSession(s, t, newSessionID())
	sess.claims, sess.remote, sess.userAgent = claims, ip, r.UserAgent()
	s.cfg.Logger.Debug("session opened", "session", sess.id, "remote", ip, "transport", "websocket")
	s.runSession(sess, release, func() { sess.wsReadLoop(s.ctx, conn) })
}

// newSessionID is a random session id.
func newSessionID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runSession registers sess (pings, shutdown) and runs its read loop on a
// goroutine of the server's; release gives back its connection slot when
// the loop ends. A server shutting down closes it at once.
func (s *Server) runSession(sess *session, release func(), loop func()) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		sess.t.closeWith(protocol.CodeGoingAway, "server shutting down")
		sess.markFlushed()
		sess.t.finish(sess.flushed)
		return
	}
	s.sessions[sess] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer release()
		defer func() {
			sess.close(protocol.CodeGoingAway, "closed")
			sess.t.finish(sess.flushed)
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
		defer sess.recoverPanic()
		loop()
	}()
}

// admit reserves a slot for a long-lived connection from ip (a WebSocket
// or fallback session, an SSE stream, a long poll) under MaxConns and
// MaxConnsPerIP. It returns the slot's release function, or nil and the
// refusal's code.
func (s *Server) admit(ip string) (release func(), code protocol.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, protocol.CodeGoingAway
	case s.conns >= s.cfg.MaxConns:
		s.metrics.CapacityRefusal()
		return nil, protocol.CodeOverloaded
	case s.perIP[ip] >= s.cfg.MaxConnsPerIP:
		return nil, protocol.CodeTooManyRequests
	}
	s.conns++
	s.perIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.conns--
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
		})
	}, 0
}

// pinger pings every session once per PingInterval (one goroutine for the
// whole server instead of a ticker per connection). A session that does not
// answer is closed by its read deadline.
//
// The sessions are pinged in pingSlots groups spread over the interval
// (a session's group is fixed by its id), not all at once: each ping
// starts the session's writer goroutine for a moment, and 10,000 of them at
// once took 17 MB of stacks that stayed until the next garbage collection
// (BENCHMARKS.md, Idle connections).
func (s *Server) pinger() {
	t := time.NewTicker(max(s.cfg.PingInterval/pingSlots, time.Millisecond))
	defer t.Stop()
	var batch []*session
	slot := uint32(0)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		slot = (slot + 1) % pingSlots
		s.mu.Lock()
		batch = batch[:0]
		for sess := range s.sessions {
			if pingSlot(sess.id) == slot && sess.hailed.Load() {
				batch = append(batch, sess)
			}
		}
		s.mu.Unlock()
		for _, sess := range batch {
			sess.ping()
		}
		clear(batch) // no session kept alive by the pinger
	}
}

// pingSlots is how many groups the pinger spreads the sessions over.
const pingSlots = 16

// pingSlot is the session's group (FNV-1a of its id).
func pingSlot(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h % pingSlots
}

// clientIP is the client's address, for per-address limits and logs: the
// connection's peer, or, when that peer is one of Config.TrustedProxies,
// the nearest address in X-Forwarded-For that is not a trusted proxy
// (proxies append the address they received from; a client can forge the
// entries to the left, never the ones its proxies add).
func (s *Server) clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.trusted(hop) {
			return hop
		}
		peer = hop
	}
	return peer
}

// trusted reports whether addr is one of Config.TrustedProxies.
func (s *Server) trusted(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// claimAgent gives agent a to session sess unless another live session has it.
func (s *Server) claimAgent(a crdt.AgentID, sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.agents[a]; ok && other != sess {
		return false
	}
	s.agents[a] = sess
	return true
}

func (s *Server) releaseAgent(a crdt.AgentID, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agents[a] == sess {
		delete(s.agents, a)
	}
}

// Shutdown stops accepting sessions, closes every session with "going away"
// and a jittered retry hint, lets every owner flush its commits, and waits
// for all goroutines, or for ctx. The caller closes the store afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	if c := s.cfg.Cluster; c != nil {
		// Leave first: the other nodes stop placing documents here, and
		// the subscribers they forward here wait for the leases this node
		// releases below (hand-over at once, not after the TTL).
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second) // without a quorum the rest must still run
		err := c.Members.Leave(lctx)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("cluster: leave", "err", err)
		}
	}
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		// Spread reconnects: each client gets its own retry hint.
		retry := time.Duration(rand.Int64N(int64(s.cfg.ShutdownRetry)))
		if sess.door == "" { // Yjs doors have no error frame: the close code says it
			sess.enqueue(protocol.Encode(&protocol.Error{Code: protocol.CodeGoingAway, Message: "server restarting",
				RetryAfterMs: int(retry / time.Millisecond)}))
		}
		sess.close(protocol.CodeGoingAway, "server shutting down")
	}
	if err := s.reg.Shutdown(ctx); err != nil {
		return err
	}
	if err := s.stopNode(ctx); err != nil {
		return err
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
