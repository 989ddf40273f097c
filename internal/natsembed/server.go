package natsembed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures an embedded NATS server. Zero fields take the
// documented defaults.
type Config struct {
	// Name is the server's name, unique in the cluster (required when
	// clustered: JetStream's peers are named).
	Name string
	// StoreDir is JetStream's storage directory (required).
	StoreDir string
	// Listen is the client address, host:port; "" is 127.0.0.1 on a random
	// port (see ClientURL).
	Listen string
	// ClusterName names the cluster; "" is "collabd".
	ClusterName string
	// ClusterListen is the route address, host:port; "" runs a single
	// node (no routes). Port 0 picks a random port.
	ClusterListen string
	// ClusterAdvertise is the route address (host:port) this server
	// announces to the others, which they dial when they learn of it from
	// a third (nats-server's cluster advertise); "" is ClusterListen. Set
	// it when the listen address is not how the others reach this server
	// (0.0.0.0, a container, NAT).
	ClusterAdvertise string
	// Routes are the other nodes' route URLs (nats://host:port). A node's
	// own address may be listed: it is ignored.
	Routes []string
	// MaxStore caps JetStream's file storage in bytes; 0 is nats-server's
	// default (a share of the disk).
	MaxStore int64
	// MaxPayload caps one message in bytes; 0 is 8 MiB (nats-server's
	// default is 1 MiB, which a document update of a full 1 MiB frame,
	// grouped into a record, would not fit).
	MaxPayload int32
	// SyncAlways makes JetStream fsync every write before it acks it (a
	// quorum then has the record on disk, not only in the page cache).
	// Otherwise files are synced every SyncInterval (0: nats-server's
	// default, 2 minutes).
	SyncAlways   bool
	SyncInterval time.Duration
	// ReadyTimeout bounds the wait for the server to accept connections;
	// 0 is 10 s.
	ReadyTimeout time.Duration
	// Logger receives nats-server's log (notices at Info, warnings, errors);
	// nil discards it. Secrets (passwords, tokens) are never in it.
	Logger *slog.Logger

	// TLS, if set, is the client port's server-side TLS configuration
	// (its Certificates; ClientCAs with ClientAuth to require client
	// certificates): clients must then connect with TLS. Connections in
	// the process (InProcess) do not need it.
	TLS *tls.Config
	// ClusterTLS, if set, is the route port's TLS configuration, used both
	// ways: Certificates is this node's certificate, RootCAs verifies the
	// nodes it dials, ClientCAs (with ClientAuth
	// tls.RequireAndVerifyClientCert) the nodes that dial it. A node
	// without a certificate of the cluster's CA cannot join.
	ClusterTLS *tls.Config
	// ClusterSecret, if set, is the password every route connection must
	// present (the user is "collabd-route"; it is added to each of Routes).
	// A node without it cannot join.
	ClusterSecret string
	// Token, or User and Password, if set, is what a client must present
	// on the client port (in-process connections too). At most one of the
	// two.
	Token          string
	User, Password string
	// NoAdvertise keeps the cluster's other client URLs from this server's
	// clients (nats-server's cluster no_advertise): a client then
	// reconnects only to the URLs it was given. The chaos run's partition
	// needs it (its nodes reach NATS only through proxies it can cut).
	NoAdvertise bool
}

// routeUser is the user name of route connections under ClusterSecret.
const routeUser = "collabd-route"

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Errors.
var (
	ErrConfig   = errors.New("natsembed: invalid config")
	ErrNotReady = errors.New("natsembed: server not ready in time")
)

// Start starts a server and waits until it accepts connections (not until
// a clustered JetStream has elected its leaders: clients retry that).
func Start(cfg Config) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogAdapter{cfg.Logger}, false, false, false)
	}
	ns.Start()
	ready := cfg.ReadyTimeout
	if ready <= 0 {
		ready = 10 * time.Second
	}
	if !ns.ReadyForConnections(ready) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w (%s)", ErrNotReady, ready)
	}
	return &Server{ns: ns}, nil
}

func (cfg Config) options() (*server.Options, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("%w: StoreDir is required", ErrConfig)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // collabd owns the process's signals
		SyncAlways: cfg.SyncAlways,
		NoLog:      cfg.Logger == nil,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
	}
	switch {
	case cfg.Token != "" && (cfg.User != "" || cfg.Password != ""):
		return nil, fmt.Errorf("%w: Token excludes User and Password", ErrConfig)
	case (cfg.User == "") != (cfg.Password == ""):
		return nil, fmt.Errorf("%w: User and Password go together", ErrConfig)
	case cfg.ClusterListen == "" && (cfg.ClusterTLS != nil || cfg.ClusterSecret != ""):
		return nil, fmt.Errorf("%w: ClusterTLS and ClusterSecret need ClusterListen", ErrConfig)
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("%w: SyncInterval %v is negative", ErrConfig, cfg.SyncInterval)
	}
	opts.SyncInterval = cfg.SyncInterval
	opts.Authorization, opts.Username, opts.Password = cfg.Token, cfg.User, cfg.Password
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS.Clone()
		opts.TLS = true
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = 5
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	}
	opts.MaxPayload = cfg.MaxPayload
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 8 << 20
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: Listen: %w", ErrConfig, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.ClusterListen == "" {
		if len(cfg.Routes) > 0 {
			return nil, fmt.Errorf("%w: Routes need ClusterListen", ErrConfig)
		}
		return opts, nil
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: a clustered node needs a Name", ErrConfig)
	}
	host, port, err := splitHostPort(cfg.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("%w: ClusterListen: %w", ErrConfig, err)
	}
	opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port, NoAdvertise: cfg.NoAdvertise}
	if cfg.ClusterAdvertise != "" {
		if _, _, err := splitHostPort(cfg.ClusterAdvertise); err != nil {
			return nil, fmt.Errorf("%w: ClusterAdvertise: %w", ErrConfig, err)
		}
		opts.Cluster.Advertise = cfg.ClusterAdvertise
	}
	if opts.Cluster.Name == "" {
		opts.Cluster.Name = "collabd"
	}
	if cfg.ClusterSecret != "" {
		opts.Cluster.Username, opts.Cluster.Password = routeUser, cfg.ClusterSecret
	}
	if cfg.ClusterTLS != nil {
		opts.Cluster.TLSConfig = cfg.ClusterTLS.Clone()
		opts.Cluster.TLSTimeout = 5
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			// Not %q of r: a route URL may carry a password.
			return nil, fmt.Errorf("%w: a route is not a nats://host:port URL", ErrConfig)
		}
		if cfg.ClusterSecret != "" {
			u.User = url.UserPassword(routeUser, cfg.ClusterSecret)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
}

// splitHostPort parses host:port; port 0 means random.
func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterURL is the route URL other nodes list in their Routes ("" for a
// single node).
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// Routes is the number of route connections this node has (to the other
// nodes of its cluster).
func (s *Server) Routes() int { return s.ns.NumRoutes() }

// RoutedTo is whether this node has a route to the node named name.
func (s *Server) RoutedTo(name string) bool {
	rz, err := s.ns.Routez(nil)
	if err != nil {
		return false
	}
	for _, r := range rz.Routes {
		if r.RemoteName == name {
			return true
		}
	}
	return false
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// InProcess is a nats.Option that connects a client to this server without
// a socket.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// JetStreamReady reports whether JetStream is enabled and, when clustered,
// this node is current with the meta leader.
func (s *Server) JetStreamReady() bool {
	return s.ns.JetStreamEnabled() && (!s.ns.JetStreamIsClustered() || s.ns.JetStreamIsCurrent())
}

// Shutdown stops the server (JetStream flushes its stores) and returns once
// it has stopped, or ctx's error if ctx ends first (the server then goes on
// stopping in the background).
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slogAdapter is nats-server's Logger over slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) {
	a.l.Info(fmt.Sprintf(format, v...), "src", "nats")
}
func (a slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn(fmt.Sprintf(format, v...), "src", "nats")
}
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "src", "nats")
}
func (a slogAdapter) Errorf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "src", "nats")
}
func (a slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "src", "nats")
}
func (a slogAdapter) Tracef(format string, v ...any) {}
