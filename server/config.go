package server

import (
	"crypto"
	"log/slog"
	"net/netip"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/server/webhook"
	"github.com/collabd/collabd/storage"
)

// Config configures a Server. Store is required; every other zero field
// means the default written beside it.
type Config struct {
	Store  *storage.Store // where documents live (required; in cluster mode: versions, backups and listings stay node-local)
	Logger *slog.Logger   // nil: discard logs

	// Cluster, if set, runs the server as a node of a cluster (issue 15,
	// docs/CLUSTER.md): documents live in JetStream, each is owned by the
	// node holding its lease, and sessions on other nodes are forwarded.
	Cluster *ClusterConfig

	// AuthSecret verifies HS256 tokens (see Claims). With none of
	// AuthSecret, AuthPublicKeys, AuthJWKSURL and AuthWebhook set the
	// server is in development mode: no authentication, every session may
	// read and write every document. cmd/collabd refuses to serve a
	// non-loopback address in development mode unless told to.
	AuthSecret []byte

	// Asymmetric tokens (docs/AUTH.md): AuthPublicKeys verify RS256 (RSA,
	// 2048 to 8192 bits), ES256 (EC P-256) and EdDSA (Ed25519) tokens
	// whatever their kid (ParsePublicKeys reads them from PEM);
	// AuthJWKSURL is a JWK Set (https, or http on loopback) fetched by New
	// (which fails if that fetch fails), refreshed every JWKSRefresh
	// (default 10m) and when a token names an unknown kid, at most once per
	// JWKSMinRefresh (default 30s); each fetch is bounded by JWKSTimeout
	// (default 5s) and 1 MiB. Several of AuthSecret, AuthPublicKeys and
	// AuthJWKSURL may be set: a token verifies if a key for its algorithm
	// (and kid) verifies it. AuthIssuer and AuthAudience, when set, must
	// match the token's iss and one of its aud.
	AuthPublicKeys []crypto.PublicKey
	AuthJWKSURL    string
	AuthIssuer     string
	AuthAudience   string
	JWKSRefresh    time.Duration
	JWKSMinRefresh time.Duration
	JWKSTimeout    time.Duration

	// AuthWebhook is the application's auth callback (docs/INTEGRATION.md):
	// a request without a collabd token that verifies has its credential
	// (the Authorization header, the AuthCookie cookie, or the token it
	// offered) POSTed there, signed with WebhookSecret (Sign); the answer
	// becomes the session's Claims, cached by credential and document for
	// its ttl in an LRU of AuthCacheSize entries (default 10000). A timeout
	// (AuthWebhookTimeout, default 3s) or an application error denies with
	// the retryable CodeOverloaded. WebhookSecret (at least MinSecretBytes)
	// is required with AuthWebhook.
	AuthWebhook        string
	AuthCookie         string
	AuthWebhookTimeout time.Duration
	AuthCacheSize      int
	WebhookSecret      []byte

	// AllowedOrigins is the exact-match allowlist for the Origin header of
	// WebSocket upgrades and of every state-changing HTTP request (POST,
	// PUT, DELETE) ("https://app.example.com"), beside the server's own
	// origin (same host), which is always allowed; requests without an
	// Origin (native clients) are allowed. These origins also get CORS
	// headers, so their pages can use the HTTP API, SSE and the fallback.
	AllowedOrigins []string

	// Webhooks, when set, is the outbox the server's document events go to
	// (doc.created, doc.changed debounced per EventDebounce, doc.deleted);
	// the server runs its deliveries until Shutdown (the caller opens and
	// closes it, like Store). WebhookText adds the text of every root to
	// doc.changed.
	Webhooks    *webhook.Outbox
	WebhookText bool
	// Hooks are called on the server's event goroutine (see Hooks), each
	// with HookTimeout (default 5s). EventDebounce is how long changes to a
	// document gather before one OnChange and one doc.changed report them
	// (default 2s).
	Hooks         Hooks
	HookTimeout   time.Duration
	EventDebounce time.Duration

	// Version history (docs/HTTP.md, "Versions"). A document's automatic
	// version is taken after VersionQuiet without a change (default 60s) and
	// every VersionEvery changes (default 1000), whichever comes first, and
	// before it unloads, each only if it changed since its last version;
	// a negative value turns that trigger off. Which versions are kept is
	// the store's (storage.Options.VersionRetention). DisableVersions turns
	// history off: no versions are taken and the endpoints answer 404.
	VersionQuiet    time.Duration
	VersionEvery    int
	DisableVersions bool

	// PrivateMetrics keeps GET /metrics off Handler: serve MetricsHandler
	// on a listener of its own (collabd serve --metrics-addr).
	PrivateMetrics bool

	// CORSCredentials adds Access-Control-Allow-Credentials to the CORS
	// answers for AllowedOrigins (cookies and HTTP auth from those pages);
	// off by default: tokens go in the Authorization header.
	CORSCredentials bool

	// AllowedHosts lists the Host names (without port) the server answers
	// to; any other Host gets 421 (DNS rebinding defence). In development
	// mode loopback names and addresses (localhost, *.localhost, 127.0.0.0/8,
	// ::1) are always allowed and nothing else unless listed here; in auth
	// mode an empty list allows every Host.
	AllowedHosts []string

	MaxFrame int // bytes in one inbound frame (default 1 MiB)
	// MaxYjsFrame bounds one inbound frame of the Yjs doors (default 16
	// MiB): a Yjs client's first sync carries its whole offline history.
	MaxYjsFrame    int
	MaxDocsPerConn int // documents joined at once on one connection (default 64)
	MaxOpsPerBatch int // ops in one update (default 16384)
	MaxDocItems    int // code points, visible and deleted, per document (default 1<<24)
	MaxPending     int // ops waiting for dependencies per document (default 4096)
	QueueBytes     int // outbound bytes queued per connection before it is closed as slow (default 4 MiB)
	// SyncBudget is how many bytes of document syncs (what joining clients
	// lack) may wait in connections' queues beyond their QueueBytes, all
	// connections together (default 256 MiB): a fresh client can load a
	// document larger than its queue; past the budget it is closed as slow
	// (retryable) and loads it when it reconnects.
	SyncBudget    int64
	MaxConns      int // connections in total (default 10000)
	MaxConnsPerIP int // connections from one remote address (default 256)

	// TrustedProxies are the reverse proxies (addresses or CIDR ranges)
	// whose X-Forwarded-For the server believes: behind them, per-address
	// limits and logs use the client's address, not the proxy's. Empty:
	// the connection's peer is the client.
	TrustedProxies []netip.Prefix

	// The memory governor. At most MaxLoadedDocs documents are loaded, and
	// their estimated replica bytes stay under MaxReplicaBytes; loading one
	// more first unloads the least recently used documents nobody has open,
	// and when none can go, the join or request is refused with the
	// retryable CodeOverloaded (updates that would grow a document are
	// refused the same way while the replica total is over its cap).
	// Defaults: 20000 documents, 2 GiB (sized for a 24 GiB machine).
	// A connection may join JoinRate documents a second, burst JoinBurst
	// (default 20/s, burst MaxDocsPerConn); past it joins are refused with
	// CodeRateLimited.
	MaxLoadedDocs   int
	MaxReplicaBytes int64
	JoinRate        float64
	JoinBurst       int

	// Broadcast messages (ephemeral JSON to a document's other clients):
	// at most MaxMessage bytes (default 16 KiB), and a connection, or the
	// app over HTTP per document, may send MessageRate a second, burst
	// MessageBurst (default 20/s, burst 40).
	MaxMessage   int
	MessageRate  float64
	MessageBurst int

	// MaxBodyBytes bounds the request bodies being read at once, server
	// wide (edits, snapshot uploads, fallback frames); a request that does
	// not fit is refused with 503 CodeOverloaded before anything is read
	// (default 256 MiB). BodyTimeout is the time a client has to send a
	// whole request body (default 30s).
	MaxBodyBytes int64
	BodyTimeout  time.Duration

	// OpRate is the sustained rate of ops (code points inserted or deleted)
	// one connection may send per second, with OpBurst as the bucket size;
	// past it updates are refused with CodeRateLimited (default 2000/s,
	// burst 100000: a paste of a long document passes, a flood does not).
	OpRate  float64
	OpBurst int

	HelloTimeout   time.Duration // time to send hello after connecting (default 10s)
	PingInterval   time.Duration // keepalive Ping frame period (default 25s)
	PongTimeout    time.Duration // missing pong after a ping closes the connection (default 10s)
	WriteTimeout   time.Duration // one frame write (default 10s)
	IdleUnload     time.Duration // a document with no session is unloaded after this (default 30s)
	CompactEntries int           // log entries after the snapshot that trigger a compaction (default 1000)
	ShutdownRetry  time.Duration // upper bound of the jittered retry hint sent on shutdown (default 5s)

	// Presence (see presence/doc.go). Changes are flushed to the document's
	// sessions at most once per PresenceInterval (default 50ms); a peer
	// whose connection shows no life for PresenceTTL is removed (default
	// 30s; a closed connection or a leave removes it at once). A connection
	// may send PresenceRate presence-set frames a second, burst
	// PresenceBurst (default 60/s, burst 120); past that they are dropped
	// and the client is told once a second (CodeRateLimited).
	// HideReadOnlyCursors refuses cursors from read-only sessions (they are
	// still listed as peers); by default read-only sessions show theirs.
	// ChangeLogEntries and ChangeLogBytes bound the recent changes a loaded
	// document keeps for HTTP followers that resume (SSE Last-Event-ID,
	// long poll since=V); older resumes get a reset (default 10000, 4 MiB).
	ChangeLogEntries int
	ChangeLogBytes   int
	// MaxSnapshotBytes bounds a snapshot uploaded with PUT (default 64 MiB).
	MaxSnapshotBytes int
	// MaxDocBytes bounds a document's uncompressed snapshot body (its text,
	// history and metadata, crdt.Limits.MaxSnapshot): a write that would
	// pass it is refused (CodeDocTooLarge), and a compressed snapshot
	// claiming more is refused before it is inflated (default 128 MiB).
	MaxDocBytes int
	// SSEHeartbeat is the period of SSE comment heartbeats (default 15s).
	SSEHeartbeat time.Duration
	// FollowerQueue is how many events an HTTP follower may have waiting;
	// one that falls further behind is dropped and resumes (default 256).
	FollowerQueue int

	PresenceInterval    time.Duration
	PresenceTTL         time.Duration
	PresenceLimits      presence.Limits
	PresenceRate        float64
	PresenceBurst       int
	HideReadOnlyCursors bool
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFrame, 1<<20)
	def(&c.MaxYjsFrame, 16<<20)
	def(&c.MaxDocsPerConn, 64)
	def(&c.MaxOpsPerBatch, 1<<14)
	def(&c.MaxDocItems, 1<<24)
	def(&c.MaxPending, 4096)
	def(&c.QueueBytes, 4<<20)
	if c.SyncBudget <= 0 {
		c.SyncBudget = 256 << 20
	}
	def(&c.CompactEntries, 1000)
	if c.VersionQuiet == 0 {
		c.VersionQuiet = time.Minute
	}
	if c.VersionEvery == 0 {
		c.VersionEvery = 1000
	}
	def(&c.MaxConns, 10000)
	def(&c.MaxConnsPerIP, 256)
	def(&c.MaxLoadedDocs, 20000)
	if c.MaxReplicaBytes <= 0 {
		c.MaxReplicaBytes = 2 << 30
	}
	if c.JoinRate <= 0 {
		c.JoinRate = 20
	}
	def(&c.JoinBurst, c.MaxDocsPerConn)
	def(&c.MaxMessage, 16<<10)
	if c.MessageRate <= 0 {
		c.MessageRate = 20
	}
	def(&c.MessageBurst, 40)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 256 << 20
	}
	dur(&c.BodyTimeout, 30*time.Second)
	dur(&c.HookTimeout, 5*time.Second)
	dur(&c.EventDebounce, 2*time.Second)
	def(&c.OpBurst, 100000)
	if c.OpRate <= 0 {
		c.OpRate = 2000
	}
	dur(&c.JWKSRefresh, 10*time.Minute)
	dur(&c.JWKSMinRefresh, defaultJWKSGap)
	dur(&c.JWKSTimeout, 5*time.Second)
	dur(&c.AuthWebhookTimeout, 3*time.Second)
	def(&c.AuthCacheSize, 10000)
	dur(&c.HelloTimeout, 10*time.Second)
	dur(&c.PingInterval, 25*time.Second)
	dur(&c.PongTimeout, 10*time.Second)
	dur(&c.WriteTimeout, 10*time.Second)
	dur(&c.IdleUnload, 30*time.Second)
	dur(&c.ShutdownRetry, 5*time.Second)
	def(&c.ChangeLogEntries, 10000)
	def(&c.ChangeLogBytes, 4<<20)
	def(&c.FollowerQueue, 256)
	def(&c.MaxSnapshotBytes, 64<<20)
	def(&c.MaxDocBytes, 128<<20)
	dur(&c.SSEHeartbeat, 15*time.Second)
	dur(&c.PresenceInterval, 50*time.Millisecond)
	dur(&c.PresenceTTL, presence.DefaultTTL)
	def(&c.PresenceBurst, 120)
	if c.PresenceRate <= 0 {
		c.PresenceRate = 60
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
