package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
)

// The helpers below mirror loadgen's unexported latency and /metrics
// helpers (internal/loadgen is owned elsewhere and exports only Result and
// its parts), with the same definitions: nearest-rank quantiles, NaN as n/a,
// values rounded to 3 decimals.

func metric(name string, v float64, unit string) loadgen.Metric {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return loadgen.Metric{Name: name, Unit: unit}
	}
	v = math.Round(v*1000) / 1000
	return loadgen.Metric{Name: name, Value: &v, Unit: unit}
}

func param(name string, v any) loadgen.Param { return loadgen.Param{Name: name, Value: fmt.Sprint(v)} }

func newResult(name string, params ...loadgen.Param) *loadgen.Result {
	return &loadgen.Result{Scenario: name, Params: params, Started: time.Now().UTC().Format(time.RFC3339)}
}

func check(r *loadgen.Result, name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, loadgen.Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func note(r *loadgen.Result, format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// quantile is the q-quantile (nearest rank) of sorted ds; 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// durations summarises ds as prefix p50/p90/p99/max (ms) and samples.
func durations(prefix string, ds []time.Duration, qs ...float64) []loadgen.Metric {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if len(qs) == 0 {
		qs = []float64{0.5, 0.99}
	}
	var out []loadgen.Metric
	for _, q := range qs {
		v := math.NaN()
		if len(ds) > 0 {
			v = ms(quantile(ds, q))
		}
		out = append(out, metric(fmt.Sprintf("%s p%g", prefix, q*100), v, "ms"))
	}
	mx := math.NaN()
	if len(ds) > 0 {
		mx = ms(ds[len(ds)-1])
	}
	return append(out, metric(prefix+" max", mx, "ms"), metric(prefix+" samples", float64(len(ds)), ""))
}

// scrapeCounter reads one unlabelled sample from the server's /metrics.
func scrapeCounter(ctx context.Context, hc *http.Client, base, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("chaos: /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("chaos: /metrics has no %s", name)
}

// sleepCtx waits d or until ctx ends; it reports false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
