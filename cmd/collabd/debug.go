package main

// The --debug-addr listener serves Go's runtime profiles from its own mux.
//
// It does not import net/http/pprof: that package's init registers its
// handlers on http.DefaultServeMux, process-wide state that any handler
// falling back to the default mux would then expose (STYLE.md B3.2). The
// handlers below are the part of it collabd needs, written on runtime/pprof
// and runtime/trace: the index, every named profile (heap, goroutine,
// allocs, block, mutex, threadcreate; ?debug=N for text, ?gc=1 to collect
// before a heap profile), the CPU profile (?seconds=N), the execution trace
// and the command line. Not served: /debug/pprof/symbol (profiles are
// symbolized already, so go tool pprof does not need it) and delta profiles
// of named profiles (?seconds on /heap and friends: fetch twice and use
// go tool pprof -diff_base instead).
//
// A dependency still registers /debug/vars on http.DefaultServeMux (expvar,
// imported by the Prometheus client). That is harmless here because collabd
// never serves http.DefaultServeMux: the public listener serves the mux
// built in serve.go, the debug listener serves debugHandler, and
// TestPublicHandlerServesNoDebug pins both.

import (
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxProfileSeconds bounds ?seconds= of the CPU profile and the trace.
const maxProfileSeconds = 600

// debugServer is the --debug-addr listener. Close stops it and waits for
// its serving goroutine.
type debugServer struct {
	addr string
	hs   *http.Server
	wg   sync.WaitGroup
}

// startDebug serves the profiles on their own listener (never on the
// public address).
// With metrics non-nil it also serves them at /metrics (--metrics-addr).
func startDebug(addr string, metrics http.Handler, log *slog.Logger) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var h http.Handler = debugHandler()
	if metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/debug/", h)
		mux.Handle("GET /metrics", metrics)
		h = mux
	}
	ds := &debugServer{addr: ln.Addr().String(), hs: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	ds.wg.Add(1)
	go func() {
		defer ds.wg.Done()
		if err := ds.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener", "err", err)
		}
	}()
	log.Info("metrics and profiles", "addr", ln.Addr().String(), "metrics", metrics != nil)
	return ds, nil
}

// Close closes the listener and every connection (a CPU profile in
// progress ends with its client's connection) and waits for the serving
// goroutine.
func (ds *debugServer) Close() error {
	err := ds.hs.Close()
	ds.wg.Wait()
	return err
}

// debugHandler is the mux of the debug listener.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/{$}", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprofCmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.HandleFunc("GET /debug/pprof/trace", pprofTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", pprofNamed)
	return mux
}

func pprofIndex(w http.ResponseWriter, _ *http.Request) {
	ps := pprof.Profiles()
	slices.SortFunc(ps, func(a, b *pprof.Profile) int { return strings.Compare(a.Name(), b.Name()) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<!doctype html><title>/debug/pprof/</title><h1>/debug/pprof/</h1><table>\n")
	for _, p := range ps {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", p.Count(), n, n)
	}
	b.WriteString("<tr><td></td><td><a href=\"profile?seconds=30\">profile</a> (CPU, 30 s)</td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"trace?seconds=1\">trace</a> (1 s)</td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"cmdline\">cmdline</a></td></tr>\n</table>\n")
	_, _ = w.Write([]byte(b.String())) // the client may be gone; nothing to do about it
}

func pprofCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(os.Args, "\x00")))
}

// pprofNamed writes one runtime/pprof profile: gzipped protobuf, or text
// with ?debug=N (N > 0). ?gc=1 runs a collection first (heap only).
func pprofNamed(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	if r.FormValue("seconds") != "" {
		http.Error(w, "delta profiles are not served; fetch twice and use go tool pprof -diff_base", http.StatusBadRequest)
		return
	}
	debug, err := queryInt(r, "debug", 0, 0, 2)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if name == "heap" && r.FormValue("gc") != "" && r.FormValue("gc") != "0" {
		runtime.GC()
	}
	setProfileHeaders(w, name, debug)
	_ = p.WriteTo(w, debug) // an error here is the client's connection; the status is already sent
}

// pprofCPU records a CPU profile for ?seconds=N (default 30).
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	secs, err := queryInt(r, "seconds", 30, 1, maxProfileSeconds)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	setProfileHeaders(w, "profile", 0)
	if err := pprof.StartCPUProfile(w); err != nil {
		// Headers are not written yet: StartCPUProfile fails before writing.
		w.Header().Del("Content-Disposition")
		http.Error(w, "cpu profile: "+err.Error(), http.StatusInternalServerError)
		return
	}
	waitFor(r, secs)
	pprof.StopCPUProfile()
}

// pprofTrace records an execution trace for ?seconds=N (default 1).
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	secs, err := queryInt(r, "seconds", 1, 1, maxProfileSeconds)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	setProfileHeaders(w, "trace", 0)
	if err := trace.Start(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "trace: "+err.Error(), http.StatusInternalServerError)
		return
	}
	waitFor(r, secs)
	trace.Stop()
}

// waitFor waits secs seconds or until the client goes away.
func waitFor(r *http.Request, secs int) {
	t := time.NewTimer(time.Duration(secs) * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func setProfileHeaders(w http.ResponseWriter, name string, debug int) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
}

// queryInt parses the query parameter key as an integer in [lo, hi]; def
// if it is absent.
func queryInt(r *http.Request, key string, def, lo, hi int) (int, error) {
	s := r.FormValue(key)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want an integer from %d to %d", key, s, lo, hi)
	}
	return n, nil
}
