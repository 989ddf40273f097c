// Package chaos is the fault injector behind "collabd chaos": scenarios that
// run a real `collabd serve` subprocess, hurt it, and check what clients and
// the store hold afterwards (docs: BENCHMARKS.md, "chaos and durability").
//
// # Scenarios
//
//   - Kill9: writers (clients/go) append unique markers to documents and
//     record which were acked durable; the server is SIGKILLed at random
//     moments (a seeded RNG) and restarted on the same data directory and
//     port. A Jepsen-style set check then reads every document: each marker
//     acked durable must be present exactly once (lost = duplicated = 0);
//     markers present but never acked durable are "recovered" (fine).
//   - Slow: subscribers on one document and a writer; one raw-protocol
//     subscriber (internal/rawclient) with a tiny TCP receive buffer stops
//     reading. It must be
//     closed as slow (4008) within a bound, and the others' p99 latency must
//     stay within a factor of a baseline run without it.
//   - Storm: many clients on a few documents; the server is restarted
//     (SIGTERM or SIGKILL). Every client must reconnect, the server must stay
//     up, and every replica must converge within a bound.
//   - Cluster: three `collabd serve --nats-embedded` nodes (own data
//     directories, loopback ports, routes to each other) and writers spread
//     over them through a balancer that health-checks /readyz, so most
//     sessions are forwarded. Each cycle injects one fault (a seeded
//     schedule): SIGKILL a document's owner (the lease holder, read from
//     the lease bucket), SIGKILL the ops stream's raft leader (StreamInfo
//     through a node's NATS client port), or SIGSTOP an owner past the
//     lease TTL then SIGCONT; killed nodes restart. Failover is timed from
//     the fault until every writer has a marker inserted after it acked
//     durable on every document. At the end every node's text and every
//     writer's replica are checked: each marker acked durable exactly once.
//
// Each returns a *loadgen.Result (metrics, checks, notes) so the output
// matches "collabd bench": a human table and JSON.
//
// # Concurrency and bounds
//
// A scenario owns every goroutine and subprocess it starts and waits for
// them before it returns; every loop is paced by a timer and ends with the
// scenario's context or its own deadline. Nothing here is package state.
package chaos
