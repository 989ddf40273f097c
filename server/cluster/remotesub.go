package cluster

// The owner node's side of forwarding: a subscriber of another node, the
// messages it forwards here, and the worker that hands them to the owner.

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// remoteKey names a subscriber forwarded to this node.
type remoteKey struct {
	origin string
	key    uint64
}

// remoteSub is a subscriber of another node, forwarded here: the owner's
// owner.Subscriber for it, whose events go back over NATS. Its worker
// goroutine sends its messages to the owner, in order.
type remoteSub struct {
	n        *Node
	k        remoteKey
	doc      string
	in       fwdQueue
	quit     chan struct{}
	quitOnce sync.Once

	// fixed by the first message (a Join or Follow), before the worker starts
	id       string
	subject  string
	follower bool
	root     string
	checkOps bool
	agents   []uint64
	ops      *rate.Limiter
}

var (
	_ owner.Subscriber = (*remoteSub)(nil)
	_ owner.Author     = (*remoteSub)(nil)
	_ owner.Authored   = (*remoteSub)(nil)
)

func (rs *remoteSub) ID() string      { return rs.id }
func (rs *remoteSub) Subject() string { return rs.subject }

// Seen is now: the subscriber's node watches its connection and sends a
// Leave when it ends; a node that dies is dropped by watchMembers.
func (rs *remoteSub) Seen() time.Time { return time.Now() }

func (rs *remoteSub) Deliver(ev owner.Event) bool     { return rs.send(ev, false) }
func (rs *remoteSub) DeliverSoft(ev owner.Event) bool { return rs.send(ev, true) }

// send queues ev for the subscriber's node in its outbox (outbox.go): the
// owner never waits for the node. An outbox past its bound drops the
// node's subscribers (this one too: false).
func (rs *remoteSub) send(ev owner.Event, soft bool) bool {
	select {
	case <-rs.quit:
		return false
	default:
	}
	b, ok := rs.encode(ev, soft)
	if !ok {
		return true
	}
	if !rs.n.outboxFor(rs.k.origin).push(b, soft) {
		return false
	}
	return true
}

// publish sends ev to the subscriber's node at once, even once stopped
// (Close: the outboxes have stopped).
func (rs *remoteSub) publish(ev owner.Event) bool {
	b, ok := rs.encode(ev, false)
	if !ok {
		return true
	}
	return rs.n.publish(rs.n.evSubject(rs.k.origin), b) == nil
}

// encode is ev as sent to the subscriber's node (ok false: an event not
// forwarded).
func (rs *remoteSub) encode(ev owner.Event, soft bool) ([]byte, bool) {
	var b []byte
	if u, ok := ev.(*owner.UpdateEvent); ok && !rs.follower {
		// Once per node: the first of the node's sessions gets the update,
		// the others a reference to it (fanout.go).
		seq, first := rs.n.fanSeq(rs.doc, rs.k.origin, u)
		if first {
			rs.n.fanFull.Add(1)
			b, _ = encodeEvtSeq(rs.k.key, soft, ev, "", false, seq)
		} else {
			rs.n.fanRefs.Add(1)
			b = encodeFanRef(rs.k.key, soft, rs.doc, seq)
		}
	} else {
		var ok bool
		if b, ok = encodeEvt(rs.k.key, soft, ev, rs.root, rs.follower); !ok {
			return nil, false
		}
	}
	return b, true
}

// Admit applies a native session's checks: its claimed agents, the ops
// per update and the op rate.
func (rs *remoteSub) Admit(replicas []uint64, ops, length int) error {
	if rs.checkOps {
		for _, a := range replicas {
			if !slices.Contains(rs.agents, a) {
				return &owner.Refused{Code: protocol.CodeForgedAgent, Message: "op of an agent this session did not claim"}
			}
		}
		if lim := rs.n.cfg.Admit.MaxOps; lim > 0 && ops > lim {
			return &owner.Refused{Code: protocol.CodeTooManyOps, Message: "too many ops in one update"}
		}
	}
	if rs.ops != nil && !rs.ops.AllowN(time.Now(), min(length, rs.n.cfg.Admit.Burst)) {
		return &owner.Refused{Code: protocol.CodeRateLimited, Message: "op rate exceeded; resend later"}
	}
	return nil
}

func (rs *remoteSub) stop() { rs.quitOnce.Do(func() { close(rs.quit) }) }

// stopped reports whether stop was called.
func (rs *remoteSub) stopped() bool {
	select {
	case <-rs.quit:
		return true
	default:
		return false
	}
}

// tellOrigin sends an event to the subscriber's node (not through the owner).
func (rs *remoteSub) tellOrigin(f *fwd, msg string) {
	var batch uint64
	if f.kind == fwdUpdate {
		batch = f.batch
		rs.send(&owner.AckEvent{Doc: f.doc, Batch: batch, Status: protocol.AckRejected}, false)
	}
	rs.send(&owner.ErrorEvent{Doc: f.doc, Batch: batch, Code: protocol.CodeDocUnloading, Message: msg, RetryAfter: time.Second, End: true}, false)
}

// onFwd takes a message forwarded to this node.
func (n *Node) onFwd(msg *nats.Msg) {
	data, release := n.reassemble(msg.Data)
	if data == nil {
		return
	}
	f, err := decodeFwd(data)
	if release != nil {
		release()
	}
	if err != nil {
		n.log.Warn("forwarded message refused", "err", err)
		return
	}
	k := remoteKey{f.origin, f.key}
	n.mu.Lock()
	rs := n.remotes[k]
	if rs != nil && (rs.stopped() || f.kind == fwdLeave || f.kind == fwdUnfollow) {
		// A Leave ends the subscriber now, not when its worker gets to it:
		// a rejoin (a stale Ref retargets with the same key: Leave, then
		// Join) must start a new one, or its Join would be queued behind
		// the Leave to a worker that is exiting and be lost, the session
		// waiting for a sync forever (found by collabd chaos cluster). A
		// stopped subscriber takes nothing more either.
		delete(n.remotes, k)
		if rs.stopped() {
			rs = nil
		}
	}
	if rs == nil {
		if n.closed || (f.kind != fwdJoin && f.kind != fwdFollow) {
			n.mu.Unlock()
			if f.kind != fwdLeave && f.kind != fwdUnfollow && f.kind != fwdSeen {
				tmp := &remoteSub{n: n, k: k, quit: make(chan struct{})}
				tmp.tellOrigin(f, "not subscribed on the document's node; rejoin")
			}
			return
		}
		rs = &remoteSub{n: n, k: k, doc: f.doc, in: newFwdQueue(n.cfg.QueueLen), quit: make(chan struct{}),
			id: f.subID, subject: f.subject, follower: f.kind == fwdFollow, root: f.root, checkOps: f.checkOps, agents: f.agents}
		if a := n.cfg.Admit; a.Rate > 0 {
			rs.ops = rate.NewLimiter(rate.Limit(a.Rate), max(a.Burst, 1))
		}
		n.remotes[k] = rs
		n.goroutine(rs.work)
	}
	n.mu.Unlock()
	if f.kind == fwdSeen {
		return
	}
	if !rs.in.push(f) {
		n.log.Warn("forwarded subscriber too far behind: dropped", "doc", f.doc, "origin", f.origin)
		rs.stop()
		rs.tellOrigin(f, "too far behind on the document's node; rejoin")
	}
}

// work sends the subscriber's messages to the owner, in order, claiming
// the document first; it ends on a Leave or Unfollow, when the
// subscriber's node leaves, or when the owner goes.
func (rs *remoteSub) work() {
	n := rs.n
	var e *entry
	defer func() {
		rs.stop() // first: onFwd sends nothing more to a stopped subscriber
		n.mu.Lock()
		if n.remotes[rs.k] == rs {
			delete(n.remotes, rs.k)
		}
		n.mu.Unlock()
		if e != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if rs.follower {
				e.o.Send(ctx, owner.Unfollow{Sub: rs})
			} else {
				e.o.Send(ctx, owner.Leave{Sub: rs})
			}
			cancel()
			n.unuse(e)
		}
	}()
	for {
		f := rs.in.pop()
		if f == nil {
			select {
			case <-rs.in.wake:
			case <-rs.quit:
				return
			case <-n.ctx.Done():
				return
			}
			continue
		}
		if f.kind == fwdLeave || f.kind == fwdUnfollow {
			return // the deferred Leave
		}
		if e == nil {
			var err error
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			e, _, err = n.use(ctx, rs.doc, false)
			cancel()
			if err != nil {
				e = nil
				n.log.Info("forwarded subscriber refused: document not claimed here", "doc", rs.doc, "err", err)
				rs.tellOrigin(f, "the document is not owned here; rejoin")
				return
			}
		}
		m := rs.msg(f)
		if m == nil {
			continue
		}
		if !e.o.Send(n.ctx, m) {
			if n.ctx.Err() != nil {
				return
			}
			n.unuse(e)
			e = nil
			rs.tellOrigin(f, "the document moved; rejoin")
			return
		}
	}
}

// msg is the owner message for a forwarded one (nil: nothing to send).
func (rs *remoteSub) msg(f *fwd) owner.Msg {
	switch f.kind {
	case fwdJoin:
		return owner.Join{Sub: rs, Kind: f.docKind, NoSync: f.noSync, SV: f.sv, ReadOnly: f.readOnly, User: f.user}
	case fwdReadOnly:
		return owner.ReadOnly{Sub: rs}
	case fwdUpdate:
		return owner.Update{Sub: rs, Batch: f.batch, Update: f.data}
	case fwdPresence:
		m, err := protocol.Decode(f.data, rs.n.cfg.DecodeLimits)
		if err != nil {
			return nil
		}
		p, ok := m.(*protocol.PresenceSet)
		if !ok {
			return nil
		}
		return owner.SetPresence{Sub: rs, State: p.State}
	case fwdSync:
		return owner.Sync{Sub: rs, SV: f.sv}
	case fwdAwareness:
		return owner.Awareness{Sub: rs, Update: f.data}
	case fwdFollow:
		return owner.Follow{Sub: rs, Root: f.root, Since: f.since, MaxSteps: int(min(f.maxSteps, 1<<31))}
	case fwdBroadcast:
		return owner.Broadcast{From: rs, Data: f.data}
	}
	return nil
}
