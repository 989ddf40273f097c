package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// authMetrics count what the authentication path asks of the outside
// world: the auth callback and the JWKS. A nil *authMetrics is a no-op.
type authMetrics struct {
	hookCalls   *prometheus.CounterVec
	hookSeconds prometheus.Histogram
	hookHits    prometheus.Counter
	jwks        *prometheus.CounterVec
}

func newAuthMetrics() *authMetrics {
	return &authMetrics{
		hookCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collabd_auth_callback_requests_total",
			Help: "Requests to the auth callback (--auth-webhook), by result: allowed, unauthorized, forbidden, error (timeouts, app errors, bad answers: denied).",
		}, []string{"result"}),
		hookSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "collabd_auth_callback_seconds",
			Help:    "Duration of requests to the auth callback.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13), // 1 ms .. 4 s
		}),
		hookHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collabd_auth_callback_cache_hits_total",
			Help: "Credentials answered from the auth callback's cache.",
		}),
		jwks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collabd_jwks_fetches_total",
			Help: "Fetches of the JWKS (--auth-jwks-url), by result: ok or error (the previous keys stay).",
		}, []string{"result"}),
	}
}

func (m *authMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.hookCalls, m.hookSeconds, m.hookHits, m.jwks}
}

func (m *authMetrics) hookCall(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.hookCalls.WithLabelValues(result).Inc()
	m.hookSeconds.Observe(d.Seconds())
}

func (m *authMetrics) hookHit() {
	if m != nil {
		m.hookHits.Inc()
	}
}

func (m *authMetrics) jwksFetch(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.jwks.WithLabelValues(result).Inc()
}
