package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/server/webhook"
	"github.com/collabd/collabd/storage"
)

// metrics are one Server's Prometheus metrics, in a registry of its own (no
// global default registry). Counters and histograms are updated by one-line
// calls at the place the event happens; gauges that the server already
// knows (connections, loaded documents, the store's counters) are read at
// scrape time. Every method is safe on a nil *metrics (a no-op), so a test
// may build an owner without a Server's metrics.
type metrics struct {
	reg *prometheus.Registry

	ops        prometheus.Counter
	updates    prometheus.Counter
	durable    prometheus.Histogram
	slow       prometheus.Counter
	presDrop   prometheus.Counter
	errors     *prometheus.CounterVec
	followers  prometheus.Gauge
	backups    prometheus.Counter
	backupFail prometheus.Counter
	panics     prometheus.Counter
	busy       prometheus.Counter
	refusals   *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_ops_applied_total",
			Help: "CRDT ops (code points inserted or deleted) applied from WebSocket updates.",
		}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_updates_applied_total",
			Help: "WebSocket update frames applied to a document.",
		}),
		durable: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "collabd_durable_ack_seconds",
			Help:    "Time from submitting an update to storage to its durable ack (group commit and fsync).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 14), // 0.25 ms .. 2 s
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_slow_closes_total",
			Help: "Connections closed because their outbound queue overflowed (code 4008 slow).",
		}),
		presDrop: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_presence_frames_dropped_total",
			Help: "Presence frames not queued to a session under backpressure (the session gets the full presence later).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collabd_errors_total",
			Help: "Error frames sent and connections closed, by protocol code name (docs/PROTOCOL.md).",
		}, []string{"code"}),
		followers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "collabd_http_followers",
			Help: "HTTP followers (SSE streams and long polls) registered with a document.",
		}),
		backups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_backups_total",
			Help: "Backups streamed by GET /v1/backup.",
		}),
		backupFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_backup_failures_total",
			Help: "Backups by GET /v1/backup that failed or were cut off.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_panics_recovered_total",
			Help: "Panics recovered in a document owner or a session (the document was unloaded or the connection closed; the process kept serving).",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collabd_refusals_total",
			Help: "Refused requests and connections, by reason (host, origin, auth, limits, capacity, rate, slow, bad input).",
		}, []string{"reason"}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_capacity_refusals_total",
			Help: "Document loads and writes refused because a memory cap was reached (code 4004 overloaded).",
		}),
	}
	replica := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "collabd_replica_bytes_estimated",
		Help: "Estimated memory of the loaded documents' replicas (capped by MaxReplicaBytes).",
	}, func() float64 { return float64(s.reg.Bytes()) })
	whStat := func(f func(webhook.Stats) uint64) func() float64 {
		return func() float64 {
			if s.cfg.Webhooks == nil {
				return 0
			}
			return float64(f(s.cfg.Webhooks.Stats()))
		}
	}
	webhooks := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_webhook_delivered_total",
			Help: "Webhook events delivered (a 2xx answer)."}, whStat(func(st webhook.Stats) uint64 { return st.Delivered })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_webhook_retries_total",
			Help: "Webhook delivery attempts that failed and will be retried."}, whStat(func(st webhook.Stats) uint64 { return st.Retried })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "collabd_webhook_dead_total",
			Help: "Webhook events that failed every attempt (dead letters: GET /v1/webhooks?state=dead)."}, whStat(func(st webhook.Stats) uint64 { return st.Dead })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "collabd_webhook_pending",
			Help: "Webhook records waiting for delivery in the outbox."}, func() float64 {
			if s.cfg.Webhooks == nil {
				return 0
			}
			p, _ := s.cfg.Webhooks.Counts()
			return float64(p)
		}),
	}
	connections := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "collabd_connections",
		Help: "Open WebSocket connections.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.sessions))
	})
	byDoor := doorCollector{s: s, desc: prometheus.NewDesc("collabd_door_connections",
		"Open WebSocket connections by door: native (/v1/ws), y-websocket (/v1/yjs), hocuspocus (/v1/hocuspocus).", []string{"door"}, nil)}
	loaded := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "collabd_documents_loaded",
		Help: "Documents loaded in memory (one owner each; see collabd_documents_sleeping).",
	}, func() float64 {
		return float64(s.reg.Loaded())
	})
	sleeping := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "collabd_documents_sleeping",
		Help: "Loaded documents whose owner sleeps: quiet, no goroutine until a message or its presence/version alarm wakes it.",
	}, func() float64 {
		return float64(s.reg.Sleeping())
	})
	m.reg.MustRegister(m.ops, m.updates, m.durable, m.slow, m.presDrop, m.errors, m.followers,
		m.backups, m.backupFail, m.panics, m.busy, m.refusals, replica, connections, byDoor, loaded, sleeping, storeCollector{store: s.cfg.Store},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(webhooks...)
	return m
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var _ owner.Metrics = (*metrics)(nil)

// Applied counts one applied update of n ops.
func (m *metrics) Applied(n uint64) {
	if m == nil {
		return
	}
	m.updates.Inc()
	m.ops.Add(float64(n))
}

// DurableAck observes the latency of a durable ack for an update submitted
// at submitted (zero: not measured).
func (m *metrics) DurableAck(submitted time.Time) {
	if m == nil || submitted.IsZero() {
		return
	}
	m.durable.Observe(time.Since(submitted).Seconds())
}

// slowClose counts a connection closed for its full outbound queue.
func (m *metrics) slowClose() {
	if m != nil {
		m.slow.Inc()
	}
}

// PresenceDropped counts a presence frame dropped under backpressure.
func (m *metrics) PresenceDropped() {
	if m != nil {
		m.presDrop.Inc()
	}
}

// ErrorSent counts an error frame or close with code.
func (m *metrics) ErrorSent(code protocol.Code) {
	if m != nil {
		m.errors.WithLabelValues(code.String()).Inc()
	}
}

// Panic counts a recovered panic.
func (m *metrics) Panic() {
	if m != nil {
		m.panics.Inc()
	}
}

// Refused counts a refusal by reason.
func (m *metrics) Refused(reason string) {
	if m != nil {
		m.refusals.WithLabelValues(reason).Inc()
	}
}

// CapacityRefusal counts a load or write refused at a memory cap.
func (m *metrics) CapacityRefusal() {
	if m != nil {
		m.busy.Inc()
	}
}

// Followers adds d to the HTTP followers gauge.
func (m *metrics) Followers(d int) {
	if m != nil && d != 0 {
		m.followers.Add(float64(d))
	}
}

// storeCollector reads storage.Store.Stats once per scrape: the group
// commit's counters (commits, requests, largest batch, time) and the
// store's size. Stats walks every document's metadata, so a scrape costs
// one pass over the metadata records.
type storeCollector struct {
	store *storage.Store
}

var (
	descCommits   = prometheus.NewDesc("collabd_store_commits_total", "Successful group commits (bbolt write transactions) since the store was opened.", nil, nil)
	descRequests  = prometheus.NewDesc("collabd_store_commit_requests_total", "Write requests in those commits; divide by commits for the mean batch size.", nil, nil)
	descMaxBatch  = prometheus.NewDesc("collabd_store_commit_max_batch", "The most requests in one commit since the store was opened.", nil, nil)
	descCommitSec = prometheus.NewDesc("collabd_store_commit_seconds_total", "Time spent in commits (apply, write, fsync).", nil, nil)
	descCommitted = prometheus.NewDesc("collabd_store_committed_bytes_total", "Payload bytes committed.", nil, nil)
	descDocs      = prometheus.NewDesc("collabd_store_documents", "Live documents stored.", nil, nil)
	descDeleted   = prometheus.NewDesc("collabd_store_deleted_documents", "Tombstones stored.", nil, nil)
	descFileBytes = prometheus.NewDesc("collabd_store_file_bytes", "Size of the database (what a backup writes).", nil, nil)
	descJournal   = prometheus.NewDesc("collabd_store_journal_entries", "Entries in the store's journal, live or dead.", nil, nil)
	descFailed    = prometheus.NewDesc("collabd_store_failed", "1 when the store has failed (a commit error; reopen to recover), else 0.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommits, descRequests, descMaxBatch, descCommitSec, descCommitted,
		descDocs, descDeleted, descFileBytes, descJournal, descFailed} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	failed := 0.0
	if c.store.Err() != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, failed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	// The committer's counters are valid even when the metadata pass failed.
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(st.Requests))
	ch <- prometheus.MustNewConstMetric(descMaxBatch, prometheus.GaugeValue, float64(st.MaxBatch))
	ch <- prometheus.MustNewConstMetric(descCommitSec, prometheus.CounterValue, st.CommitTime.Seconds())
	ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.CounterValue, float64(st.CommittedData))
	ch <- prometheus.MustNewConstMetric(descJournal, prometheus.GaugeValue, float64(st.JournalEntries))
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDocs, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descDocs, prometheus.GaugeValue, float64(st.Documents))
	ch <- prometheus.MustNewConstMetric(descDeleted, prometheus.GaugeValue, float64(st.Deleted))
	ch <- prometheus.MustNewConstMetric(descFileBytes, prometheus.GaugeValue, float64(st.FileBytes))
}

// backupDone counts a complete backup, backupFailed one that failed.
func (m *metrics) backupDone() {
	if m != nil {
		m.backups.Inc()
	}
}

func (m *metrics) backupFailed() {
	if m != nil {
		m.backupFail.Inc()
	}
}

// closed counts a connection closed with code (a slow close also in its
// own counter); going away (a client that left, a shutdown) is not an
// error.
func (m *metrics) closed(code protocol.Code) {
	if code == protocol.CodeSlow {
		m.slowClose()
	}
	if code != protocol.CodeGoingAway {
		m.ErrorSent(code)
	}
}

// doorCollector counts the open connections of each door at scrape time.
type doorCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c doorCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c doorCollector) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{"native": 0, "y-websocket": 0, "hocuspocus": 0}
	c.s.mu.Lock()
	for sess := range c.s.sessions {
		door := sess.door
		if door == "" {
			door = "native"
		}
		n[door]++
	}
	c.s.mu.Unlock()
	for door, k := range n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(k), door)
	}
}
