package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// init drops what net/http/pprof's init registered on the process-wide
// default mux: nats-server (the embedded node of --nats-embedded) imports
// it. collabd never serves http.DefaultServeMux (its profiles are on
// --metrics-addr's own mux, debug.go), and after this nothing linked in
// can expose them by serving the default mux by accident
// (TestDefaultServeMuxHasNoPprof). Package main's init runs after every
// imported package's.
func init() { http.DefaultServeMux = new(http.ServeMux) }

// clusterFlags are serve's cluster mode flags (docs/CLUSTER.md).
type clusterFlags struct {
	urls          string            // --nats: an external NATS cluster's client URLs
	embedded      bool              // --nats-embedded: run a NATS node in this process
	listen        string            // --nats-listen: the embedded node's client address
	clusterListen string            // --nats-cluster-listen: its route address
	advertise     string            // --nats-cluster-advertise: the route address it announces
	routes        []string          // --nats-routes: the other nodes' route URLs
	nodeID        string            // --node-id
	replicas      int               // --nats-replicas
	leaseTTL      time.Duration     // --lease-ttl
	handoverAfter time.Duration     // --handover-after (0: the lease TTL)
	handoverRate  float64           // --handover-rate: documents handed over per second
	outboxBytes   int               // --cluster-outbox-bytes
	sync          string            // --nats-sync: "always" or an interval (the embedded node)
	data          string            // --data: the embedded node stores JetStream under data/nats
	sec           natsSecurity      // credentials and TLS (natsauth.go)
	retention     storage.Retention // --version-retention, applied to the cluster's history
}

// on reports whether cluster mode is asked for.
func (f clusterFlags) on() bool { return f.urls != "" || f.embedded }

// check validates the flags (exit code 2 on error).
func (f clusterFlags) check() error {
	if err := f.sec.check(f); err != nil {
		return err
	}
	switch {
	case !f.on():
		if f.listen != "" || f.clusterListen != "" || f.advertise != "" || len(f.routes) > 0 {
			return errors.New("--nats-listen, --nats-cluster-listen, --nats-cluster-advertise and --nats-routes need --nats-embedded")
		}
		return nil
	case f.urls != "" && f.embedded:
		return errors.New("--nats and --nats-embedded exclude each other")
	case f.nodeID == "":
		return errors.New("cluster mode needs --node-id (letters, digits, '-', '_'; unique in the cluster)")
	case f.replicas < 1 || f.replicas > 5:
		return fmt.Errorf("--nats-replicas %d: 1 to 5", f.replicas)
	case f.leaseTTL < time.Second:
		return fmt.Errorf("--lease-ttl %v: at least 1s", f.leaseTTL)
	case f.handoverAfter < 0:
		return fmt.Errorf("--handover-after %v: not negative", f.handoverAfter)
	case !(f.handoverRate > 0 && f.handoverRate <= 100000):
		return fmt.Errorf("--handover-rate %v: more than 0, at most 100000 a second", f.handoverRate)
	case f.outboxBytes < 64<<10:
		return fmt.Errorf("--cluster-outbox-bytes %d: at least 65536", f.outboxBytes)
	case f.sync != "always" && !validInterval(f.sync):
		return fmt.Errorf("--nats-sync %q: \"always\" or an interval such as 1s or 2m", f.sync)
	case !f.embedded && (f.listen != "" || f.clusterListen != "" || f.advertise != "" || len(f.routes) > 0):
		return errors.New("--nats-listen, --nats-cluster-listen, --nats-cluster-advertise and --nats-routes need --nats-embedded")
	case f.advertise != "" && f.clusterListen == "":
		return errors.New("--nats-cluster-advertise needs --nats-cluster-listen")
	}
	return nil
}

// clusterParts is what cluster mode runs on, closed in reverse by close.
type clusterParts struct {
	flags    clusterFlags
	embedded *natsembed.Server
	nc       *nats.Conn
	logs     *jetstream.Store
	leases   *cluster.Leases
	members  *cluster.Members
}

// startCluster starts the embedded NATS node (if asked), connects, and
// opens the replicated store, the leases and the membership. It waits for
// JetStream (a cluster's first nodes wait for a quorum) until ctx ends.
func startCluster(ctx context.Context, f clusterFlags, addr string, log *slog.Logger) (*clusterParts, error) {
	p := &clusterParts{flags: f}
	fail := func(err error) (*clusterParts, error) {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.close(cctx, log)
		return nil, err
	}
	urls := f.urls
	opts := []nats.Option{nats.Name("collabd " + f.nodeID), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true)}
	if f.embedded {
		cfg := natsembed.Config{Name: f.nodeID, StoreDir: filepath.Join(f.data, "nats"),
			Listen: f.listen, ClusterListen: f.clusterListen, ClusterAdvertise: f.advertise, Routes: f.routes, Logger: log.With("component", "nats")}
		if f.sync == "always" {
			cfg.SyncAlways = true
		} else {
			cfg.SyncInterval, _ = time.ParseDuration(f.sync) // checked
		}
		own, inProcess, err := f.sec.embedded(&cfg)
		if err != nil {
			return fail(err)
		}
		if p.embedded, err = natsembed.Start(cfg); err != nil {
			return fail(err)
		}
		if f.listen != "" && !loopback(f.listen) && cfg.TLS == nil {
			log.Warn("cluster: the embedded NATS client port is not on loopback and has no TLS: its credentials cross the network in clear (set --nats-tls-cert/--nats-tls-key)", "nats_listen", f.listen)
		}
		urls = p.embedded.ClientURL()
		opts = append(opts, own...)
		if inProcess {
			// A tls:// URL would make the client ask for TLS over the
			// in-process pipe.
			urls = "nats://" + strings.TrimPrefix(urls, "tls://")
			opts = append(opts, p.embedded.InProcess())
		}
	} else {
		sec, err := f.sec.clientOptions()
		if err != nil {
			return fail(err)
		}
		opts = append(opts, sec...)
	}
	var err error
	p.nc, err = nats.Connect(urls, opts...)
	if err != nil {
		return fail(fmt.Errorf("nats: %w", err))
	}
	log.Info("cluster: waiting for JetStream", "nats", redactURLs(urls), "node", f.nodeID, "replicas", f.replicas,
		"nats_tls", f.sec.tlsCA != "" || f.sec.tlsCert != "", "nats_route_secret", f.sec.clusterSecret != "")
	if p.logs, err = jetstream.New(ctx, p.nc, jetstream.Options{Replicas: f.replicas, PruneVersions: pruneByRetention(f.retention)}); err != nil {
		return fail(err)
	}
	if p.leases, err = cluster.NewLeases(ctx, p.nc, cluster.LeaseOptions{Node: f.nodeID, TTL: f.leaseTTL, Replicas: f.replicas, Logger: log}); err != nil {
		return fail(err)
	}
	mopts := cluster.MemberOptions{Node: f.nodeID, TTL: f.leaseTTL, Replicas: f.replicas, Logger: log, Info: []byte(addr)}
	if !f.embedded {
		// A NATS server cut off from its cluster keeps this connection up
		// and answers nothing of JetStream: move to another of the
		// servers (--nats lists them) once the heartbeats have failed for
		// a TTL. The embedded node's connection is in-process, to its own
		// server: nowhere else to go.
		nc := p.nc
		mopts.Stuck = func() {
			if err := nc.ForceReconnect(); err != nil {
				log.Warn("cluster: reconnecting to another NATS server failed", "err", err)
			}
		}
	}
	if p.members, err = cluster.Join(ctx, p.nc, mopts); err != nil {
		return fail(err)
	}
	return p, nil
}

// config is the server's view of the parts.
func (p *clusterParts) config() *server.ClusterConfig {
	if p == nil {
		return nil
	}
	return &server.ClusterConfig{Conn: p.nc, Leases: p.leases, Members: p.members, Logs: p.logs,
		HandoverAfter: p.flags.handoverAfter, HandoverRate: p.flags.handoverRate, OutboxBytes: p.flags.outboxBytes}
}

// close releases what is left (after the server's Shutdown, which left the
// membership and released the documents' leases), drains the connection
// and stops the embedded node.
func (p *clusterParts) close(ctx context.Context, log *slog.Logger) {
	if p == nil {
		return
	}
	if p.leases != nil {
		if err := p.leases.Close(ctx); err != nil {
			log.Warn("cluster: leases not released (they expire)", "err", err)
		}
	}
	if p.members != nil {
		_ = p.members.Leave(ctx) // the server left already; a second Leave does nothing
	}
	if p.logs != nil {
		if err := p.logs.Close(ctx); err != nil {
			log.Warn("cluster: store close", "err", err)
		}
	}
	if p.nc != nil {
		p.nc.Close()
	}
	if p.embedded != nil {
		if err := p.embedded.Shutdown(ctx); err != nil {
			log.Warn("cluster: embedded NATS shutdown", "err", err)
		}
	}
}

// redactURLs hides the passwords of user:password@ URLs (a --nats URL may
// carry one) before they are logged.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User != nil:
			u.User = url.UserPassword("REDACTED", "") // a user, a password or a token
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// pruneByRetention is the replicated store's version pruning under r
// (nil: keep everything): the automatic versions r drops, as a single
// node's store prunes them. A version whose metadata does not decode is
// kept.
func pruneByRetention(r storage.Retention) func(time.Time, string, []jetstream.StoredVersion) []uint64 {
	if r == (storage.Retention{}) {
		return nil
	}
	return func(now time.Time, _ string, vs []jetstream.StoredVersion) []uint64 {
		times, auto := make([]time.Time, len(vs)), make([]bool, len(vs))
		for i, v := range vs {
			m, err := cluster.DecodeVersionMeta(v.Meta)
			times[i], auto[i] = m.At(v.Time), err == nil && !m.Named
		}
		var drop []uint64
		for _, i := range r.Drop(now, times, auto) {
			drop = append(drop, vs[i].Seq)
		}
		return drop
	}
}

// validInterval reports whether s is a positive duration.
func validInterval(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d > 0
}
