// Package loadgen is the load generator behind "collabd bench": scenarios
// that drive a collabd server over loopback WebSockets and measure what it
// holds (docs: BENCHMARKS.md, "load tool").
//
// # Scenarios
//
// Fanout, ManyDocs, Idle, ColdJoin, Churn and Presence each take a Config
// (where the server is, how to observe it) and their own parameters, run for
// a bounded time and return a *Result: named metrics, checks (convergence,
// leaks) and optional steps, which Result.WriteTable prints and
// encoding/json writes.
//
// Clients are of two kinds. Full clients are clients/go Clients (a replica,
// batching, acks, presence: what an app runs). Light clients
// (internal/rawclient, shared with internal/chaos) speak the raw protocol
// on one WebSocket with one goroutine: they join, keep a crdt.Doc of their
// own, answer the server's pings and read what the server sends; they
// cost the generator far less, so a scenario with hundreds of subscribers
// measures the server rather than the generator.
//
// # Measuring
//
// Latency is end to end on one monotonic clock: every inserted character is
// a unique marker (see markerRune) whose send time the writer records just
// before the edit; an observer that sees the marker arrive records now −
// send. Server CPU and RSS come from /proc/PID when Config.ServerPID is set,
// else from the server's GET /metrics (Prometheus process_* metrics) when
// it answers, else they are reported as n/a. The generator's own CPU comes
// from getrusage, so a reader can tell whether the server or the generator
// was the bottleneck.
//
// # Clusters
//
// Config.URLs spreads a scenario's clients over several servers (client i
// on URLs[i % len]), Config.NodePIDs reads each node's CPU and RSS from
// /proc, and Idle reports how many documents each node took
// (collabd_cluster_owned_documents). Fanout's writer times its applied
// and durable acks, and may sit on its own node (Fanout.WriterURL).
//
// # Concurrency and bounds
//
// A scenario owns every goroutine it starts and waits for them before it
// returns; each runs under the scenario's context, whose deadline bounds the
// run (Config.MaxTime). Every loop is paced by a ticker and ends with the
// context or its own deadline. Nothing here is package state: two scenarios
// may run at once in one process.
package loadgen
