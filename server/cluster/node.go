package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
	"github.com/collabd/collabd/storage/jetstream"
)

// NodeConfig is what a Node runs on. The connection, leases, members, logs
// and registry stay the caller's; the registry's Store must be NewStore
// over the same Leases and logs.
type NodeConfig struct {
	Conn     *nats.Conn
	Leases   *Leases
	Members  *Members
	Logs     *jetstream.Store // writers are released when a document is given up
	Registry *owner.Registry
	// Prefix names the forwarding subjects ("<Prefix>.fwd.<node>",
	// "<Prefix>.ev.<node>"); "" is "collabd".
	Prefix string
	// IdleUnload: a document nobody here uses is given up (owner unloaded,
	// lease released) after this; 0 is 30 s.
	IdleUnload time.Duration
	// Admit checks the updates of forwarded native sessions on the owner
	// node (their node cannot: the owner decodes them).
	Admit AdmitLimits
	// DecodeLimits bound the protocol frames inside forwarded messages.
	DecodeLimits protocol.DecodeLimits
	// QueueLen bounds the messages of one forwarded subscriber waiting for
	// its owner; past it the subscriber is dropped (told to rejoin). 0 is 1024.
	QueueLen int
	// NewEngine loads a replica from its engine snapshot: the owner node
	// of a forwarded import or restore loads the replica it carries (the
	// server's owner.Config NewEngine). Nil: those requests are refused.
	NewEngine func(kind owner.Kind, snapshot []byte) (owner.Engine, error)
	// MaxBodyBytes bounds the snapshot bytes of forwarded imports and
	// restores being loaded here at once, and the bytes of requests and
	// answers larger than one NATS message held here (parts.go); past it
	// they are refused (CodeOverloaded, retryable). 0 is 256 MiB.
	MaxBodyBytes int64
	// HandoverAfter: a node that joins is handed the documents placement
	// now gives it once it has been live this long without a break
	// (handover.go); 0 is the lease TTL.
	HandoverAfter time.Duration
	// HandoverRate bounds the documents given up to joined nodes, per
	// second; 0 is 100.
	HandoverRate float64
	// OutboxBytes bounds the events queued for one subscriber node
	// (outbox.go); past it that node's subscribers are dropped and told
	// to rejoin (CodeSlow). 0 is 32 MiB.
	OutboxBytes int
	// JoinAnswer bounds the wait for the first answer to a forwarded Join
	// or Follow (a sync, an error: any event of the owner node for it);
	// past it the subscriber is told to rejoin (answer.go). 0 is 10 s.
	JoinAnswer time.Duration
	Logger     *slog.Logger
}

// AdmitLimits are the checks a forwarded native session's updates get.
type AdmitLimits struct {
	MaxOps int     // ops in one update (0: no limit)
	Rate   float64 // code points per second (0: no limit)
	Burst  int
}

// Node is this node's side of cluster mode's routing (docs/CLUSTER.md
// "Ownership" and "Forwarding"): Acquire gives a subscriber a Ref to a
// document's owner, here (this node holds the lease; the owner runs in
// the Registry on NewStore) or on the node that holds it, through NATS.
// It owns its goroutines: one guard per document owned here, one worker
// per subscriber forwarded to it, a membership watcher; Close stops them.
type Node struct {
	cfg    NodeConfig
	id     string
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	// reqSlots bounds the forwarded requests served at once (request.go).
	reqSlots chan struct{}
	bodies   *budget       // snapshot bytes of forwarded imports and restores being loaded, and of part sequences held
	held     *partsHeld    // requests and answers in parts (parts.go)
	streams  *partsHeld    // fwd and event messages in parts
	partSeq  atomic.Uint64 // ids of the part sequences this node sends (parts.go); their count

	leaseLosses atomic.Int64 // documents disowned because their lease was lost
	handovers   atomic.Int64 // documents given up to a joined node
	leaseWaits  atomic.Int64 // waits for a dead node's lease started (one per document at a time)
	outboxDrops atomic.Int64 // times a subscriber node's subscribers were dropped (outbox full, publish failed)
	fanFull     atomic.Int64 // updates published in full to a subscriber node
	fanRefs     atomic.Int64 // updates published as a reference to one already sent

	// mu guards local, remotes, refs, fanOut, fanIn, handed, waits,
	// claims, outboxes, outboxStop, nextKey and closed,
	// and every entry's users, idle and closing. It may be held while
	// taking a Ref's mu (dropDead), never the other way round; no I/O or
	// channel send under it.
	mu      sync.Mutex
	local   map[string]*entry
	remotes map[remoteKey]*remoteSub
	refs    map[uint64]*Ref
	fanOut  map[string]map[string]*fanOut // doc -> subscriber node (fanout.go)
	fanIn   map[string]*fanIn             // doc (fanout.go)
	handed  map[string]handedDoc          // documents just handed over (handover.go)
	waits   map[string]chan struct{}      // doc → closed when the wait for its dead holder's lease ends
	claims  map[string]bool               // documents being claimed after their node left
	// outboxes are the queues to subscriber nodes (outbox.go), each
	// stopped by its outboxStop when the node leaves.
	outboxes   map[string]*outbox
	outboxStop map[string]context.CancelFunc
	nextKey    uint64
	closed     bool
}

// ErrNodeClosed is returned by Acquire after Close.
var ErrNodeClosed = errors.New("cluster: node closed")

// errHandedOver: a forwarded request or subscriber met a document this
// node has just handed over to a joined node.
var errHandedOver = errors.New("cluster: document handed over to another node")

// NewNode subscribes to this node's forwarding subjects and starts the
// membership watcher.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "collabd"
	}
	if cfg.IdleUnload <= 0 {
		cfg.IdleUnload = 30 * time.Second
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 20
	}
	if cfg.HandoverAfter <= 0 {
		cfg.HandoverAfter = cfg.Leases.TTL()
	}
	if cfg.HandoverRate <= 0 {
		cfg.HandoverRate = 100
	}
	if cfg.OutboxBytes <= 0 {
		cfg.OutboxBytes = 32 << 20
	}
	if cfg.JoinAnswer <= 0 {
		cfg.JoinAnswer = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, id: cfg.Leases.Node(), log: cfg.Logger, ctx: ctx, cancel: cancel,
		local: map[string]*entry{}, remotes: map[remoteKey]*remoteSub{}, refs: map[uint64]*Ref{},
		fanOut: map[string]map[string]*fanOut{}, fanIn: map[string]*fanIn{},
		handed: map[string]handedDoc{}, waits: map[string]chan struct{}{}, claims: map[string]bool{},
		outboxes: map[string]*outbox{}, outboxStop: map[string]context.CancelFunc{},
		reqSlots: make(chan struct{}, maxReqInFlight), bodies: &budget{max: cfg.MaxBodyBytes}}
	fs, err := cfg.Conn.Subscribe(n.fwdSubject(n.id), n.onFwd)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	es, err := cfg.Conn.Subscribe(n.evSubject(n.id), n.onEvt)
	if err != nil {
		_ = fs.Unsubscribe()
		cancel()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	n.held = newPartsHeld(n.bodies, reqTimeout, time.Now)
	n.streams = newPartsHeld(n.bodies, reqTimeout, time.Now)
	n.subs = []*nats.Subscription{fs, es}
	for _, s := range []struct {
		subject string
		h       nats.MsgHandler
	}{{n.reqSubject(n.id), n.onReq}, {n.partSubject(n.id), n.onPart}, {n.getSubject(n.id), n.onGet}} {
		sub, err := cfg.Conn.Subscribe(s.subject, s.h)
		if err != nil {
			n.unsubscribe()
			cancel()
			return nil, fmt.Errorf("cluster: subscribe: %w", err)
		}
		n.subs = append(n.subs, sub)
	}
	// Unlimited pending: a slow consumer would drop forwarded messages
	// silently; the per-subscriber queues bound the work instead.
	_ = fs.SetPendingLimits(-1, -1)
	_ = es.SetPendingLimits(-1, -1)
	if err := cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		n.unsubscribe()
		cancel()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	// Messages published while the connection was down are lost (core
	// NATS): on a reconnect every forwarded relation starts over. The
	// caller's own handler, if any, still runs first.
	prev := cfg.Conn.Opts.ReconnectedCB
	cfg.Conn.SetReconnectHandler(func(c *nats.Conn) {
		if prev != nil {
			prev(c)
		}
		n.onReconnect()
	})
	n.goroutine(n.watchMembers)
	n.goroutine(n.handoverLoop)
	return n, nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.id }

func (n *Node) fwdSubject(node string) string { return n.cfg.Prefix + ".fwd." + node }
func (n *Node) evSubject(node string) string  { return n.cfg.Prefix + ".ev." + node }

func (n *Node) goroutine(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) unsubscribe() {
	for _, s := range n.subs {
		_ = s.Unsubscribe() // the connection is the caller's; nothing to do about a failure
	}
}

// Owned is the number of documents this node owns now.
func (n *Node) Owned() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.local)
}

// Stats is what a node does, for metrics.
type Stats struct {
	Owned       int   // documents owned here
	ForwardedIn int   // subscribers of other nodes served here
	Routed      int   // subscribers here whose owner is on another node
	LeaseLosses int64 // documents disowned since the start: their lease was lost
	Handovers   int64 // documents given up to a node that joined
	LeaseWaits  int64 // waits for a dead node's lease (one per document at a time, however many rejoin)
	OutboxDrops int64 // times a subscriber node's subscribers were dropped: its outbox was full (or a publish failed)
	FanFull     int64 // updates published in full to subscriber nodes
	FanRefs     int64 // updates published as references (the node had them)
	PartsSent   int64 // requests, answers and messages larger than one NATS message this node sent in parts
}

// Stats counts what the node does now.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	refs := make([]*Ref, 0, len(n.refs))
	for _, r := range n.refs {
		refs = append(refs, r)
	}
	st := Stats{Owned: len(n.local), ForwardedIn: len(n.remotes), LeaseLosses: n.leaseLosses.Load(),
		Handovers: n.handovers.Load(), LeaseWaits: n.leaseWaits.Load(), OutboxDrops: n.outboxDrops.Load(),
		FanFull: n.fanFull.Load(), FanRefs: n.fanRefs.Load(), PartsSent: int64(n.partSeq.Load())}
	n.mu.Unlock()
	for _, r := range refs {
		if r.Remote() {
			st.Routed++
		}
	}
	return st
}

// Ready reports whether the node can serve: it is among the live members
// and the lease bucket answers (JetStream has a leader for it).
func (n *Node) Ready(ctx context.Context) error {
	live, _ := n.cfg.Members.Live()
	if !slices.Contains(live, n.id) {
		return fmt.Errorf("node %s is not among the live members %v", n.id, live)
	}
	if _, _, err := n.cfg.Leases.Holder(ctx, "readyz"); err != nil && !errors.Is(err, natsjs.ErrKeyNotFound) {
		return fmt.Errorf("lease bucket: %w", err)
	}
	return nil
}

// Close stops forwarding, gives up every document owned here (their
// owners must have exited: call it after the Registry's Shutdown) and
// releases their leases at once, within ctx.
//
// The subscribers forwarded here are told to rejoin once the leases are
// released, so that their rejoin finds the document free.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	forwarded := make([]*remoteSub, 0, len(n.remotes))
	for _, rs := range n.remotes {
		forwarded = append(forwarded, rs)
	}
	n.mu.Unlock()
	n.unsubscribe()
	n.cancel()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	n.held.clear()
	n.streams.clear()
	for _, rs := range forwarded {
		rs.publish(&owner.ErrorEvent{Doc: rs.doc, Code: protocol.CodeDocUnloading,
			Message: "the document's node is shutting down; rejoin", RetryAfter: 0, End: true})
	}
	if err := n.cfg.Conn.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("cluster: flush: %w", err)
	}
	return nil
}

// entry is a document owned here: its lease, its owner (the entry holds
// one Registry reference) and the Refs and forwarded subscribers using it.
type entry struct {
	doc      string
	ready    chan struct{} // closed once loaded or failed
	err      error         // the load's failure (set before ready is closed)
	lease    *Lease
	o        *owner.Owner
	closeReq chan struct{} // idle: the guard should give the document up (capacity 1)
	handover chan string   // the guard should give the document up to this joined node (capacity 1)
	gone     chan struct{} // closed once given up (lease released)

	// guarded by Node.mu
	users   int
	idle    *time.Timer
	closing bool
}

// use takes a user of a document owned here, claiming its lease when
// nobody holds it. With route set, a document held by another node, or
// placed on another node, is not claimed: its node is returned instead.
func (n *Node) use(ctx context.Context, doc string, route bool) (*entry, string, error) {
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, "", ErrNodeClosed
		}
		if e := n.local[doc]; e != nil {
			if e.closing {
				n.mu.Unlock()
				select {
				case <-e.gone:
					continue
				case <-ctx.Done():
					return nil, "", ctx.Err()
				}
			}
			e.users++
			if e.idle != nil {
				e.idle.Stop()
				e.idle = nil
			}
			n.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				n.unuse(e)
				return nil, "", ctx.Err()
			}
			if e.err != nil {
				n.unuse(e)
				return nil, "", e.err
			}
			return e, "", nil
		}
		n.mu.Unlock()
		if route {
			node, err := n.ownerOf(ctx, doc)
			if err != nil {
				return nil, "", err
			}
			if node != n.id {
				return nil, node, nil
			}
		}
		e := &entry{doc: doc, ready: make(chan struct{}), closeReq: make(chan struct{}, 1), handover: make(chan string, 1),
			gone: make(chan struct{}), users: 1}
		n.mu.Lock()
		if n.local[doc] != nil || n.closed {
			n.mu.Unlock()
			continue
		}
		if to := n.handedToLocked(doc); to != "" && !route {
			// Just handed over: a forwarded join or request that raced the
			// hand-over does not claim it back; its origin looks again.
			n.mu.Unlock()
			return nil, to, errHandedOver
		}
		n.local[doc] = e
		n.mu.Unlock()
		holder, err := n.load(ctx, e)
		if err != nil {
			n.mu.Lock()
			delete(n.local, doc)
			n.mu.Unlock()
			e.err = err
			close(e.ready)
			close(e.gone)
			if holder != "" && route {
				return nil, holder, nil
			}
			return nil, holder, err
		}
		close(e.ready)
		return e, "", nil
	}
}

// ownerOf is the node a document's subscribers go to: its lease's holder
// when that node is live, else (free, or held by a dead node once the
// lease expired) the first live node in its placement.
func (n *Node) ownerOf(ctx context.Context, doc string) (string, error) {
	waited, waitedRev := "", uint64(0) // the holder waited for last, and its lease's revision then
	for {
		holder, rev, err := n.cfg.Leases.Holder(ctx, doc)
		switch {
		case err == nil:
			live, _ := n.cfg.Members.Live()
			if holder == n.id || slices.Contains(live, holder) {
				return holder, nil
			}
			if holder == waited && rev != waitedRev {
				// Not live in this node's view, yet it renewed its lease
				// while this node waited for it to expire: it is alive, and
				// this node's view is behind (its membership watcher missed
				// the heartbeats, as seen after a crash's elections). Waiting
				// for the view would stall the subscriber, and every other
				// frame of its connection, for as long as the view is wrong.
				n.log.Info("cluster: a node not live in this node's view renews its lease: routed to it", "doc", doc, "holder", holder)
				return holder, nil
			}
			// A dead node's lease: it expires within the TTL. The wait is
			// bounded and the lease read again: a watcher can miss the
			// expiry (a lease bucket electing a leader meanwhile).
			if err := n.awaitDeadLease(ctx, doc, holder); err != nil {
				return "", err
			}
			waited, waitedRev = holder, rev
			continue
		case !errors.Is(err, natsjs.ErrKeyNotFound):
			return "", err
		}
		live, _ := n.cfg.Members.Live()
		if first := Place(doc, live); first != "" {
			return first, nil
		}
		return n.id, nil
	}
}

// awaitDeadLease waits until doc's lease, held by a node that is not live,
// is free, or for a lease TTL (a watcher can miss the expiry: a lease
// bucket electing a leader meanwhile). However many subscribers rejoin
// the document at once (a rejoin storm after a crash), one wait per
// document runs; the others wait for it.
func (n *Node) awaitDeadLease(ctx context.Context, doc, holder string) error {
	n.mu.Lock()
	done := n.waits[doc]
	if done == nil {
		done = make(chan struct{})
		n.waits[doc] = done
		n.leaseWaits.Add(1)
		n.log.Debug("cluster: waiting for a dead node's lease", "doc", doc, "holder", holder)
		n.goroutine(func() {
			wctx, cancel := context.WithTimeout(n.ctx, n.cfg.Leases.TTL())
			err := n.cfg.Leases.AwaitFree(wctx, doc)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && n.ctx.Err() == nil {
				n.log.Info("cluster: waiting for a dead node's lease", "doc", doc, "err", err)
				// Not at once again: a watch that fails does so again.
				t := time.NewTimer(100 * time.Millisecond)
				select {
				case <-t.C:
				case <-n.ctx.Done():
				}
				t.Stop()
			}
			n.mu.Lock()
			delete(n.waits, doc)
			n.mu.Unlock()
			close(done)
		})
	}
	n.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load acquires the document's lease (waiting out one of this node's
// earlier run) and starts its owner and guard. A lease held by another
// node is returned as that holder.
func (n *Node) load(ctx context.Context, e *entry) (string, error) {
	lease, err := n.cfg.Leases.Acquire(ctx, e.doc)
	var held *HeldError
	if errors.As(err, &held) && held.Holder == n.id {
		// Bounded, as awaitDeadLease: the watch can miss the expiry (the
		// lease bucket electing a leader meanwhile), and every user of
		// the document here waits for this load.
		wctx, cancel := context.WithTimeout(ctx, n.cfg.Leases.TTL()+time.Second)
		werr := n.cfg.Leases.AwaitFree(wctx, e.doc)
		cancel()
		if werr != nil && ctx.Err() != nil {
			return "", werr
		}
		lease, err = n.cfg.Leases.Acquire(ctx, e.doc)
	}
	if errors.As(err, &held) {
		return held.Holder, err
	}
	if err != nil {
		return "", err
	}
	o, err := n.cfg.Registry.Acquire(ctx, e.doc)
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.cfg.Leases.Release(rctx, lease) // best effort: it expires anyway
		return "", err
	}
	e.lease, e.o = lease, o
	n.goroutine(func() { n.guard(e) })
	return "", nil
}

// unuse drops a user of e; the last one arms the idle timer.
func (n *Node) unuse(e *entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.users--; e.users == 0 && !e.closing && e.o != nil {
		e.idle = time.AfterFunc(n.cfg.IdleUnload, func() {
			select {
			case e.closeReq <- struct{}{}:
			default:
			}
		})
	}
}

// closingEntry reports whether e is being given up.
func (n *Node) closingEntry(e *entry) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return e.closing
}

// guard gives the document up when its lease is lost (the owner is
// disowned: subscribers told to rejoin), when it was idle for IdleUnload
// (the owner unloads), or when its owner exited (shutdown); then the
// document's writer and lease are released.
func (n *Node) guard(e *entry) {
	lost, to := false, ""
	for done := false; !done; {
		select {
		case <-e.lease.Lost():
			lost, done = true, true
		case to = <-e.handover:
			done = true
		case <-e.closeReq:
			// Idle: closing is decided with the users counted under the
			// same lock, so that no user slips in between.
			n.mu.Lock()
			if e.users == 0 {
				e.closing, done = true, true
			}
			n.mu.Unlock()
		case <-e.o.Done():
			done = true
		case <-n.ctx.Done():
			done = true
		}
	}
	n.mu.Lock()
	e.closing = true
	if e.idle != nil {
		e.idle.Stop()
	}
	n.mu.Unlock()
	reg := n.cfg.Registry
	switch {
	case lost:
		n.leaseLosses.Add(1)
		n.log.Warn("document lease lost: disowned", "doc", e.doc, "err", e.lease.Err())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.o.Send(ctx, owner.Disown{Code: protocol.CodeDocUnloading, Message: "the document moved to another node; rejoin"})
		cancel()
	case to != "":
		// Handed over to a joined node: the commits in flight are acked,
		// the subscribers told to rejoin, the lease released at once.
		n.handovers.Add(1)
		n.markHanded(e.doc, to)
		n.log.Info("cluster: document handed over", "doc", e.doc, "to", to)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.o.Send(ctx, owner.Disown{Code: protocol.CodeDocUnloading, Message: "the document moved to node " + to + "; rejoin"})
		cancel()
		lost = true // as a lost lease from here: no evict, no second Disown
	}
	reg.Release(e.o)
	if !lost {
		e.o.Evict()
	}
	select {
	case <-e.o.Done():
	case <-e.lease.Lost():
		if !lost { // lost while unloading: disown at once
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			e.o.Send(ctx, owner.Disown{Code: protocol.CodeDocUnloading, Message: "the document moved to another node; rejoin"})
			cancel()
		}
		<-e.o.Done()
	}
	n.cfg.Logs.Release(e.doc)
	n.dropFanOut(e.doc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := n.cfg.Leases.Release(ctx, e.lease); err != nil {
		n.log.Warn("lease not released (it expires)", "doc", e.doc, "err", err)
	}
	cancel()
	n.mu.Lock()
	if n.local[e.doc] == e {
		delete(n.local, e.doc)
	}
	close(e.gone)
	n.mu.Unlock()
}
