// Package server is collabd's session manager: it routes binary CRDT
// updates (docs/PROTOCOL.md) per document to a single owner goroutine, which
// applies them, fans them out, persists them, acks them and keeps the
// document's presence. Sessions arrive over a WebSocket (transport_ws.go) or
// the SSE + POST fallback (transport_rt.go); HTTP followers read the same
// documents through the JSON API, SSE events and long polls (http_*.go,
// docs/HTTP.md, docs/openapi.yaml).
//
// Files: server.go (Server, WebSocket upgrade, pinger, shutdown), session.go
// (one connection: queue, writer, routing; an owner.Subscriber and
// owner.Author), transport_ws.go and transport_rt.go (the WebSocket and the
// SSE + POST fallback), follow.go (HTTP followers, also Subscribers),
// engine_native.go (crdt.Doc as an owner.Engine), engine_yjs.go (the
// crdt/yjs engine as an owner.Engine), store.go (bbolt as an
// owner.Store), http_docs.go (the document API), http_feed.go + delta.go
// (SSE and long poll), guard.go (the Host, Origin and request body rules
// every HTTP request passes first), auth.go (claims and grants), authn.go
// (the one authentication path: tokens, then the auth callback),
// auth_keys.go (PEM and JWKS public keys), auth_webhook.go (the auth
// callback and its cache), sign.go (the Collabd-Signature HMAC), config.go,
// metrics.go. The document owner itself, its registry and memory governor
// are package server/owner (see its doc.go for the state machine).
//
// # Concurrency
//
//   - Each document has exactly one owner (server/owner) while it is
//     loaded, run by at most one goroutine at a time; it alone touches the
//     document's replica. A quiet owner sleeps without a goroutine until a
//     message or its alarm wakes it (server/owner/sleep.go). The owner
//     registry maps ids to owners under one mutex; sessions hold a
//     reference on each owner they joined, and an owner unloads only with no
//     references and an empty inbox, checked under that mutex, so a request
//     never reaches an owner that is leaving and there are never two owners.
//   - Each connection has a read loop (decodes and routes frames; waits when
//     an owner's inbox is full, which slows that connection only) and a
//     writer goroutine that exists only while its queue (bounded in bytes)
//     has frames, so an idle connection costs one goroutine, with a 2 KiB
//     stack: on plain TCP the read loop waits for its socket a few frames
//     deep (waitReadable) and reads and handles each burst of frames on a
//     goroutine it waits for (offload), whose deeper stack is freed after
//     it; WebSocket pongs are taken before gorilla, which would wait deep
//     after one (takePongs). Elsewhere (TLS, the fallback) only the deep
//     work of a hello (authentication) or a join (a document load) is
//     offloaded, and the read loop keeps 4 KiB. The writer
//     drains the whole queue at once and, on a WebSocket, corks the
//     connection around it (corkconn.go), so several frames go out in one
//     writev; pings and pongs written meanwhile queue behind them. One server-wide
//     pinger queues protocol Ping frames (in 16 groups spread over the
//     interval, so writers do not all start at once) (not WebSocket control pings, which
//     browsers never see); token expiry is a timer. Owners enqueue
//     without blocking; a connection whose queue overflows is closed with
//     CodeSlow and resyncs by state vector when it reconnects. An owner never
//     blocks on a session.
//   - Authentication runs on the goroutine of the request or of the
//     session's read loop: a JWKS fetch for an unknown kid or a call to the
//     auth callback blocks only that request or connection, bounded by its
//     timeout. With a JWKS URL one more goroutine refreshes the keys
//     periodically; the Server owns it and Shutdown stops it.
//   - Owners never block on storage: they submit to the store's group
//     commit without waiting (a full queue reloads the document and the
//     sessions resend) and select on the oldest pending commit (commits
//     complete in order), acking "durable" when it lands. Compaction runs in
//     a goroutine the owner waits for before unloading.
//   - A panic in an owner is recovered: the owner drops its state of the
//     document (waiting for commits already submitted), tells its sessions
//     to rejoin (CodeDocUnloading) and reloads from storage; the goroutine,
//     its inbox and the references to it stay, so no request is lost. A
//     panic in a session's goroutine closes that session (CodeInternal).
//   - Every goroutine is counted in Server.wg and stops on Shutdown.
//
// # Acks
//
// An update is decoded once, by the owner's engine, which asks the session
// (owner.Author) to admit it before anything applies: its ops' agents must
// be ones the session claimed (else CodeForgedAgent closes the session),
// at most MaxOpsPerBatch ops, within the op rate.
//
// An update is acked twice: AckApplied once the owner has applied it and
// enqueued it to every other session (Applied = document version), and
// AckDurable once the log entry holding it is committed and fsynced. A failed
// load refuses the document (every request gets CodeStorageFailed); it never
// serves or persists an empty replacement.
//
// Ops that wait in the document's pending buffer (their dependencies have
// not arrived) are stored as they came and acked like any other batch; the
// update that releases them is fanned out as the diff since the state before
// it, to every subscriber including its author, so everyone gets the
// released ops.
//
// # Memory governor
//
// The registry loads at most MaxLoadedDocs documents whose estimated
// replica memory stays under MaxReplicaBytes: a load past a cap asks the
// least recently used unreferenced owners to unload and waits briefly for
// them, else it is refused with the retryable CodeOverloaded; an owner
// refuses growing updates while the total is over its cap. Joins are rate
// limited per connection, long-lived connections (sessions and HTTP
// followers) share MaxConns and MaxConnsPerIP, and request bodies in flight
// share MaxBodyBytes. docs/SECURITY.md lists every limit.
//
// # Auth and limits
//
// authn.go checks JWTs (HS256 with the shared secret; RS256, ES256 and
// EdDSA with PEM or JWKS keys; header, token query parameter, or the hello
// frame), then the auth callback when one is configured; auth.go turns
// claims into grants and checks the exact-match Origin allowlist (docs/AUTH.md
// and docs/INTEGRATION.md); config.go lists every limit
// with its default. permessage-deflate is not offered: gorilla's read limit
// counts compressed bytes, so a compressed frame could expand past
// MaxFrame; collabd's updates are compact msgpack already.
//
// Decisions: joining a document already joined restarts its sync (the
// subscription stays); leaving a document not joined is CodeNotJoined.
package server
