package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
)

// The faults of the cluster run.
const (
	// FaultKillOwner SIGKILLs the node holding a document's lease (with
	// NATSEmbedded, its NATS node dies with it).
	FaultKillOwner = "kill-owner"
	// FaultKillLeader SIGKILLs the node leading the ops stream's raft group
	// (NATSEmbedded), or shuts down the external NATS server leading it
	// (NATSExternal; restarted on its store and ports after the failover).
	FaultKillLeader = "kill-leader"
	// FaultStop SIGSTOPs a document's owner for Pause (longer than the
	// lease TTL), then SIGCONTs it.
	FaultStop = "sigstop"
	// FaultPartition cuts a document's owner off NATS for Pause, then
	// heals it (NATSExternal only: the nodes reach the NATS servers
	// through proxies of the run, which it cuts). The node and its
	// clients' connections stay up: its writers keep writing to it.
	FaultPartition = "partition"
	// FaultIsolateNATS cuts the NATS server leading the ops stream off the
	// other two servers (its routes go through proxies of the run) until
	// the failover is measured, and for at least Pause, then heals it
	// (NATSExternal only). Its clients stay connected
	// to it: the collabd nodes among them must notice that JetStream does
	// not answer and move to another server.
	FaultIsolateNATS = "isolate-nats"
)

// FaultKinds lists every fault kind.
func FaultKinds() []string {
	return []string{FaultKillOwner, FaultKillLeader, FaultStop, FaultPartition, FaultIsolateNATS}
}

// TopologyFaults are the fault kinds a topology runs by default: a
// partition and an isolated NATS server need the external NATS cluster (in
// NATSEmbedded mode the NATS node runs in the collabd process, and its
// routes cannot be cut from outside without the network's help).
func TopologyFaults(mode string) []string {
	if mode == NATSExternal {
		return FaultKinds()
	}
	return []string{FaultKillOwner, FaultKillLeader, FaultStop}
}

// allowedFaults are the kinds a topology can run.
func allowedFaults(mode string) []string {
	if mode == NATSExternal {
		return FaultKinds()
	}
	return TopologyFaults(mode)
}

// Cluster is the cluster durability run: three `collabd serve
// --nats-embedded` nodes (or three `collabd serve --nats` nodes on a
// three-node NATS cluster run by this process), writers spread over them
// appending markers to Docs documents, and Cycles faults.
type Cluster struct {
	// Serve runs the nodes: Data is the parent of their data directories
	// (n1, n2, n3); Log gets every node's stderr, each line prefixed with
	// the node's id (and with NATSExternal the servers' warnings and
	// errors, prefixed nats1..nats3).
	Serve Serve
	// NATS is the topology: NATSEmbedded (default) or NATSExternal, whose
	// servers' store directories are nats1..nats3 under Serve.Data.
	NATS     string
	Cycles   int           // faults (default 20)
	Writers  int           // writer clients (default 6), spread over the nodes
	Docs     int           // documents, each written by every writer (default 3)
	Seed     uint64        // seed of the fault schedule and targets (0: from the clock)
	LeaseTTL time.Duration // the nodes' --lease-ttl (default 2s)
	// Pause is how long a SIGSTOPped node stays stopped, and a
	// partitioned one cut off (default 2 × LeaseTTL; at least LeaseTTL +
	// 1s).
	Pause time.Duration
	// Faults are the kinds to inject (default every kind the topology
	// supports: FaultPartition only with NATSExternal): each round
	// of len(Faults) cycles injects each once, in a seeded order.
	Faults []string
	// Interval is each writer's pause between inserts (default 20 ms).
	Interval time.Duration
	// MaxInflight bounds a writer's batches not yet durable per document
	// (default 64): past it the writer skips a turn.
	MaxInflight int
	// Recover bounds the wait for every writer to be acked again after a
	// fault and for the cluster to settle after a restart (default 60s).
	Recover time.Duration
	// Out, if set, gets one line per cycle (the fault, its target, the
	// failover time).
	Out io.Writer
}

func (c *Cluster) defaults() error {
	orDefault(&c.Cycles, 20)
	orDefault(&c.Writers, 6)
	orDefault(&c.Docs, 3)
	orDefault(&c.MaxInflight, 64)
	orDefault(&c.LeaseTTL, 2*time.Second)
	orDefault(&c.Pause, 2*c.LeaseTTL)
	orDefault(&c.Interval, 20*time.Millisecond)
	orDefault(&c.Recover, 60*time.Second)
	if c.Pause < c.LeaseTTL+time.Second {
		return fmt.Errorf("chaos: cluster: pause %v: at least the lease TTL + 1s (%v)", c.Pause, c.LeaseTTL+time.Second)
	}
	switch c.NATS {
	case "":
		c.NATS = NATSEmbedded
	case NATSEmbedded, NATSExternal:
	default:
		return fmt.Errorf("chaos: cluster: nats %q: want %s or %s", c.NATS, NATSEmbedded, NATSExternal)
	}
	if len(c.Faults) == 0 {
		c.Faults = TopologyFaults(c.NATS)
	}
	for _, f := range c.Faults {
		if !slices.Contains(allowedFaults(c.NATS), f) {
			return fmt.Errorf("chaos: cluster: fault %q with nats %s: want one of %s", f, c.NATS, strings.Join(allowedFaults(c.NATS), ", "))
		}
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return nil
}

// ClusterReport is what the cluster run found, beside its Result.
type ClusterReport struct {
	Set SetCheck `json:"set"` // over the first node's texts (the nodes must agree)
	// Failover per fault kind: from the fault to every writer (not on a
	// paused node) acked durable again on every document.
	Failover map[string][]time.Duration `json:"failover"`
	// Unrecovered counts faults after which some writer was not acked
	// again within Recover.
	Unrecovered int `json:"unrecovered"`
}

// startTries bounds startCluster's attempts.
const startTries = 3

// startCluster lays the cluster out and starts it: the external NATS
// servers (NATSExternal), then the nodes. A node that exits before it
// listens (ErrStart), as one whose reserved port another process took
// between the reservation and its bind does, makes the whole start be
// tried again on fresh ports and in fresh data directories (a retryN
// directory under the run's), up to startTries times. On failure
// everything started is stopped.
func startCluster(ctx context.Context, c Cluster) ([]*clusterNode, *extNATS, error) {
	for try := 1; ; try++ {
		s := c.Serve
		if try > 1 {
			s.Data = filepath.Join(c.Serve.Data, fmt.Sprintf("retry%d", try))
		}
		nodes, ext, err := newClusterNodes(s, c.LeaseTTL, c.NATS)
		if err != nil {
			return nil, nil, err
		}
		if ext != nil {
			c.Serve.stage("starting 3 NATS servers")
			err = ext.start(ctx)
		}
		if err == nil {
			c.Serve.stage("starting 3 nodes")
			err = startNodes(ctx, nodes)
		}
		if err == nil {
			return nodes, ext, nil
		}
		for _, n := range nodes { // they served nothing: no graceful stop
			if n.p != nil {
				n.p.kill()
			}
		}
		closeProxies(nodes)
		if ext != nil {
			ext.stop()
		}
		if try == startTries || !errors.Is(err, ErrStart) || ctx.Err() != nil {
			return nil, nil, err
		}
	}
}

// RunCluster runs the cluster faults and the checks. The result's checks
// fail if a marker acked durable is lost or duplicated on any node, if the
// nodes or the writers' replicas do not converge, or if the writers were
// not acked again within Recover after some fault.
func RunCluster(ctx context.Context, c Cluster) (*loadgen.Result, ClusterReport, error) {
	rep := ClusterReport{Failover: map[string][]time.Duration{}}
	if err := c.defaults(); err != nil {
		return nil, rep, err
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(c.Seed, 0x636c7573746572))
	res := newResult("chaos cluster", param("nats", c.NATS), param("cycles", c.Cycles), param("writers", c.Writers), param("docs", c.Docs),
		param("seed", c.Seed), param("lease-ttl", c.LeaseTTL), param("pause", c.Pause),
		param("faults", strings.Join(c.Faults, ",")), param("interval", c.Interval))
	nodes, ext, err := startCluster(ctx, c)
	if err != nil {
		return nil, rep, err
	}
	leaders := make([]string, len(nodes)) // who leads a raft group: the nodes, or the external servers
	for i, n := range nodes {
		leaders[i] = n.id
	}
	if ext != nil {
		defer ext.stop() // after the nodes' stop (deferred below)
		leaders = ext.names()
	}
	defer closeProxies(nodes) // after the nodes' stop
	defer stopNodes(nodes)
	if d, err := settle(ctx, nodes, nil, c.Recover); err != nil {
		return nil, rep, fmt.Errorf("chaos: cluster: not ready after %v: %w", d, err)
	}

	bctx, stopBalancer := context.WithCancel(ctx)
	bal := newBalancer(nodes)
	var bwg sync.WaitGroup
	bwg.Add(1)
	go func() { defer bwg.Done(); bal.run(bctx) }()
	defer func() { stopBalancer(); bwg.Wait() }()

	docIDs := runDocIDs("cluster", fmt.Sprintf("%x", rng.Uint32()), c.Docs)
	ws := make([]*clusterWriter, c.Writers)
	defer func() {
		for _, w := range ws {
			if w != nil && w.c != nil {
				_ = w.c.Close()
			}
		}
	}()
	for i := range ws {
		w, err := dialClusterWriter(ctx, bal, i, i%len(nodes), docIDs)
		if err != nil {
			return nil, rep, err
		}
		ws[i] = w
	}
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, c.Interval, c.MaxInflight) }()
	}
	// Every writer acked once before the first fault (a baseline).
	t0 := time.Now()
	for _, w := range ws {
		w.watch(t0)
	}
	if _, ok := awaitRecovered(ctx, ws, t0, nil, c.Recover); !ok {
		note(res, "the writers were not all acked durable within %v of the start", c.Recover)
	}

	var settles []time.Duration
	resumed := map[string][]time.Duration{} // sigstop, partition: the target's own writers, from the SIGCONT or heal
	var schedule []string
	faults := 0
	for cycle := 0; cycle < c.Cycles && ctx.Err() == nil; cycle++ {
		if len(schedule) == 0 {
			schedule = slices.Clone(c.Faults)
			rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })
		}
		kind := schedule[0]
		schedule = schedule[1:]
		// The NATS server this fault hits, if any (-1: a collabd node).
		natsTarget := -1
		leaderFault := kind == FaultKillLeader || kind == FaultIsolateNATS
		names := leaders
		if !leaderFault {
			names = nodeIDs(nodes)
		}
		target, why := pickTarget(ctx, rng, nodes, names, kind, docIDs)
		n := nodes[target]
		name := n.id
		if ext != nil && leaderFault {
			natsTarget, name = target, leaders[target]
		}
		led := ledGroups(ctx, nodes, name)
		faults++
		c.Serve.stage("cycle %d of %d: %s %s (%s)", cycle+1, c.Cycles, kind, name, why)
		t0 := time.Now()
		var skip []bool // writers not counted in the failover
		switch {
		case natsTarget >= 0 && kind == FaultIsolateNATS:
			for _, w := range ws {
				w.watch(t0)
			}
			ext.isolate(natsTarget, true)
		case natsTarget >= 0:
			for _, w := range ws {
				w.watch(t0)
			}
			if err := ext.shutdown(natsTarget); err != nil {
				note(res, "cycle %d: NATS %s shutdown: %v", cycle+1, name, err)
			}
		case kind == FaultStop || kind == FaultPartition:
			skip = make([]bool, len(ws))
			for i, w := range ws {
				skip[i] = int(w.node.Load()) == target
			}
			for _, w := range ws {
				w.watch(t0)
			}
			if kind == FaultStop {
				_ = n.p.cmd.Process.Signal(syscall.SIGSTOP)
				n.state = nodeStopped
			} else {
				n.cut(true)
			}
		default:
			for _, w := range ws {
				w.watch(t0)
			}
			n.p.kill()
			n.state = nodeKilled
		}
		line := fmt.Sprintf("cycle %d/%d: %s %s (%s; it led %s)", cycle+1, c.Cycles, kind, name, why, led)
		var tcont time.Time // the SIGCONT, or the partition's heal
		if kind == FaultStop || kind == FaultPartition {
			if !sleepCtx(ctx, c.Pause) {
				n.cut(false)
				break
			}
			tcont = time.Now()
			if kind == FaultStop {
				_ = n.p.cmd.Process.Signal(syscall.SIGCONT)
				n.state = nodeUp
			} else {
				n.cut(false)
			}
		}
		if at, ok := awaitRecovered(ctx, ws, t0, skip, c.Recover); ok {
			rep.Failover[kind] = append(rep.Failover[kind], at.Sub(t0))
			line += fmt.Sprintf(": failover %v", at.Sub(t0).Round(time.Millisecond))
		} else {
			rep.Unrecovered++
			line += fmt.Sprintf(": NOT every writer acked again within %v: %s (goroutines: %s)", c.Recover, stuckWriters(ctx, ws, skip, nodes),
				dumpGoroutines(ctx, nodes, c.Serve.Data, cycle+1))
		}
		if !tcont.IsZero() && slices.Contains(skip, true) {
			only := make([]bool, len(skip))
			for i := range skip {
				only[i] = !skip[i]
			}
			after := "SIGCONT"
			if kind == FaultPartition {
				after = "the heal"
			}
			if at, ok := awaitRecovered(ctx, ws, t0, only, c.Recover); ok {
				resumed[kind] = append(resumed[kind], max(0, at.Sub(tcont)))
				line += fmt.Sprintf(", its own writers acked %v after %s", max(0, at.Sub(tcont)).Round(time.Millisecond), after)
			} else {
				rep.Unrecovered++
				line += ", its own writers NOT acked again after " + after
			}
		}
		if kind == FaultIsolateNATS {
			// Healed once the failover was measured (the writers of the
			// nodes connected to it had to move to another server), and
			// not before Pause.
			if rest := c.Pause - time.Since(t0); rest > 0 {
				sleepCtx(ctx, rest)
			}
			ext.isolate(natsTarget, false)
		} else if natsTarget >= 0 {
			if err := ext.restart(ctx, natsTarget); err != nil {
				stopWriters()
				wg.Wait()
				return nil, rep, err
			}
		}
		if n.state == nodeKilled {
			if err := restartNode(ctx, n); err != nil {
				stopWriters()
				wg.Wait()
				return nil, rep, err
			}
		}
		d, err := settle(ctx, nodes, ws, c.Recover)
		settles = append(settles, d)
		if err != nil {
			rep.Unrecovered++
			line += fmt.Sprintf("; NOT settled within %v: %v: %s (goroutines: %s)", c.Recover, err, stuckWriters(ctx, ws, nil, nodes),
				dumpGoroutines(ctx, nodes, c.Serve.Data, cycle+1))
		} else {
			line += fmt.Sprintf("; settled in %v", d.Round(time.Millisecond))
		}
		note(res, "%s", line)
		if c.Out != nil {
			fmt.Fprintln(c.Out, line)
		}
	}
	stopWriters()
	wg.Wait()

	c.Serve.stage("final check: waiting for acks, reading every node")
	var werrs []string
	stuck := 0
	fctx, cancel := context.WithTimeout(ctx, c.Recover)
	defer cancel()
	for _, w := range ws {
		for _, d := range w.docs {
			if err := d.WaitDurable(fctx); err != nil {
				stuck++
			}
		}
	}
	written := map[string]string{}
	acked := map[string]bool{}
	for _, w := range ws {
		w.refresh()
		for d, ms := range w.inserted {
			for i, m := range ms {
				written[m] = docIDs[d]
				if i < w.durable[d] {
					acked[m] = true
				}
			}
		}
		for _, d := range w.docs {
			if err := d.Err(); err != nil && w.err == nil {
				w.err = err
			}
		}
		if w.err != nil {
			werrs = append(werrs, fmt.Sprintf("writer %d: %v", w.id, w.err))
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	texts := make([]map[string]string, len(nodes))
	for i, n := range nodes {
		if texts[i], err = readNodeTexts(fctx, hc, n, docIDs); err != nil {
			return nil, rep, err
		}
	}
	agree := 0
	var sets []SetCheck
	for i := range nodes {
		sets = append(sets, checkSet(texts[i], written, acked))
		for _, id := range docIDs {
			if texts[i][id] == texts[0][id] {
				agree++
			}
		}
	}
	rep.Set = sets[0]
	lost, dup := 0, 0
	for _, s := range sets {
		lost, dup = max(lost, s.Lost), max(dup, s.Duplicated)
	}
	diverged := replicasDiverged(fctx, ws, docIDs, texts[0])

	res.Metrics = append(res.Metrics,
		metric("faults", float64(faults), ""),
		metric("markers written", float64(len(written)), ""),
		metric("acked durable", float64(rep.Set.Acked), ""),
		metric("ok", float64(rep.Set.OK), "acked, present once"),
		metric("lost", float64(lost), "acked, absent (worst node)"),
		metric("duplicated", float64(dup), "present more than once (worst node)"),
		metric("recovered", float64(rep.Set.Recovered), "present, never acked durable (fine)"),
		metric("absent unacked", float64(rep.Set.Absent), "never acked, absent (fine)"),
	)
	for _, k := range FaultKinds() {
		if ds := rep.Failover[k]; len(ds) > 0 {
			res.Metrics = append(res.Metrics, durations("failover "+k, ds, 0.5, 0.99)...)
		}
	}
	if ds := resumed[FaultStop]; len(ds) > 0 {
		res.Metrics = append(res.Metrics, durations("sigstop: paused node's writers acked after SIGCONT", ds, 0.5, 0.99)...)
	}
	if ds := resumed[FaultPartition]; len(ds) > 0 {
		res.Metrics = append(res.Metrics, durations("partition: cut node's writers acked after the heal", ds, 0.5, 0.99)...)
	}
	res.Metrics = append(res.Metrics, durations("settle after a fault", settles, 0.5, 0.99)...)
	check(res, "no acked marker lost", lost == 0, "%d of %d acked durable markers missing on some node %v", lost, rep.Set.Acked, rep.Set.LostExamples)
	check(res, "no marker duplicated", dup == 0, "%d duplicated on some node %v", dup, rep.Set.DupExamples)
	check(res, "texts clean", rep.Set.Misplaced == 0 && rep.Set.Unknown == 0 && rep.Set.Junk == 0,
		"misplaced %d, unknown %d, junk bytes %d", rep.Set.Misplaced, rep.Set.Unknown, rep.Set.Junk)
	check(res, "nodes agree", agree == len(nodes)*len(docIDs), "%d of %d (node, document) texts equal the first node's", agree, len(nodes)*len(docIDs))
	check(res, "replicas converge", diverged == 0, "%d of %d writer replicas differ from the nodes' text", diverged, len(ws)*len(docIDs))
	check(res, "every fault recovered", rep.Unrecovered == 0, "%d faults after which a writer was not acked again (or the cluster did not settle) within %v", rep.Unrecovered, c.Recover)
	check(res, "every batch acked durable at the end", stuck == 0, "%d (writer, document) pairs with batches still not durable %v after the writers stopped", stuck, c.Recover)
	check(res, "writers made progress", rep.Set.Acked > 0, "%d markers acked durable", rep.Set.Acked)
	check(res, "writers healthy", len(werrs) == 0, "%s", strings.Join(werrs, "; "))
	target := 2 * c.LeaseTTL
	for _, k := range FaultKinds() {
		ds := slices.Clone(rep.Failover[k])
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		p50, p99 := quantile(ds, 0.5), quantile(ds, 0.99)
		verdict := "met"
		if p50 > target || p99 > target {
			verdict = "NOT met"
		}
		note(res, "failover target p50/p99 <= 2 x lease TTL (%v) for %s: %s (p50 %v, p99 %v)", target, k, verdict,
			p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	}
	if !res.OK() {
		note(res, "reproduce with --seed %d (the fault schedule and targets; writer timing still varies)", c.Seed)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, rep, nil
}

// pickTarget chooses the node a fault hits: the lease holder of a random
// document (kill-owner, sigstop, partition) or the ops stream's leader
// (kill-leader).
// If the cluster does not say (no holder, no leader, a query failing),
// it picks a random node and says why.
// names are the nodes' ids for an owner, the leaders' names (the nodes' or
// the external NATS servers') for the stream's leader; the index returned
// is into names.
func pickTarget(ctx context.Context, rng *rand.Rand, nodes []*clusterNode, names []string, kind string, docIDs []string) (int, string) {
	fallback := rng.IntN(len(nodes))
	doc := docIDs[rng.IntN(len(docIDs))]
	var id, what string
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if kind == FaultKillLeader || kind == FaultIsolateNATS {
			id, err = streamLeader(ctx, nodes, opsStream)
			what = opsStream + " leader"
		} else {
			id, err = leaseHolder(ctx, nodes, doc)
			what = "owner of " + doc
		}
		if i := nodeIndex(names, id); err == nil && i >= 0 {
			return i, what
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 100*time.Millisecond) {
			return fallback, fmt.Sprintf("random: no %s (%q, %v)", what, id, err)
		}
	}
}

// settle waits until every node answers /readyz, every stream (the ops
// stream, the buckets, the snapshots, the versions) has a leader and every
// replica current — so that each fault hits a healthy cluster: a replica
// still catching up from the last fault plus the next fault's would be two
// of three, which no R3 system serves —
// and (ws not nil) every writer is acked durable again on every document.
func settle(ctx context.Context, nodes []*clusterNode, ws []*clusterWriter, bound time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for _, w := range ws {
		w.watch(t0)
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := t0.Add(bound)
	for {
		var why string
		for _, n := range nodes {
			if !ready(ctx, hc, n.httpURL()) {
				why = n.id + " not ready"
				break
			}
		}
		if why == "" {
			why = streamsUnhealthy(ctx, nodes)
		}
		if why == "" && ws != nil {
			if _, ok := awaitRecovered(ctx, ws, t0, nil, 0); !ok {
				why = "a writer not acked durable again"
			}
		}
		if why == "" {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return time.Since(t0), fmt.Errorf("chaos: cluster: %s", why)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return time.Since(t0), ctx.Err()
		}
	}
}

// awaitRecovered waits up to bound until every writer not in skip has had
// a marker inserted after t0 acked durable on every document, and reports
// when the last of them was; bound 0 looks once.
func awaitRecovered(ctx context.Context, ws []*clusterWriter, t0 time.Time, skip []bool, bound time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(bound)
	for {
		var last time.Time
		all := true
		for i, w := range ws {
			if skip != nil && skip[i] {
				continue
			}
			at, ok := w.recovered()
			if !ok {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if all {
			return last, true
		}
		if !time.Now().Before(deadline) || !sleepCtx(ctx, 20*time.Millisecond) {
			return time.Time{}, false
		}
	}
}

// readNodeTexts reads every document's text from one node over HTTP,
// retrying refusals (503 while a document moves) for up to 30 s.
func readNodeTexts(ctx context.Context, hc *http.Client, n *clusterNode, docIDs []string) (map[string]string, error) {
	texts := map[string]string{}
	for _, id := range docIDs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			t, err := docText(ctx, hc, n.httpURL(), id)
			if err == nil {
				texts[id] = t
				break
			}
			if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
				return nil, fmt.Errorf("chaos: cluster: read %s from %s: %w", id, n.id, err)
			}
		}
	}
	return texts, nil
}

// replicasDiverged waits (bounded by ctx) until every writer's replica of
// every document equals want, and counts those that never did.
func replicasDiverged(ctx context.Context, ws []*clusterWriter, docIDs []string, want map[string]string) int {
	for {
		diverged := 0
		for _, w := range ws {
			for di, d := range w.docs {
				if d.String(Root) != want[docIDs[di]] {
					diverged++
				}
			}
		}
		if diverged == 0 || !sleepCtx(ctx, 100*time.Millisecond) {
			return diverged
		}
	}
}

// stuckWriters describes the writers (not in skip) not acked again, with
// the lease holder of each document.
func stuckWriters(ctx context.Context, ws []*clusterWriter, skip []bool, nodes []*clusterNode) string {
	var out []string
	for i, w := range ws {
		if skip == nil || !skip[i] {
			out = append(out, w.stuck(nodes)...)
		}
	}
	if len(ws) > 0 {
		for _, d := range ws[0].docs {
			h, err := leaseHolder(ctx, nodes, d.ID())
			out = append(out, fmt.Sprintf("lease of %s: %q %v", d.ID(), h, err))
		}
	}
	return strings.Join(out, "; ")
}

// ledGroups names the raft groups (the ops stream, the lease and
// membership buckets) whose leader is id (a node's or an external NATS
// server's name): a crash of their leader
// costs an election (docs/CLUSTER.md), which the failover then includes.
func ledGroups(ctx context.Context, nodes []*clusterNode, id string) string {
	var led []string
	for _, g := range []struct{ stream, name string }{{opsStream, "ops"}, {leaseStream, "leases"}, {nodesStream, "nodes"}} {
		if l, err := streamLeader(ctx, nodes, g.stream); err == nil && l == id {
			led = append(led, g.name)
		}
	}
	if len(led) == 0 {
		return "no raft group"
	}
	return strings.Join(led, "+")
}

// nodeIDs lists the nodes' ids.
func nodeIDs(nodes []*clusterNode) []string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.id)
	}
	return ids
}
