package server

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage/jetstream"
)

// ClusterConfig is cluster mode's machinery, built by the caller (collabd
// serve) and still the caller's to close after Shutdown: the NATS
// connection, this node's leases and membership, and the replicated
// document store.
type ClusterConfig struct {
	Conn    *nats.Conn
	Leases  *cluster.Leases
	Members *cluster.Members
	Logs    *jetstream.Store
	Prefix  string // the forwarding subjects' prefix ("" is "collabd")
	// HandoverAfter: a node that joins is handed the documents it wins
	// once it has been live this long (0: the lease TTL); HandoverRate
	// bounds those moves per second (0: 100). docs/CLUSTER.md "Joins and
	// failover".
	HandoverAfter time.Duration
	HandoverRate  float64
	// OutboxBytes bounds what an owner node queues for one subscriber
	// node; past it that node's subscribers are dropped and told to rejoin
	// (4008). 0 is 32 MiB.
	OutboxBytes int
}

// docRef is what a session, follower or request holds for a document: its
// owner, here (localRef) or, in cluster mode, wherever it runs
// (*cluster.Ref). Send reports false when the caller must stop.
type docRef interface {
	Send(ctx context.Context, m owner.Msg) bool
	Release()
	// Done is closed when the owner a request went to has exited (a
	// request to it will not be answered).
	Done() <-chan struct{}
}

var (
	_ docRef = localRef{}
	_ docRef = (*cluster.Ref)(nil)
)

// localRef is a single-node server's reference on an owner.
type localRef struct {
	*owner.Owner
	reg *owner.Registry
}

func (r localRef) Release() { r.reg.Release(r.Owner) }

// ownerStoreFor is the owners' store: bbolt, or in cluster mode the
// replicated log under this node's leases.
func (cfg Config) ownerStore() owner.Store {
	if c := cfg.Cluster; c != nil {
		return cluster.NewStore(c.Logs, c.Leases)
	}
	return ownerStore{cfg.Store}
}

// startNode starts cluster mode's routing over the registry.
func (s *Server) startNode() error {
	c := s.cfg.Cluster
	if c == nil {
		return nil
	}
	n, err := cluster.NewNode(cluster.NodeConfig{
		Conn: c.Conn, Leases: c.Leases, Members: c.Members, Logs: c.Logs, Registry: s.reg, Prefix: c.Prefix,
		IdleUnload: s.cfg.IdleUnload, DecodeLimits: s.decodeLimits, Logger: s.cfg.Logger,
		NewEngine: s.newEngine, MaxBodyBytes: s.cfg.MaxBodyBytes,
		HandoverAfter: c.HandoverAfter, HandoverRate: c.HandoverRate, OutboxBytes: c.OutboxBytes,
		Admit: cluster.AdmitLimits{MaxOps: s.cfg.MaxOpsPerBatch, Rate: s.cfg.OpRate, Burst: s.cfg.OpBurst},
	})
	if err != nil {
		return err
	}
	s.node = n
	stat := func(name, help string, f func(cluster.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(n.Stats()) })
	}
	s.metrics.reg.MustRegister(
		stat("collabd_cluster_owned_documents", "Documents this node owns (holds the lease of).", func(st cluster.Stats) float64 { return float64(st.Owned) }),
		stat("collabd_cluster_forwarded_in", "Subscribers of other nodes served by this node's owners.", func(st cluster.Stats) float64 { return float64(st.ForwardedIn) }),
		stat("collabd_cluster_forwarded_out", "Subscribers on this node whose document's owner is another node.", func(st cluster.Stats) float64 { return float64(st.Routed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_lease_losses_total",
			Help: "Documents given up because their lease was lost (taken over after a pause or partition)."},
			func() float64 { return float64(n.Stats().LeaseLosses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_handovers_total",
			Help: "Documents given up to a node that joined (placement gives them to it)."},
			func() float64 { return float64(n.Stats().Handovers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_dead_lease_waits_total",
			Help: "Waits for the lease of a document whose node left (one per document at a time, however many subscribers rejoin)."},
			func() float64 { return float64(n.Stats().LeaseWaits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_outbox_drops_total",
			Help: "Times the subscribers of another node were dropped and told to rejoin: this node's outbox to it was full (or a publish failed)."},
			func() float64 { return float64(n.Stats().OutboxDrops) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_fanout_full_total",
			Help: "Updates this node's owners published in full to another node (once per node and update)."},
			func() float64 { return float64(n.Stats().FanFull) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_fanout_refs_total",
			Help: "Updates this node's owners published to another node's further sessions as a reference to the one sent in full."},
			func() float64 { return float64(n.Stats().FanRefs) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_cluster_part_sequences_total",
			Help: "Forwarded requests, answers and session messages larger than one NATS message that this node sent in parts."},
			func() float64 { return float64(n.Stats().PartsSent) }),
	)
	return nil
}

// stopNode gives up this node's documents (their owners have exited) and
// releases their leases at once.
func (s *Server) stopNode(ctx context.Context) error {
	if s.node == nil {
		return nil
	}
	return s.node.Close(ctx)
}

// Agents are the agents the session claimed (its Hello): a forwarded
// session's updates are checked against them on the owner's node.
func (s *session) Agents() []uint64 {
	out := make([]uint64, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, uint64(a))
	}
	return out
}

var _ cluster.Claimer = (*session)(nil)

// clusterReady reports whether cluster mode can serve: this node is among
// the live members and JetStream answers (the lease bucket).
func (s *Server) clusterReady(ctx context.Context) error {
	if s.node == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.node.Ready(ctx)
}
