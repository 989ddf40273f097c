package loadgen

import (
	"context"
	"fmt"
	"math"
	"time"
)

// nodeSnap is one reading of a cluster's nodes (Config.NodePIDs) from
// /proc; a value < 0 could not be read.
type nodeSnap struct {
	at  time.Time
	cpu []float64 // CPU seconds (user+system)
	rss []float64 // resident bytes
}

func readNodes(pids []int) nodeSnap {
	s := nodeSnap{at: time.Now(), cpu: make([]float64, len(pids)), rss: make([]float64, len(pids))}
	for i, pid := range pids {
		s.cpu[i], s.rss[i] = -1, -1
		if v, err := procCPU(pid); err == nil {
			s.cpu[i] = v
		}
		if st, err := procStatus(pid); err == nil {
			if v, ok := st["VmRSS"]; ok {
				s.rss[i] = v * 1024
			}
		}
	}
	return s
}

// nodeCPU reports each node's CPU between a and b: "node N cpu" (% of a
// core) and, when ops > 0, "node N cpu per insert" and their sum, "nodes
// cpu per insert" (µs of CPU per insert sent).
func nodeCPU(a, b nodeSnap, ops int) []Metric {
	if len(a.cpu) == 0 {
		return nil
	}
	secs := b.at.Sub(a.at).Seconds()
	var ms []Metric
	total := 0.0
	for i := range a.cpu {
		d := nan()
		if a.cpu[i] >= 0 && b.cpu[i] >= 0 {
			d = b.cpu[i] - a.cpu[i]
		}
		total += d
		ms = append(ms, metric(fmt.Sprintf("node %d cpu", i+1), d/secs*100, "% of a core (proc)"))
		if ops > 0 {
			ms = append(ms, metric(fmt.Sprintf("node %d cpu per insert", i+1), d/float64(ops)*1e6, "µs"))
		}
	}
	if ops > 0 {
		ms = append(ms, metric("nodes cpu per insert", total/float64(ops)*1e6, "µs"))
	}
	return ms
}

// nodeRSS reports each node's RSS growth from a to b per connection, and
// the sum over the nodes.
func nodeRSS(a, b nodeSnap, conns int) []Metric {
	if len(a.rss) == 0 || conns <= 0 {
		return nil
	}
	var ms []Metric
	total := 0.0
	for i := range a.rss {
		d := nan()
		if a.rss[i] >= 0 && b.rss[i] >= 0 {
			d = b.rss[i] - a.rss[i]
		}
		total += d
		ms = append(ms, metric(fmt.Sprintf("node %d rss per conn", i+1), d/float64(conns)/1024, "KiB"))
	}
	return append(ms, metric("nodes rss per conn", total/float64(conns)/1024, "KiB"))
}

// ownedDocs reads collabd_cluster_owned_documents from the /metrics of
// each of cfg.URLs' hosts (-1: not available).
func ownedDocs(ctx context.Context, cfg Config) []float64 {
	out := make([]float64, len(cfg.URLs))
	for i := range cfg.URLs {
		out[i] = -1
		if m, err := newProbe(cfg.at(i)).scrape(ctx); err == nil {
			out[i] = get(m, "collabd_cluster_owned_documents")
		}
	}
	return out
}

// spread reports how many documents each node took between before and
// after, and the largest deviation from the mean in percent.
func spread(before, after []float64) []Metric {
	var ms []Metric
	n := make([]float64, len(before))
	sum := 0.0
	for i := range before {
		n[i] = nan()
		if before[i] >= 0 && after[i] >= 0 {
			n[i] = after[i] - before[i]
		}
		sum += n[i]
		ms = append(ms, metric(fmt.Sprintf("node %d owned documents", i+1), n[i], "(collabd_cluster_owned_documents)"))
	}
	mean := sum / float64(len(n))
	dev := 0.0
	for _, x := range n {
		dev = math.Max(dev, math.Abs(x-mean)/mean*100)
	}
	return append(ms, metric("owned documents max deviation from the mean", dev, "%"))
}
