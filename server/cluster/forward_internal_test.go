package cluster

import (
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestForwardedLeaveEndsSubscriberAtOnce: a forwarded Leave removes its
// subscriber from the node before the worker gets to it, so that a Join
// with the same key right behind it (a stale Ref retargeting to the same
// node sends Leave, then Join) starts a new subscriber instead of being
// queued to the exiting worker and lost (found by collabd chaos cluster:
// sessions waited for a sync forever after an owner's SIGSTOP). A stopped
// subscriber is removed by the next message and is sent nothing more.
func TestForwardedLeaveEndsSubscriberAtOnce(t *testing.T) {
	n := &Node{cfg: NodeConfig{QueueLen: 4}, log: slog.New(slog.DiscardHandler),
		remotes: map[remoteKey]*remoteSub{}, refs: map[uint64]*Ref{}}
	k := remoteKey{"n3", 7}
	leave := func() {
		n.onFwd(&nats.Msg{Data: encodeFwd(&fwd{kind: fwdLeave, origin: k.origin, key: k.key, doc: "d"})})
	}

	live := &remoteSub{n: n, k: k, doc: "d", in: newFwdQueue(4), quit: make(chan struct{})}
	n.remotes[k] = live
	leave()
	if rs := n.remotes[k]; rs != nil {
		t.Fatalf("after a Leave the node still routes key %v to %p: a Join right behind it would be queued to the exiting worker", k, rs)
	}
	if live.in.len() != 1 {
		t.Fatalf("the live subscriber's worker got %d messages, want the Leave (it leaves the owner)", live.in.len())
	}

	stopped := &remoteSub{n: n, k: k, doc: "d", in: newFwdQueue(4), quit: make(chan struct{})}
	stopped.stop()
	n.remotes[k] = stopped
	leave()
	if rs := n.remotes[k]; rs != nil || stopped.in.len() != 0 {
		t.Fatalf("a stopped subscriber: routed %p, queued %d; want removed, nothing queued", rs, stopped.in.len())
	}
}
