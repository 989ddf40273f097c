package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/collabd/collabd/internal/demo"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/webhook"
	"github.com/collabd/collabd/storage"
)

// runServe implements "collabd serve". Every flag can also come from a
// COLLABD_* environment variable (flag name upper-cased, dashes as
// underscores); a flag on the command line wins.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address`")
	data := fs.String("data", "./data", "data `directory` (holds collabd.db)")
	origins := fs.String("allowed-origins", "", "comma-separated exact Origin allowlist for browsers (empty: same host only)")
	hosts := fs.String("allowed-hosts", "", "comma-separated Host names the server answers to (development mode: loopback names always; auth mode: empty allows any)")
	secret := fs.String("auth-secret", "", "HMAC `secret` for tokens (empty: development mode, no authentication)")
	publicKey := fs.String("auth-public-key", "", "PEM `file` of public keys (RSA, EC P-256, Ed25519) verifying RS256/ES256/EdDSA tokens")
	jwksURL := fs.String("auth-jwks-url", "", "JWKS `URL` (https) of keys verifying RS256/ES256/EdDSA tokens; refreshed every 10m and on an unknown kid")
	issuer := fs.String("auth-issuer", "", "required token issuer (iss), if set")
	audience := fs.String("auth-audience", "", "required token audience (one of aud), if set")
	authHook := fs.String("auth-webhook", "", "auth callback `URL`: credentials that are not collabd tokens are POSTed there (docs/INTEGRATION.md); needs --webhook-secret")
	authCookie := fs.String("auth-cookie", "", "cookie `name` whose value is sent to the auth callback")
	hookSecret := fs.String("webhook-secret", "", "HMAC `secret` (at least 32 bytes) signing the requests collabd sends to the app: webhooks and the auth callback (Collabd-Signature)")
	insecure := fs.Bool("insecure-no-auth", false, "allow a non-loopback address without authentication")
	maxFrame := fs.Int("max-frame", 0, "largest inbound frame in bytes (0: 1 MiB)")
	syncBudget := fs.Int64("sync-budget", 0, "bytes of document syncs that may wait in connections' queues beyond --queue-bytes, all connections together: lets fresh clients load documents larger than their queue (0: 256 MiB)")
	maxYjsFrame := fs.Int("max-yjs-frame", 0, "largest inbound frame of the Yjs doors in bytes: a Yjs client's first sync carries its offline history (0: 16 MiB)")
	maxDocs := fs.Int("max-docs-per-conn", 0, "documents joined at once per connection (0: 64)")
	queue := fs.Int("queue-bytes", 0, "outbound bytes queued per connection before it is closed as slow (0: 4 MiB)")
	maxConns := fs.Int("max-conns", 0, "connections in total (0: 10000)")
	maxPerIP := fs.Int("max-conns-per-ip", 0, "connections from one address (0: 256)")
	proxies := fs.String("trusted-proxies", "", "comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For gives the client's address (per-address limits and logs)")
	opRate := fs.Float64("op-rate", 0, "ops (code points inserted or deleted) per second one connection may send (0: 2000)")
	opBurst := fs.Int("op-burst", 0, "op rate bucket size (0: 100000)")
	maxLoaded := fs.Int("max-loaded-docs", 0, "documents loaded in memory at once; idle ones are unloaded first (0: 20000)")
	maxReplica := fs.Int64("max-replica-bytes", 0, "estimated memory of the loaded documents' replicas (0: 2 GiB)")
	joinRate := fs.Float64("join-rate", 0, "documents one connection may join per second (0: 20; burst: --max-docs-per-conn)")
	bodyTimeout := fs.Duration("body-timeout", 0, "time a client has to send a request body (0: 30s)")
	maxDocBytes := fs.Int("max-doc-bytes", 0, "largest document: bytes of its uncompressed snapshot body (0: 128 MiB)")
	versionQuiet := fs.Duration("version-quiet", 0, "take a document's automatic version after this long without a change (0: 60s; negative: never)")
	versionEvery := fs.Int("version-every", 0, "take a document's automatic version every N changes (0: 1000; negative: never)")
	versionRetention := fs.String("version-retention", "all:7d,daily:90d", "automatic versions kept: every one for all:D, then one a day until daily:D, then one a week; or forever (named versions are always kept)")
	noVersions := fs.Bool("no-versions", false, "turn version history off (no versions taken; the history endpoints answer 404)")
	var hooks listFlag
	fs.Var(&hooks, "webhook", "POST signed document events to this `URL` (repeatable, or comma-separated; needs --webhook-secret)")
	hookEvents := fs.String("webhook-events", "", "comma-separated event types the webhooks receive (doc.created, doc.changed, doc.deleted; doc.* for all; empty: all)")
	hookText := fs.Bool("webhook-text", false, "doc.changed carries the text of every root")
	debounce := fs.Duration("event-debounce", 0, "how long changes to a document gather before one doc.changed (0: 2s)")
	corsCreds := fs.Bool("cors-credentials", false, "allow credentials (cookies) in CORS answers to --allowed-origins (tokens in Authorization need none)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` (PEM; with --tls-key: HTTPS, wss:// and HTTP/2; reloaded on SIGHUP)")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and Go's profiles (/debug/pprof/) on this `address` instead of the public one (empty: /metrics on the public address, no profiles)")
	debugAddr := fs.String("debug-addr", "", "deprecated: the same as --metrics-addr")
	var cf clusterFlags
	fs.StringVar(&cf.urls, "nats", "", "cluster mode on an external NATS cluster with JetStream: its client `URLs`, comma-separated (docs/CLUSTER.md)")
	fs.BoolVar(&cf.embedded, "nats-embedded", false, "cluster mode with a NATS node embedded in this process (three collabd processes form the whole cluster)")
	fs.StringVar(&cf.listen, "nats-listen", "", "the embedded NATS node's client `address` (empty: loopback, a random port; only this process needs it)")
	fs.StringVar(&cf.clusterListen, "nats-cluster-listen", "", "the embedded NATS node's route `address`, e.g. :6222 (empty: a single node)")
	fs.StringVar(&cf.advertise, "nats-cluster-advertise", "", "the route `host:port` the embedded NATS node announces to the others, who dial it when they learn of this node from a third (empty: --nats-cluster-listen; set it behind NAT or in containers)")
	var routes listFlag
	fs.Var(&routes, "nats-routes", "the other embedded nodes' route `URLs`, e.g. nats://n2:6222,nats://n3:6222")
	fs.StringVar(&cf.nodeID, "node-id", "", "this node's `id` in the cluster (letters, digits, '-', '_'; unique)")
	fs.IntVar(&cf.replicas, "nats-replicas", 3, "replicas of the document logs, snapshots, leases and membership (1 to 5; at most the NATS nodes)")
	cf.sec.register(fs)
	fs.DurationVar(&cf.leaseTTL, "lease-ttl", 5*time.Second, "how long a document's lease (and a node's membership) outlives its last renewal: a crashed node's documents move after about this long")
	fs.DurationVar(&cf.handoverAfter, "handover-after", 0, "a node that joins is handed the documents it wins once it has been live this `long` without a break (0: the lease TTL)")
	fs.Float64Var(&cf.handoverRate, "handover-rate", 100, "documents a node hands over to a joining node per `second` (their clients rejoin: spread out)")
	fs.StringVar(&cf.sync, "nats-sync", "always", "when the embedded NATS node fsyncs JetStream's files: \"always\" (before every ack, like single-node bbolt) or an `interval` such as 2m (acks then mean \"in memory on a quorum\")")
	fs.IntVar(&cf.outboxBytes, "cluster-outbox-bytes", 32<<20, "`bytes` an owner node queues for one other node; past it that node's clients of its documents are told to rejoin (4008)")
	setUsageWithEnv(fs, "collabd serve [flags]\n\nRuns the collaboration server: WebSocket /v1/ws, the HTTP API, the demo page at /")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 2
	}
	warnUnknownEnv(stderr, "serve", fs, os.Environ())
	cf.routes, cf.data = routes, *data
	if err := cf.check(); err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "collabd serve: bad -log-level: %v\n", err)
		return 2
	}
	if *secret != "" {
		if err := checkSecret(*secret); err != nil {
			fmt.Fprintf(stderr, "collabd serve: %v\n", err)
			return 2
		}
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	default:
		fmt.Fprintf(stderr, "collabd serve: bad -log-format %q: text or json\n", *logFormat)
		return 2
	}
	if *metricsAddr == "" {
		*metricsAddr = *debugAddr
	}
	var certs *certReloader
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "collabd serve: --tls-cert and --tls-key go together")
		return 2
	}
	if *tlsCert != "" {
		var err error
		if certs, err = newCertReloader(*tlsCert, *tlsKey); err != nil {
			fmt.Fprintf(stderr, "collabd serve: %v\n", err)
			return 1
		}
	}
	authOn := *secret != "" || *publicKey != "" || *jwksURL != "" || *authHook != ""
	if !authOn && !*insecure && !loopback(*addr) {
		fmt.Fprintf(stderr, "collabd serve: %s is not a loopback address and authentication is not configured; "+
			"pass --insecure-no-auth to serve it anyway\n", *addr)
		return 2
	}
	if err := os.MkdirAll(*data, 0o750); err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	// storage.Open checks the file against its own meta pages first: a
	// truncated or corrupt collabd.db is refused with a message, not mapped.
	retention, err := parseRetention(*versionRetention)
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 2
	}
	store, err := storage.Open(filepath.Join(*data, "collabd.db"), storage.Options{Logger: log, VersionRetention: retention})
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrFormat) {
			fmt.Fprintln(stderr, "collabd serve: the store is damaged: restore a backup (collabd restore --in BACKUP --data DIR --force)")
		}
		return 1
	}
	defer store.Close()
	allowed := splitList(*origins)
	var trusted []netip.Prefix
	for _, p := range splitList(*proxies) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				fmt.Fprintf(stderr, "collabd serve: --trusted-proxies: %q is neither an address nor a CIDR range\n", p)
				return 2
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		trusted = append(trusted, pfx)
	}
	var pubKeys []crypto.PublicKey
	if *publicKey != "" {
		pem, err := os.ReadFile(*publicKey)
		if err == nil {
			pubKeys, err = server.ParsePublicKeys(pem)
		}
		if err != nil {
			fmt.Fprintf(stderr, "collabd serve: --auth-public-key: %v\n", err)
			return 2
		}
	}
	if !authOn {
		log.Warn("development mode: no --auth-secret, --auth-public-key, --auth-jwks-url or --auth-webhook; every connection may read and write every document")
	}
	var outbox *webhook.Outbox
	if len(hooks) > 0 {
		if len(*hookSecret) < MinSecretBytes {
			fmt.Fprintf(stderr, "collabd serve: --webhook needs --webhook-secret of at least %d random bytes "+
				"(head -c 32 /dev/urandom | base64): receivers check every request's signature with it\n", MinSecretBytes)
			return 2
		}
		var eps []webhook.Endpoint
		for _, u := range hooks {
			eps = append(eps, webhook.Endpoint{URL: u, Events: splitList(*hookEvents), Secret: []byte(*hookSecret)})
		}
		if outbox, err = webhook.Open(filepath.Join(*data, "webhooks.db"), webhook.Options{Endpoints: eps, Logger: log}); err != nil {
			fmt.Fprintf(stderr, "collabd serve: %v\n", err)
			return 1
		}
		defer outbox.Close()
	}
	var parts *clusterParts
	cf.retention = retention
	if cf.on() {
		cctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		parts, err = startCluster(cctx, cf, *addr, log)
		stop()
		if err != nil {
			fmt.Fprintf(stderr, "collabd serve: cluster: %v\n", err)
			return 1
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			parts.close(ctx, log)
		}()
		log.Info("cluster mode", "node", cf.nodeID, "embedded_nats", cf.embedded, "replicas", cf.replicas, "lease_ttl", cf.leaseTTL)
	}
	srv, err := server.New(server.Config{Cluster: parts.config(), Webhooks: outbox, WebhookText: *hookText, EventDebounce: *debounce, Store: store, Logger: log, AllowedOrigins: allowed, AllowedHosts: splitList(*hosts),
		AuthSecret: []byte(*secret), MaxFrame: *maxFrame, MaxYjsFrame: *maxYjsFrame, SyncBudget: *syncBudget, MaxDocsPerConn: *maxDocs, QueueBytes: *queue, MaxConns: *maxConns,
		MaxConnsPerIP: *maxPerIP, OpRate: *opRate, OpBurst: *opBurst, MaxLoadedDocs: *maxLoaded, MaxReplicaBytes: *maxReplica,
		JoinRate: *joinRate, BodyTimeout: *bodyTimeout, CORSCredentials: *corsCreds, PrivateMetrics: *metricsAddr != "",
		TrustedProxies: trusted, AuthPublicKeys: pubKeys, AuthJWKSURL: *jwksURL, AuthIssuer: *issuer, AuthAudience: *audience,
		AuthWebhook: *authHook, AuthCookie: *authCookie, WebhookSecret: []byte(*hookSecret),
		MaxDocBytes: *maxDocBytes, VersionQuiet: *versionQuiet, VersionEvery: *versionEvery, DisableVersions: *noVersions})
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	// The demo page (internal/demo) at / and /demo/; everything else is the server's.
	root := http.NewServeMux()
	root.Handle("/", srv.Handler())
	root.Handle("GET /{$}", demo.Handler())
	root.Handle("GET /demo/", demo.Handler())
	hs := newHTTPServer(root, certs, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	if *metricsAddr != "" {
		ds, err := startDebug(*metricsAddr, srv.MetricsHandler(), log)
		if err != nil {
			fmt.Fprintf(stderr, "collabd serve: metrics listener: %v\n", err)
			return 1
		}
		defer ds.Close()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logStart(log, startInfo{addr: ln.Addr().String(), data: *data, auth: authOn, origins: allowed,
		hosts: splitList(*hosts), tls: certs != nil, metrics: *metricsAddr})
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	for running := true; running; {
		select {
		case err := <-errc:
			log.Error("serve", "err", err)
			return 1
		case <-hup:
			if certs == nil {
				log.Info("SIGHUP: no TLS certificate to reload")
			} else if err := certs.Reload(); err != nil {
				log.Error("SIGHUP: certificate not reloaded; the previous one stays", "err", err)
			} else {
				log.Info("SIGHUP: certificate reloaded", "cert", *tlsCert)
			}
		case <-ctx.Done():
			running = false
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// hs.Shutdown closes the listener at once, then waits for requests in
	// flight; SSE streams and long polls only end when srv.Shutdown cancels
	// them, and hijacked WebSockets are closed by srv.Shutdown: run both.
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		_ = hs.Shutdown(sctx)
	}()
	err = srv.Shutdown(sctx)
	<-httpDone
	if err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
	}
	return 0
}

// listFlag is a repeatable flag whose values may also be comma-separated
// (so one COLLABD_* variable can hold several).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

// startInfo is what the start line tells.
type startInfo struct {
	addr, data, metrics string
	auth, tls           bool
	origins, hosts      []string
}

// logStart logs the start line: the mode, who may connect, TLS, where the
// demo page is, the version.
func logStart(log *slog.Logger, si startInfo) {
	mode := "development (no authentication)"
	if si.auth {
		mode = "auth (tokens required)"
	}
	scheme, ws := "http", "ws"
	if si.tls {
		scheme, ws = "https", "wss"
	}
	origins := "same host only"
	if len(si.origins) > 0 {
		origins = "same host, " + strings.Join(si.origins, ", ")
	}
	attrs := []any{"version", versionString(), "mode", mode, "addr", si.addr, "tls", si.tls,
		"demo", scheme + "://" + si.addr + "/", "websocket", ws + "://" + si.addr + "/v1/ws",
		"allowed_origins", origins, "data", si.data}
	if len(si.hosts) > 0 {
		attrs = append(attrs, "allowed_hosts", strings.Join(si.hosts, ","))
	}
	if si.metrics != "" {
		attrs = append(attrs, "metrics", "http://"+si.metrics+"/metrics")
	}
	log.Info("collabd serving", attrs...)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// envDefaults sets every flag not given on the command line from its
// COLLABD_* environment variable.
func envDefaults(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		key := "COLLABD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
		}
	})
	return err
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
