// Package cluster is collabd's cluster mode machinery on NATS JetStream
// (issue 15, docs/CLUSTER.md): which nodes are live, which node should own
// a document, and the lease that makes one node its only owner.
//
//   - Members: the live nodes, one key per node in the KV bucket
//     "<Prefix>_nodes", heartbeated every TTL/3 and expiring TTL after the
//     last heartbeat (the servers put a marker, so watchers see it); Leave
//     deletes it at once.
//   - Place and Rank: rendezvous hashing of a document over the live
//     nodes: even spread, and a join or leave moves only the documents the
//     node wins or held.
//   - Leases: one key per document in the KV bucket "<Prefix>_leases"
//     (keys expire TTL after their last write, default 5 s). Acquire
//     creates the key if absent; a goroutine renews held leases by
//     revision every TTL/3; Release (and Close, on a graceful stop)
//     deletes the key for an immediate hand-over; AwaitFree waits for a
//     lease to be released or to expire. The revision that created a lease
//     is its fencing epoch, which storage/jetstream stamps on the
//     document's log: epochs of later owners are higher.
//   - Store: storage/jetstream as the owner's owner.Store. A document loads
//     only under this node's lease (ErrNotOwner otherwise) and is opened
//     for writing at the lease's epoch, so a deposed owner's writes fail
//     and its reload is refused.
//
// Leases, Lease and Members are safe for concurrent use. A Leases owns its
// renewer goroutine (and the renewals of each round, which it waits for),
// a Members its heartbeat and watch goroutines; Close and Leave stop them.
// Timing is driven by tickers that tests can replace (Renew, Beat)
// whose ticks carry the time renewals count from, and a clock (Now).
//
//   - Node: the server's routing in cluster mode. Acquire gives a
//     subscriber (a session, a follower, an HTTP request) a Ref to the
//     document's owner: here, under this node's lease, in the server's
//     owner.Registry on Store; or on the node holding the lease (or first
//     in placement), reached over NATS: subscribers' messages on
//     "<Prefix>.fwd.<node>", the owner's events back on "<Prefix>.ev.<node>",
//     requests by request/reply on "<Prefix>.req.<node>" (wire.go and
//     request.go: hostile-input decoders, FuzzDecodeWire). One guard
//     goroutine per owned document disowns it when its lease is lost
//     (owner.Disown: subscribers told to rejoin), gives it up when idle,
//     and releases its writer and lease. A Join or Follow after a move
//     finds the new owner.
//
// A Node owns its goroutines (guards, one worker per subscriber forwarded
// to it, forwarded requests, one outbox publisher per subscriber node, a
// membership watcher, the hand-over loop, one lease wait and one failover
// claim per document at most); Close stops them.
//
// An update goes to each subscriber node once in full, its other
// sessions get a reference to it (fanout.go). Owners never publish
// themselves: they push into the subscriber node's byte-bounded outbox,
// past whose bound that node's subscribers are dropped (outbox.go).
//
// Membership changes move documents (handover.go): a node that joined is
// handed the documents it wins once it has been live for HandoverAfter,
// at most HandoverRate a second; the documents of a node that left, with
// subscribers here, are claimed as soon as their lease is free by the
// node placement now picks.
//
// Not here yet: the rest docs/CLUSTER.md "Still to be wired" lists.
package cluster
