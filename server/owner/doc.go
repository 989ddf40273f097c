// Package owner is collabd's document owner: one goroutine per loaded
// document that alone touches its replica, applies updates, fans them out,
// persists them, acks them, keeps the document's presence and unloads it
// when idle. It imports no transport and no storage: it sees the world
// through three interfaces it declares,
//
//   - Engine: the replica (collabd's native text CRDT, a Yjs document):
//     apply, state vector, diff, snapshot, views, server-side edits;
//   - Store: where the document lives (bbolt on one node, a replicated log
//     in a cluster): load, submit (returns a Pending), compact, delete;
//   - Subscriber: a WebSocket or fallback session, an SSE or long-poll
//     follower, a session forwarded from another node: deliver (never
//     blocking), deliver soft (presence, droppable), liveness;
//
// and the server (package server) puts bbolt, crdt.Doc, sessions and
// followers behind them. A Registry maps ids to owners (one per document),
// starts and waits for their goroutines, and is the memory governor.
//
// # Messages
//
// Everything reaches an owner as a typed message (messages.go) in its
// inbox, handled by one type switch (Owner.handle): Join, Leave, Update,
// SetPresence (sessions); Follow, Unfollow (HTTP followers); Read, Edit,
// Import, Delete, Checkpoint, Restore (the HTTP API: each carries a reply
// channel of capacity 1, answered without blocking). No closure ever runs
// on the owner. A session's presence sets after its first one on a
// document skip the inbox: it leaves its latest state in its PresenceSlot
// (Owner.PostPresence) and the owner takes every slot's state when it
// flushes presence (presencebox.go: one wake-up per flush, not per set). Version history (versions.go) reaches the store through a
// fourth interface, VersionStore.
//
// # States
//
//	             Acquire
//	                │
//	                ▼
//	 ┌───────── loading ──────────┐ load failed (corrupt, storage down)
//	 │ loaded        │            ▼
//	 │               │         refused ── every request answered with the
//	 │               │            │        refusal; leaves once unreferenced;
//	 │               │            │        storage down (not corrupt, deleted
//	 │               │            │        or panicked): a Join, Follow, Read or
//	 │               │            │        Edit tries the load again first
//	 ▼               │            │
//	serving ◄────────┘            │
//	 │  │ ▲ panic / store refused a submit:
//	 │  │ └── drop state, tell subscribers to rejoin, reload (loading)
//	 │  │ Delete (tombstone durable)
//	 │  └────────────────────────► refused (deleted)
//	 │ ▲ quiet (sleep.go): subscribed; no message, commit, backlog,
//	 │ │ compaction or presence flush pending ──► asleep: no goroutine,
//	 │ │    no timer but one alarm; the replica stays (a never-written
//	 │ │    document drops it: made anew when needed)
//	 │ └── a message, an eviction request, the alarm (presence expiry,
//	 │     automatic version) or Shutdown wakes it ◄──┘
//	 │ idle: no subscriber, commit, compaction, reference or message
//	 │ (IdleUnload passed, or the registry asked for room)
//	 ▼
//	unloaded ◄── Shutdown: waits for the commits in flight, acks them
//	             Disown (cluster mode, lease lost): the same, at once; its
//	             subscribers are told to rejoin (elsewhere)
//
// While serving and awake, the owner's loop selects on: its inbox; the
// head of its commit queue (commits complete in submission order; acks "durable" go out
// in that order); a finished compaction; the presence flush timer (at most
// one flush per PresenceInterval), the presence box's signal and the
// expiry ticker; the version quiet
// timer (an automatic version after VersionQuiet without a change); the
// registry's eviction request; the idle timer; shutdown. An unload or a
// shutdown first takes the automatic version the document owes.
//
// # Invariants
//
//   - One owner per document per process: the registry creates owners under
//     its lock and unregisters one only when nothing references it and its
//     inbox is empty.
//   - At most one goroutine runs a document at any time: an owner goes to
//     sleep and is woken under its own mutex, and a message sent while it
//     decides either keeps it awake or wakes it (sleep.go). Messages keep
//     their order across a sleep: they wait in the same inbox.
//   - Memory never holds an op that storage will not: every new op is
//     submitted after it applies; a submit the store refuses reloads the
//     document from storage. An update is fanned out (in join order) and
//     acked applied at once, before its commit (docs/PROTOCOL.md, "Fan-out
//     does not wait for the commit"), and acked durable
//     when its commit (and every commit before it) has landed; a resend of
//     stored ops stores nothing and is durable once the commits before it are.
//   - A session's batches apply in order: after a rejected batch its later
//     batches on the document are rejected too until it rejoins.
//   - The owner never blocks on a subscriber (Deliver must not block; a
//     subscriber that reports false is dropped and its peer leaves presence
//     at once) or on the store (Submit and Delete return a Pending; a full
//     store queue is ErrBusy: the update waits in the owner's backlog and is
//     submitted, in order, when there is room; past MaxBacklogBytes new
//     updates are refused before they apply, retryable). It waits for the
//     store only to finish commits already submitted before it drops its
//     state (shutdown, panic, a failed submit), and runs compactions on a
//     goroutine the registry owns.
//   - Time comes from the owner's timers only (tested under testing/synctest
//     with fake engines, stores and subscribers: owner_test.go).
//
// An Owner's methods other than Send, ID, Done, Evict and Asleep are for
// the goroutine running it.
package owner
