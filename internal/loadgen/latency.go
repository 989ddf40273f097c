package loadgen

import (
	"math"
	"slices"
	"time"
)

// latencies collects durations. It is owned by one goroutine; merge the
// collections of several goroutines with merge once they are done.
type latencies struct{ d []time.Duration }

func (l *latencies) add(d time.Duration) { l.d = append(l.d, d) }

func (l *latencies) merge(o *latencies) { l.d = append(l.d, o.d...) }

// quantile returns the q-quantile (nearest rank) of the sorted ds; 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// summary returns p50, p99 and max metrics in milliseconds, named
// prefix+" p50" etc., and the count.
func (l *latencies) summary(prefix string) []Metric {
	ds := slices.Clone(l.d)
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if len(ds) == 0 {
		return []Metric{metric(prefix+" p50", nan(), "ms"), metric(prefix+" p99", nan(), "ms"),
			metric(prefix+" max", nan(), "ms"), metric(prefix+" samples", 0, "")}
	}
	return []Metric{
		metric(prefix+" p50", ms(quantile(ds, 0.50)), "ms"),
		metric(prefix+" p99", ms(quantile(ds, 0.99)), "ms"),
		metric(prefix+" max", ms(ds[len(ds)-1]), "ms"),
		metric(prefix+" samples", float64(len(ds)), ""),
	}
}

func nan() float64 { return math.NaN() }
