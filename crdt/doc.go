// Package crdt is collabd's document model: a set of named Text roots, each a
// sequence CRDT over Unicode code points, with run-length encoded ops, state
// vectors, a bounded pending buffer, and compact msgpack encodings that treat
// their input as hostile.
//
// # Model
//
// Every replica is an agent with a random 64-bit AgentID. Each op an agent
// makes (one inserted code point, or one deletion) gets the next seq of that
// agent, starting at 0, so an agent's seqs are dense and an ID (agent, seq)
// names one op. A StateVector maps agent -> next seq and says exactly which
// ops a replica has seen; Doc.EncodeDiff(sv) returns exactly the ops a replica
// with state vector sv lacks. StateVector.Version (the number of ops seen) is
// a monotonic document version.
//
// A Text is a sequence of items, one per inserted code point, in document
// order. Deleted items stay as tombstones (their text may be dropped) so that
// concurrent ops can still refer to them. An insert names its left origin (the
// item just before the insertion point) and its right origin (the item just
// after it, tombstone or not); a delete names the items it removes.
//
// # Ordering concurrent inserts: FugueMax
//
// Concurrent inserts at the same place are ordered by FugueMax (Weidner &
// Kleppmann, "The Art of the Fugue", 2023), in the origin-left/origin-right
// formulation that reference-crdts calls "YjsMod" and diamond-types uses. A
// new item is placed after its left origin, scanning the items up to its right
// origin: an item whose left origin is further left ends the scan; an item
// with the same left origin is skipped when its right origin is further right,
// or compared by (AgentID, seq) when the right origins are equal (lower agent
// first). The result is maximally non-interleaving: two users typing at the
// same position, forwards or backwards, never get their characters mixed.
//
// # Representation
//
// Items live in runs: consecutive ids of one agent, typed one after the other,
// sharing a right origin and a deleted state, so typing "hello" is one run of
// 5, not 5 items. Runs sit in a B+tree whose inner nodes count visible code
// points (position -> run in O(log n)) and all items (the total order used by
// integration). A dense per-agent index maps every seq to the leaf that holds
// it (id -> run in O(log n), a leaf scan). Text is kept as code points in an
// append-only arena that runs point into: there are no per-character heap
// objects. Adjacent tombstone runs that continue each other are merged.
//
// The history (per agent, spans of inserts and deletes with their targets) and
// the order in which the replica applied ops (a causal order) let EncodeDiff
// produce ops for any peer in an order that applies without waiting.
//
// # Invariants
//
//   - Replicas that have applied the same set of ops have the same text in
//     every root and the same state vector, whatever the delivery order.
//   - An agent's ops apply in seq order; an op whose seq is below the state
//     vector is a duplicate (ignored, or trimmed when it overlaps).
//   - An op is applied only when its origins or targets are present; otherwise
//     it waits in the pending buffer (bounded by Limits.MaxPending). Overflow
//     rejects the update; nothing is dropped silently.
//   - FugueMax converges only if an insert's origins were adjacent when it was
//     made. An insert with an item of its known causal past (its author's
//     earlier ops, the origins' agents' ops up to the origins) between its
//     origins cannot come from a correct replica and is refused (ErrInvalidOp).
//     Trust model: this check is sound (it never refuses an honest op) but not
//     complete: a peer that forges origins skipping an item it knows only
//     transitively (e.g. the left origin of one of its own earlier ops) is not
//     detected, and replicas that apply such an op in different orders can
//     diverge. Proving that needs per-op causal metadata (Byzantine-tolerant
//     CRDTs, future work); collabd authenticates every writer, so such an op
//     is attributable to one token.
//   - An update is checked whole before anything is applied: a decode error,
//     an invalid op or a limit rejects it and leaves the document unchanged.
//   - Decoders check every declared length against the bytes that remain and
//     against Limits before allocating, so allocation is proportional to the
//     input; errors are *DecodeError. A compressed snapshot body is measured
//     before memory is allocated for it (its declared size is capped by
//     Limits.MaxSnapshot and never trusted); one that decompresses to more
//     than declared is a *DecodeError wrapping ErrTooLarge.
//   - Anything a Doc accepted can be saved and loaded again under the same
//     Limits: every write path (Text.Insert, Text.Delete, ApplyUpdate) admits
//     an op only if the document stays within what LoadSnapshot enforces
//     (roots with items plus roots named by pending ops <= MaxRoots, root
//     names <= MaxRootName bytes of UTF-8 (ErrRootName), agents with ops plus
//     agents of pending ops <= MaxAgents, items <= MaxItems, and
//     Doc.SizeBound, an upper bound on the snapshot body, <= MaxSnapshot);
//     otherwise it returns ErrTooLarge or ErrRootName and changes nothing.
//     CheckRootName lets a caller refuse a root name before it edits.
//   - LoadSnapshot reads the texts the snapshot caches and checks every
//     length it reads, but builds and checks the CRDT structure only on its
//     first use (an op applied or made, a diff, a relative position,
//     Doc.Verify), or at once with Options.Eager. A structure that fails
//     that check makes the document refuse every such use with the
//     *DecodeError an eager load would have returned, its texts unchanged:
//     replicas of the same bytes never diverge (docs/FORMATS.md, "Loading").
//   - Positions and lengths are checked without overflow (CheckRange):
//     negative values and ranges past the end, however large, are
//     ErrPosition.
//
// # Encodings
//
// Updates, state vectors and relative positions are msgpack arrays whose first
// element is a format version; snapshots are a msgpack array around a compact
// columnar body, LZ4-compressed by default (DEFLATE with CompressSmall). The layouts are specified in
// docs/FORMATS.md. The codec is hand-written (package internal/mp) rather
// than reflection-based: no reflection per op, and no library allocation from
// a declared length (docs/SECURITY.md). Tests cross-check the
// bytes with github.com/vmihailenco/msgpack/v5.
//
// # Observing changes
//
// Doc.Observe reports every visible change, local or remote (pending ops
// included when they are released), as a code-point splice on the text it
// happened to, in order: the server turns them into position-based deltas
// for HTTP followers, and editors into their own transactions.
//
// # Concurrency
//
// Nothing in this package starts goroutines or locks. A Doc and its Texts
// must be used by one goroutine at a time; in collabd that is the document's
// owner goroutine.
package crdt
