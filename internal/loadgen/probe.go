package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var errNoMetrics = errors.New("loadgen: no /metrics")

// snap is one reading of the server (fields < 0: not available) and of
// the generator.
type snap struct {
	at         time.Time
	cpu        float64 // server CPU seconds (user+system)
	rss        float64 // server resident bytes
	fds        float64 // server open file descriptors
	threads    float64 // server OS threads
	goroutines float64 // server goroutines
	heap       float64 // server heap in use, bytes
	self       float64 // generator CPU seconds
	source     string  // "proc", "metrics" or "n/a"
}

// probe reads the server's and the generator's resource use.
type probe struct {
	pid     int
	metrics string      // GET URL of /metrics, "" if none
	noMetr  atomic.Bool // set once /metrics answered 404: not asked again
	debug   string      // base URL of pprof, "" if none
	hc      *http.Client
}

func newProbe(cfg Config) *probe {
	pr := &probe{pid: cfg.ServerPID, debug: strings.TrimRight(cfg.DebugURL, "/"),
		hc: &http.Client{Timeout: 2 * time.Second}}
	if base := httpBase(cfg.URL); base != "" {
		pr.metrics = base + "/metrics"
	}
	return pr
}

// read takes one reading. It never fails: what cannot be read is -1.
func (pr *probe) read(ctx context.Context) snap {
	s := snap{at: time.Now(), cpu: -1, rss: -1, fds: -1, threads: -1, goroutines: -1, heap: -1, self: selfCPU(), source: "n/a"}
	if pr.pid > 0 {
		if cpu, err := procCPU(pr.pid); err == nil {
			s.cpu, s.source = cpu, "proc"
		}
		if st, err := procStatus(pr.pid); err == nil {
			s.rss, s.threads = st["VmRSS"]*1024, st["Threads"]
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pr.pid)); err == nil {
			s.fds = float64(len(ents))
		}
	}
	if pr.metrics != "" && !pr.noMetr.Load() {
		if m, err := pr.scrape(ctx); err == nil {
			if s.source == "n/a" {
				s.source = "metrics"
				s.cpu = get(m, "process_cpu_seconds_total")
				s.rss = get(m, "process_resident_memory_bytes")
				s.fds = get(m, "process_open_fds")
			}
			s.goroutines = get(m, "go_goroutines")
			s.heap = get(m, "go_memstats_heap_inuse_bytes")
		} else if errors.Is(err, errNoMetrics) {
			pr.noMetr.Store(true)
		}
	}
	if pr.debug != "" {
		if n, err := pr.goroutines(ctx); err == nil {
			s.goroutines = n
		}
	}
	return s
}

func get(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return -1
}

// scrape reads the unlabelled samples of a Prometheus text exposition.
func (pr *probe) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := pr.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNoMetrics
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadgen: %s: %s", pr.metrics, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	return m, sc.Err()
}

// goroutines reads "goroutine profile: total N" from pprof.
func (pr *probe) goroutines(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.debug+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := pr.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var n float64
	if _, err := fmt.Sscanf(line, "goroutine profile: total %g", &n); err != nil {
		return 0, err
	}
	return n, nil
}

// procCPU is utime+stime of pid in seconds.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 > len(data) {
		return 0, fmt.Errorf("loadgen: odd /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: odd /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: odd /proc/%d/stat", pid)
	}
	return (u + s) / 100, nil // USER_HZ is 100 on Linux
}

// procStatus reads the numeric fields of /proc/PID/status (kB values in kB).
func procStatus(pid int) (map[string]float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if f := strings.Fields(v); len(f) >= 1 {
			if x, err := strconv.ParseFloat(f[0], 64); err == nil {
				m[k] = x
			}
		}
	}
	return m, nil
}

// selfCPU is the generator's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// usage is resource use over a window.
type usage struct {
	serverCPU, serverCPUMax float64 // % of one core, average and max over a sample interval
	rss0, rssMax, rss1      float64 // bytes
	selfCPU                 float64 // % of one core
	source                  string
}

// sampler reads the probe every interval between start and stop.
type sampler struct {
	pr     *probe
	first  snap
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// owned by the sampling goroutine until wg.Wait returns
	last     snap
	cpuMax   float64
	rssMax   float64
	interval time.Duration
}

// startSampler starts sampling; call stop exactly once.
func startSampler(ctx context.Context, pr *probe, interval time.Duration) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{pr: pr, cancel: cancel, interval: interval}
	s.first = pr.read(ctx)
	s.last, s.rssMax, s.cpuMax = s.first, s.first.rss, -1
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur := pr.read(ctx)
			if cur.cpu >= 0 && s.last.cpu >= 0 {
				s.cpuMax = max(s.cpuMax, pct(s.last, cur, func(x snap) float64 { return x.cpu }))
			}
			s.rssMax = max(s.rssMax, cur.rss)
			s.last = cur
		}
	}()
	return s
}

func pct(a, b snap, f func(snap) float64) float64 {
	secs := b.at.Sub(a.at).Seconds()
	if f(a) < 0 || f(b) < 0 || secs <= 0 {
		return nan()
	}
	return (f(b) - f(a)) / secs * 100
}

// stop ends sampling and returns the usage over the whole window.
func (s *sampler) stop(ctx context.Context) usage {
	s.cancel()
	s.wg.Wait()
	end := s.pr.read(ctx)
	u := usage{
		serverCPU: pct(s.first, end, func(x snap) float64 { return x.cpu }),
		selfCPU:   pct(s.first, end, func(x snap) float64 { return x.self }),
		rss0:      s.first.rss, rss1: end.rss, rssMax: max(s.rssMax, end.rss),
		serverCPUMax: s.cpuMax, source: end.source,
	}
	if u.serverCPUMax < 0 {
		u.serverCPUMax = nan()
	}
	return u
}

// metrics reports the usage, names prefixed (e.g. "load").
func (u usage) metrics(prefix string) []Metric {
	mb := func(b float64) float64 {
		if b < 0 {
			return nan()
		}
		return b / (1 << 20)
	}
	if prefix != "" {
		prefix += " "
	}
	return []Metric{
		metric(prefix+"server cpu avg", u.serverCPU, "% of a core ("+u.source+")"),
		metric(prefix+"server cpu max", u.serverCPUMax, "% of a core, per sample"),
		metric(prefix+"server rss start", mb(u.rss0), "MiB"),
		metric(prefix+"server rss max", mb(u.rssMax), "MiB"),
		metric(prefix+"generator cpu", u.selfCPU, "% of a core"),
	}
}

// orNaN maps a "not available" reading (< 0) to NaN.
func orNaN(v float64) float64 {
	if v < 0 {
		return nan()
	}
	return v
}

// gc asks the server for a garbage collection (pprof heap?gc=1), so that a
// following heap reading is live memory; a no-op without DebugURL.
func (pr *probe) gc(ctx context.Context) {
	if pr.debug == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.debug+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return
	}
	if resp, err := pr.hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}
