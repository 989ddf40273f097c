package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/collabd/collabd/internal/demo"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// runServe implements "collabd serve". Every flag can also come from a
// COLLABD_* environment variable (flag name upper-cased, dashes as
// underscores); a flag on the command line wins.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address`")
	data := fs.String("data", "./data", "data `directory` (holds collabd.db)")
	origins := fs.String("allowed-origins", "", "comma-separated exact Origin allowlist for browsers (empty: same host only)")
	secret := fs.String("auth-secret", "", "HMAC `secret` for tokens (empty: development mode, no authentication)")
	insecure := fs.Bool("insecure-no-auth", false, "allow a non-loopback address without authentication")
	maxFrame := fs.Int("max-frame", 0, "largest inbound frame in bytes (0: 1 MiB)")
	maxDocs := fs.Int("max-docs-per-conn", 0, "documents joined at once per connection (0: 64)")
	queue := fs.Int("queue-bytes", 0, "outbound bytes queued per connection before it is closed as slow (0: 4 MiB)")
	maxConns := fs.Int("max-conns", 0, "connections in total (0: 10000)")
	maxPerIP := fs.Int("max-conns-per-ip", 0, "connections from one address (0: 256; raise it behind a proxy)")
	opRate := fs.Float64("op-rate", 0, "ops (code points inserted or deleted) per second one connection may send (0: 2000)")
	opBurst := fs.Int("op-burst", 0, "op rate bucket size (0: 100000)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles (/debug/pprof/) on this `address` (empty: off; keep it on loopback)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := envDefaults(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "collabd serve: bad -log-level: %v\n", err)
		return 2
	}
	if *secret != "" {
		if err := checkSecret(*secret); err != nil {
			fmt.Fprintf(stderr, "collabd serve: %v\n", err)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *secret == "" && !*insecure && !loopback(*addr) {
		fmt.Fprintf(stderr, "collabd serve: %s is not a loopback address and authentication is not configured; "+
			"pass --insecure-no-auth to serve it anyway\n", *addr)
		return 2
	}
	if err := os.MkdirAll(*data, 0o750); err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	// storage.Open checks the file against its own meta pages first: a
	// truncated or corrupt collabd.db is refused with a message, not mapped.
	store, err := storage.Open(filepath.Join(*data, "collabd.db"), storage.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrFormat) {
			fmt.Fprintln(stderr, "collabd serve: the store is damaged: restore a backup (collabd restore --in BACKUP --data DIR --force)")
		}
		return 1
	}
	defer store.Close()
	var allowed []string
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allowed = append(allowed, o)
		}
	}
	if *secret == "" {
		log.Warn("development mode: no --auth-secret, every connection may read and write every document")
	}
	srv, err := server.New(server.Config{Store: store, Logger: log, AllowedOrigins: allowed, AuthSecret: []byte(*secret),
		MaxFrame: *maxFrame, MaxDocsPerConn: *maxDocs, QueueBytes: *queue, MaxConns: *maxConns, MaxConnsPerIP: *maxPerIP,
		OpRate: *opRate, OpBurst: *opBurst})
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "collabd serve: %v\n", err)
		return 1
	}
	// The demo page (internal/demo) at / and /demo/; everything else is the server's.
	root := http.NewServeMux()
	root.Handle("/", srv.Handler())
	root.Handle("GET /{$}", demo.Handler())
	root.Handle("GET /demo/", demo.Handler())
	hs := &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second, // slowloris; WebSockets set their own deadlines after the upgrade
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if *debugAddr != "" {
		ds, err := startDebug(*debugAddr, log)
		if err != nil {
			fmt.Fprintf(stderr, "collabd serve: debug listener: %v\n", err)
			return 1
		}
		defer ds.Close()
	}
	log.Info("collabd serving", "addr", ln.Addr().String(), "data", *data, "ws", "/v1/ws")
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	select {
	case err := <-errc:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// hs.Shutdown closes the listener at once, then waits for requests in
	// flight; SSE streams and long polls only end when srv.Shutdown cancels
	// them, and hijacked WebSockets are closed by srv.Shutdown: run both.
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		_ = hs.Shutdown(sctx)
	}()
	err = srv.Shutdown(sctx)
	<-httpDone
	if err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
	}
	return 0
}

// envDefaults sets every flag not given on the command line from its
// COLLABD_* environment variable.
func envDefaults(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		key := "COLLABD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
		}
	})
	return err
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
