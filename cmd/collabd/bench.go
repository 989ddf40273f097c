package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
)

const benchUsage = `usage: collabd bench <scenario> --url ws://127.0.0.1:8080/v1/ws [--server-pid PID] [--json out.json] [flags]

scenarios:
  fanout     1 document, --subs subscribers, 1 writer typing --rate inserts/s
  manydocs   --docs documents x --per-doc clients typing --rate chars/s at random positions
  idle       ramp idle connections (--conns, --steps, --per-doc) and measure server RSS per connection
  coldjoin   build a --chars document (append and random history), time fresh joins
  churn      connect/join/edit/leave cycles, then check goroutines/fds/memory return to baseline
  presence   --peers peers moving cursors at --hz on one document
  summarize  FILE.json...: print results written with --json as markdown

Run "collabd bench <scenario> -h" for its flags. Load goes to loopback only
unless --allow-remote.

A cluster (docs/CLUSTER.md): --urls spreads the clients over the nodes
(client i on the i-th URL, round robin), --node-pids reports each node's
CPU per insert (fanout, manydocs) or RSS per connection (idle), and idle
reports how many documents each node took (collabd_cluster_owned_documents
on each URL's /metrics). fanout's --writer-url and --doc put the writer on
one node and name the document (to choose its owner). bench/cluster.sh runs
them all against three local nodes.
`

// runBench implements "collabd bench".
func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, benchUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return 0
		}
		return 2
	}
	scenario := args[0]
	if scenario == "summarize" {
		return summarize(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/v1/ws", "server WebSocket `url`")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a non-loopback server")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "sample this server `pid` from /proc (0: scrape /metrics if served, else n/a)")
	fs.StringVar(&cfg.DebugURL, "debug-url", "", "server pprof base `url` (collabd serve --debug-addr) for goroutine counts")
	fs.StringVar(&cfg.Token, "token", "", "auth token (empty: development-mode server)")
	urls := fs.String("urls", "", "comma-separated WebSocket `urls` the clients connect to, round robin (a cluster's nodes; empty: --url)")
	nodePIDs := fs.String("node-pids", "", "comma-separated `pids` of a cluster's nodes (in --urls order): CPU and RSS per node from /proc")
	fs.IntVar(&cfg.Dial, "dial", 50, "connections opened at once")
	fs.DurationVar(&cfg.Settle, "settle", 15*time.Second, "how long to wait for convergence after the load")
	jsonOut := fs.String("json", "", "write the result as JSON to this `file`")
	maxTime := fs.Duration("max-time", 15*time.Minute, "hard bound on the whole run")
	dur := fs.Duration("duration", 0, "load duration (0: the scenario's default)")
	progressEvery := fs.Duration("progress", 5*time.Second, "print the stage and time elapsed on stderr this often (0: never)")

	var run func(ctx context.Context) (*loadgen.Result, error)
	switch scenario {
	case "fanout":
		var p loadgen.Fanout
		fs.StringVar(&p.Doc, "doc", "", "document `id` (empty: a fresh one per run)")
		fs.StringVar(&p.WriterURL, "writer-url", "", "WebSocket `url` of the writer (empty: --url)")
		fs.IntVar(&p.Subscribers, "subs", 100, "subscribers")
		fs.IntVar(&p.Full, "full", 5, "subscribers that are clients/go clients (the rest are raw-protocol light clients)")
		fs.IntVar(&p.Rate, "rate", 50, "writer inserts per second")
		proto := fs.String("proto", "collabd", "wire: collabd (the native protocol, --url ws://…/v1/ws), y-websocket (--url ws://…/v1/yjs, or a y-websocket server's) or hocuspocus (--url ws://…/v1/hocuspocus, or a Hocuspocus server's); the Yjs wires use Go Yjs clients for every subscriber")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			p.Duration = *dur
			if *proto != "collabd" {
				if len(cfg.URLs) > 0 || p.WriterURL != "" || p.Doc != "" || len(cfg.NodePIDs) > 0 {
					return nil, fmt.Errorf("--urls, --writer-url, --doc and --node-pids are for --proto collabd only")
				}
				return loadgen.RunYjsFanout(ctx, cfg, *proto, p)
			}
			return loadgen.RunFanout(ctx, cfg, p)
		}
	case "manydocs":
		var p loadgen.ManyDocs
		fs.IntVar(&p.Docs, "docs", 200, "documents")
		fs.IntVar(&p.PerDoc, "per-doc", 5, "clients per document")
		fs.Float64Var(&p.Rate, "rate", 2, "inserts per second per client")
		fs.BoolVar(&p.Cursors, "cursors", true, "move the cursor after every insert (native protocol only)")
		proto := fs.String("proto", "collabd", "wire: collabd, y-websocket or hocuspocus (as for fanout)")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			p.Duration = *dur
			if *proto != "collabd" {
				return loadgen.RunYjsManyDocs(ctx, cfg, *proto, p)
			}
			return loadgen.RunManyDocs(ctx, cfg, p)
		}
	case "idle":
		var p loadgen.Idle
		steps := fs.String("steps", "1000,2000,5000", "comma-separated connection counts to measure at (--conns is always the last)")
		fs.IntVar(&p.Conns, "conns", 10000, "connections at the top of the ramp")
		fs.IntVar(&p.PerDoc, "per-doc", 1, "connections per document (1: own document each)")
		fs.DurationVar(&p.Hold, "hold", 10*time.Second, "idle time at the top")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			for _, s := range strings.Split(*steps, ",") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				n, err := strconv.Atoi(s)
				if err != nil {
					return nil, fmt.Errorf("bad --steps: %w", err)
				}
				p.Steps = append(p.Steps, n)
			}
			return loadgen.RunIdle(ctx, cfg, p)
		}
	case "coldjoin":
		var p loadgen.ColdJoin
		history := fs.String("history", "append,random", "history layouts: append, random or both")
		fs.IntVar(&p.Chars, "chars", 100000, "characters of history")
		fs.IntVar(&p.Chunk, "chunk", 5, "characters per insert")
		fs.IntVar(&p.Joins, "joins", 5, "fresh clients that join, one after another")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			p.History = strings.Split(*history, ",")
			return loadgen.RunColdJoin(ctx, cfg, p)
		}
	case "churn":
		var p loadgen.Churn
		fs.IntVar(&p.Workers, "workers", 20, "concurrent connect/join/edit/leave loops")
		fs.IntVar(&p.Docs, "docs", 10, "documents the loops pick from")
		fs.Float64Var(&p.Rate, "rate", 5, "cycles per second per loop, at most")
		fs.DurationVar(&p.Recover, "recover", 45*time.Second, "how long to wait for the server to return to baseline (documents unload after 30s idle)")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			p.Duration = *dur
			return loadgen.RunChurn(ctx, cfg, p)
		}
	case "presence":
		var p loadgen.Presence
		fs.IntVar(&p.Peers, "peers", 100, "peers on the document")
		fs.IntVar(&p.Hz, "hz", 30, "cursor moves per second per peer")
		run = func(ctx context.Context) (*loadgen.Result, error) {
			p.Duration = *dur
			return loadgen.RunPresence(ctx, cfg, p)
		}
	default:
		fmt.Fprintf(stderr, "collabd bench: unknown scenario %q\n\n%s", scenario, benchUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	for _, u := range strings.Split(*urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.URLs = append(cfg.URLs, u)
		}
	}
	for _, f := range strings.Split(*nodePIDs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			fmt.Fprintf(stderr, "collabd bench: bad --node-pids entry %q\n", f)
			return 2
		}
		cfg.NodePIDs = append(cfg.NodePIDs, pid)
	}
	for _, u := range append([]string{cfg.URL}, cfg.URLs...) {
		if err := loadgen.CheckURL(u, cfg.AllowRemote); err != nil {
			fmt.Fprintf(stderr, "collabd bench: %v\n", err)
			return 2
		}
	}
	if scenario == "fanout" {
		if wu := fs.Lookup("writer-url").Value.String(); wu != "" {
			if err := loadgen.CheckURL(wu, cfg.AllowRemote); err != nil {
				fmt.Fprintf(stderr, "collabd bench: %v\n", err)
				return 2
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	sp := startStageProgress(stderr, "collabd bench "+scenario, *progressEvery)
	cfg.Progress = sp.set
	res, err := run(ctx)
	sp.stop()
	if err != nil {
		fmt.Fprintf(stderr, "collabd bench %s: %v\n", scenario, err)
		return 1
	}
	return report(res, *jsonOut, stdout, stderr, "collabd bench "+scenario, "")
}

// report prints res as a table, writes it as JSON to jsonPath (if set), and
// returns the exit status: 1 when writing failed or a check failed (hint is
// added to that message).
func report(res *loadgen.Result, jsonPath string, stdout, stderr io.Writer, what, hint string) int {
	if err := res.WriteTable(stdout); err != nil {
		return 1
	}
	if jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", what, err)
			return 1
		}
	}
	if !res.OK() {
		fmt.Fprintf(stderr, "%s: a check failed%s\n", what, hint)
		return 1
	}
	return 0
}

// summarize prints the JSON results in files as markdown.
func summarize(files []string, stdout, stderr io.Writer) int {
	for _, f := range files {
		b, err := os.ReadFile(f)
		var res loadgen.Result
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err == nil {
			err = res.WriteMarkdown(stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "collabd bench summarize: %s: %v\n", f, err)
			return 1
		}
	}
	return 0
}
