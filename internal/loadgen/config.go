package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of the load generator.
var (
	ErrRemote   = errors.New("loadgen: refusing a non-loopback server (pass AllowRemote)")
	ErrDiverged = errors.New("loadgen: replicas did not converge")
)

// Config says where the server is and how to observe it.
type Config struct {
	// URL is the WebSocket endpoint, ws://127.0.0.1:8080/v1/ws. Server
	// figures without ServerPID come from its host's /metrics.
	URL string
	// URLs, if set, are the endpoints the clients connect to instead of
	// URL: client i of a scenario (a fanout subscriber, a manydocs typist,
	// an idle connection) uses URLs[i % len(URLs)]. For a cluster: one URL
	// per node spreads the clients evenly over the nodes.
	URLs []string
	// NodePIDs, if set, are the PIDs of a cluster's nodes (in the order of
	// URLs, when both are set): fanout and manydocs report each node's CPU
	// over the load and per insert, idle its RSS (from /proc).
	NodePIDs []int
	// AllowRemote permits a URL whose host is not a loopback address.
	AllowRemote bool
	// ServerPID, if non-zero, is sampled from /proc (CPU, RSS, threads,
	// file descriptors). Zero: GET /metrics on the URL's host, if it
	// answers; else server figures are n/a.
	ServerPID int
	// DebugURL is the server's --debug-addr base ("http://127.0.0.1:6061"):
	// its goroutine count is read from /debug/pprof/goroutine?debug=1. Empty:
	// the count comes from /metrics (go_goroutines), if any.
	DebugURL string
	// Token is sent in Hello; "" for a server in development mode.
	Token string
	// Dial is how many connections are opened at once (default 50).
	Dial int
	// Settle bounds how long a scenario waits for replicas to converge after
	// the load stops (default 15s).
	Settle time.Duration
	// Progress, if set, is told what the scenario is doing now ("connecting
	// 100 subscribers", "typing for 20s", …), for a progress line; called on
	// the scenario's goroutine.
	Progress func(stage string)
}

// stage reports the scenario's current stage to Progress, if set.
func (c Config) stage(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

func (c Config) withDefaults() Config {
	if c.Dial <= 0 {
		c.Dial = 50
	}
	if c.Settle <= 0 {
		c.Settle = 15 * time.Second
	}
	return c
}

// at is cfg with URL set to the endpoint of client i (see URLs).
func (c Config) at(i int) Config {
	if len(c.URLs) > 0 {
		c.URL = c.URLs[i%len(c.URLs)]
	}
	return c
}

// CheckURL refuses a URL that is not ws:// or wss:// on a loopback host,
// unless allowRemote.
func CheckURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("loadgen: bad url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("loadgen: url %q: scheme must be ws or wss", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRemote, host)
}

// httpBase is the http:// origin of the WebSocket URL, for /metrics.
func httpBase(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the new soft limit (the generator holds one descriptor per
// connection).
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, err
		}
	}
	return r.Cur, nil
}

// Bounded runs fn for each of n items with at most par at once and returns
// the first error. It stops starting new items once ctx ends or fn fails,
// and returns when every started item has returned.
func Bounded(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(par, 1))
	errc := make(chan error, 1)
	var wg sync.WaitGroup
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				select {
				case errc <- err:
				default:
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// markerRune is the unique character of insert k (k < markerCount): CJK
// ideographs, one code point each.
func markerRune(k int) rune { return rune(0x4E00 + k) }

const markerCount = 0x9FFF - 0x4E00 + 1

// markerIndex is the k of a marker rune, or -1.
func markerIndex(r rune) int {
	if r < 0x4E00 || r > 0x9FFF {
		return -1
	}
	return int(r - 0x4E00)
}

func join(ss []string) string { return strings.Join(ss, ",") }
