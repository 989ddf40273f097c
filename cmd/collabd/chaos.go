package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/collabd/collabd/internal/chaos"
	"github.com/collabd/collabd/internal/loadgen"
)

const chaosUsage = `usage: collabd chaos <scenario> [flags]

scenarios (each runs its own collabd serve on a loopback port):
  kill9  writers append markers while the server is SIGKILLed and restarted
         --cycles times; then every marker acked durable must be present once
  slow   subscribers on one document; one stops reading: it must be closed as
         slow (4008) within --within and the others' p99 must stay within
         --factor of a baseline run without it
  storm  --clients clients on --docs documents; the server restarts (--signal
         term or kill): all must reconnect, the server stay up, replicas converge
  cluster  three "serve --nats-embedded" nodes (--nats external: three "serve
         --nats" nodes on a 3-node NATS cluster run by this process); writers
         spread over them append markers while each cycle SIGKILLs a document's
         owner, kills the ops stream's leader or SIGSTOPs an owner past the
         lease TTL; every marker acked durable must be on every node once, the
         writers' replicas must converge; failover times per fault
         (docs/CLUSTER.md, "Chaos")

Run "collabd chaos <scenario> -h" for its flags. See BENCHMARKS.md.
`

// runChaos implements "collabd chaos".
func runChaos(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, chaosUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return 0
		}
		return 2
	}
	scenario := args[0]
	fs := flag.NewFlagSet("chaos "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "collabd `binary` to run as the server (empty: this executable)")
	data := fs.String("data", "", "data `directory` for the server (empty: a fresh temporary one, removed afterwards)")
	logFile := fs.String("server-log", "", "append the server's stderr to this `file` (empty: <data>/serve.log)")
	logLevel := fs.String("server-log-level", "warn", "the server's --log-level (debug, info, warn, error): debug to chase a failure")
	jsonOut := fs.String("json", "", "write the result as JSON to this `file`")
	maxTime := fs.Duration("max-time", 20*time.Minute, "hard bound on the whole run")
	progressEvery := fs.Duration("progress", 5*time.Second, "print the stage and time elapsed on stderr this often (0: never)")
	var run func(ctx context.Context, s chaos.Serve) (*loadgen.Result, error)
	switch scenario {
	case "kill9":
		var k chaos.Kill9
		fs.IntVar(&k.Cycles, "cycles", 200, "kill/restart cycles")
		fs.IntVar(&k.Writers, "writers", 8, "writer clients")
		fs.IntVar(&k.Docs, "docs", 4, "documents (every writer writes to each)")
		fs.Uint64Var(&k.Seed, "seed", 0, "seed of the kill schedule (0: from the clock; printed)")
		fs.DurationVar(&k.MinUp, "min-up", 50*time.Millisecond, "shortest time up before a kill")
		fs.DurationVar(&k.MaxUp, "max-up", 400*time.Millisecond, "longest time up before a kill")
		fs.DurationVar(&k.MaxDown, "max-down", 50*time.Millisecond, "longest pause before a restart")
		fs.DurationVar(&k.Interval, "interval", 10*time.Millisecond, "each writer's pause between inserts")
		run = func(ctx context.Context, s chaos.Serve) (*loadgen.Result, error) {
			k.Serve = s
			res, _, err := chaos.RunKill9(ctx, k)
			return res, err
		}
	case "slow":
		var p chaos.Slow
		fs.IntVar(&p.Subscribers, "subs", 20, "subscribers that keep reading")
		fs.IntVar(&p.Writers, "writers", 2, "writer clients")
		fs.IntVar(&p.Rate, "rate", 100, "inserts per second per writer")
		fs.IntVar(&p.Payload, "payload", 64, "code points per insert (4-byte emoji)")
		fs.IntVar(&p.QueueBytes, "queue-bytes", 64<<10, "server --queue-bytes (-1: the server's default, 4 MiB)")
		fs.IntVar(&p.RcvBuf, "rcvbuf", 4096, "SO_RCVBUF of the slow subscriber's socket")
		fs.DurationVar(&p.Duration, "duration", 10*time.Second, "typing time of each phase")
		fs.DurationVar(&p.Within, "within", 10*time.Second, "the slow subscriber must be closed this soon after it stops reading")
		fs.Float64Var(&p.Factor, "factor", 1.5, "allowed p99 ratio (with slow / baseline)")
		run = func(ctx context.Context, s chaos.Serve) (*loadgen.Result, error) {
			p.Serve = s
			return chaos.RunSlow(ctx, p)
		}
	case "storm":
		var p chaos.Storm
		fs.IntVar(&p.Clients, "clients", 500, "clients (clients/go)")
		fs.IntVar(&p.Docs, "docs", 5, "documents the clients are spread over")
		fs.StringVar(&p.Signal, "signal", "term", "how the server is stopped: term (graceful, jittered retry hints) or kill")
		fs.DurationVar(&p.Converge, "converge", 60*time.Second, "bound for reconnecting and converging")
		run = func(ctx context.Context, s chaos.Serve) (*loadgen.Result, error) {
			p.Serve = s
			return chaos.RunStorm(ctx, p)
		}
	case "cluster":
		var p chaos.Cluster
		faults := ""
		fs.StringVar(&p.NATS, "nats", chaos.NATSEmbedded, "NATS topology: embedded (each node runs serve --nats-embedded; a SIGKILL kills its NATS node too) or external (this process runs a 3-node NATS JetStream cluster, the nodes run serve --nats; kill-leader shuts the ops stream's leading NATS server down)")
		fs.IntVar(&p.Cycles, "cycles", 20, "faults, one per cycle")
		fs.IntVar(&p.Writers, "writers", 6, "writer clients, spread over the 3 nodes")
		fs.IntVar(&p.Docs, "docs", 3, "documents (every writer writes to each)")
		fs.Uint64Var(&p.Seed, "seed", 0, "seed of the fault schedule and targets (0: from the clock; printed)")
		fs.DurationVar(&p.LeaseTTL, "lease-ttl", 2*time.Second, "the nodes' --lease-ttl")
		fs.DurationVar(&p.Pause, "pause", 0, "how long a SIGSTOPped node stays stopped, and a partitioned one cut off (0: 2 x --lease-ttl)")
		fs.StringVar(&faults, "faults", "", "comma-separated fault kinds to inject, of "+strings.Join(chaos.FaultKinds(), ",")+" (empty: kill-owner,kill-leader,sigstop, and partition and isolate-nats with --nats external, which they need)")
		fs.DurationVar(&p.Interval, "interval", 20*time.Millisecond, "each writer's pause between inserts")
		fs.DurationVar(&p.Recover, "recover", 60*time.Second, "bound for every writer to be acked again after a fault, and for the cluster to settle")
		run = func(ctx context.Context, s chaos.Serve) (*loadgen.Result, error) {
			p.Serve = s
			if faults != "" {
				p.Faults = strings.Split(faults, ",")
			}
			p.Out = stderr
			res, _, err := chaos.RunCluster(ctx, p)
			return res, err
		}
	default:
		fmt.Fprintf(stderr, "collabd chaos: unknown scenario %q\n\n%s", scenario, chaosUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	s, cleanup, err := chaosServe(*bin, *data, *logFile)
	if err != nil {
		fmt.Fprintf(stderr, "collabd chaos: %v\n", err)
		return 1
	}
	if *logLevel != "warn" {
		s.Extra = append(s.Extra, "--log-level", *logLevel) // after startServe's own --log-level warn: the last one counts
	}
	keep := false // a failed run keeps its temporary data directory and server log
	defer func() { cleanup(keep) }()
	if _, err := loadgen.RaiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "collabd chaos: raising the file limit: %v\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	sp := startStageProgress(stderr, "collabd chaos "+scenario, *progressEvery)
	s.Progress = sp.set
	res, err := run(ctx, s)
	sp.stop()
	keep = err != nil || !res.OK()
	if err != nil {
		fmt.Fprintf(stderr, "collabd chaos %s: %v (server log: %s)\n", scenario, err, s.LogPath)
		return 1
	}
	return report(res, *jsonOut, stdout, stderr, "collabd chaos "+scenario, " (server log: "+s.LogPath+")")
}

// chaosServe resolves the server binary, the data directory and the log.
// The cleanup closes the log and removes a temporary data directory unless
// keep is true.
func chaosServe(bin, data, logFile string) (chaos.Serve, func(keep bool), error) {
	var s chaos.Serve
	var closeLog func()
	tmp := ""
	cleanup := func(keep bool) {
		if closeLog != nil {
			closeLog()
		}
		if tmp != "" && !keep {
			_ = os.RemoveAll(tmp)
		}
	}
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return s, cleanup, err
		}
		bin = exe
	}
	s.Bin = bin
	if data == "" {
		dir, err := os.MkdirTemp("", "collabd-chaos-")
		if err != nil {
			return s, cleanup, err
		}
		tmp, data = dir, dir
	} else if err := os.MkdirAll(data, 0o755); err != nil {
		return s, cleanup, err
	}
	s.Data = data
	if logFile == "" {
		logFile = filepath.Join(data, "serve.log")
	}
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		cleanup(false)
		return s, func(bool) {}, err
	}
	closeLog = func() { _ = f.Close() }
	s.Log, s.LogPath = f, logFile
	return s, cleanup, nil
}
