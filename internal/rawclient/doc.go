// Package rawclient is a raw-protocol collabd client on one WebSocket, for
// the load generator (internal/loadgen) and the fault injector
// (internal/chaos): thousands of them must be cheap, and a test must be able
// to make one misbehave (stop reading, narrow its TCP window), which the
// full client (clients/go) never does.
//
// A Conn does the hello on Dial, joins one document with Join, then its
// reader Run reads until the connection ends: it answers the server's
// keepalive Ping frames with Pong (the server closes a connection that
// never answers), counts bytes and frames, passes the ops of every
// fanned-out update to a callback, and applies them to the replica if the
// Conn keeps one (Options.Replica). Every read has a deadline: Read its
// ctx's (or Options.Timeout), Run one derived from the ping interval the
// server announced in its Welcome, so a server gone silent ends Run. It does not reconnect, queue offline
// edits or check acks (Options.OnAck only reports them): that is clients/go.
//
// # Misbehaving on purpose
//
// Options.RcvBuf makes a narrow socket (a small SO_RCVBUF and TCP_MAXSEG),
// so a Conn whose owner stops calling Run fills the server's outbound
// queue quickly: the slow-consumer path.
//
// # Concurrency
//
// Dial, Join, Read and Insert are for the owner before Run starts; from the
// call of Run on, only Run's goroutine reads and touches the replica, and
// Send (and Insert, which sends) may be called by one other goroutine at a
// time (writes are serialized with Run's pongs). Doc, like the replica, may
// be read only before Run or after it has returned. Close, Alive, Bytes and
// Frames may be called from any goroutine. A Conn starts no goroutine.
package rawclient
