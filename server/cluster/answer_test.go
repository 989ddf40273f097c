package cluster

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// evSub is a subscriber whose events go to a channel.
type evSub struct{ ev chan owner.Event }

func (s *evSub) ID() string      { return "s" }
func (s *evSub) Seen() time.Time { return time.Now() }
func (s *evSub) Deliver(ev owner.Event) bool {
	select {
	case s.ev <- ev:
		return true
	default:
		return false
	}
}
func (s *evSub) DeliverSoft(ev owner.Event) bool { return s.Deliver(ev) }

// TestForwardedJoinUnanswered: a Join forwarded to a node that never
// answers (lost on the way: here nobody listens on its subject) makes the
// subscriber rejoin after JoinAnswer, with a retryable end; a Ref
// released before that tells nobody.
func TestForwardedJoinUnanswered(t *testing.T) {
	c := natstest.Single(t)
	nc := c.Connect()
	n := &Node{cfg: NodeConfig{Conn: nc, Prefix: "collabd", JoinAnswer: 100 * time.Millisecond},
		log: slog.New(slog.DiscardHandler), refs: map[uint64]*Ref{}, fanIn: map[string]*fanIn{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r := &Ref{n: n, doc: "d", key: 1, node: "nobody"}
	sub := &evSub{ev: make(chan owner.Event, 4)}
	if !r.Send(ctx, owner.Join{Sub: sub}) {
		t.Fatal("join not sent")
	}
	select {
	case ev := <-sub.ev:
		e, ok := ev.(*owner.ErrorEvent)
		if !ok || !e.End || e.Code != protocol.CodeDocUnloading {
			t.Fatalf("got %#v, want a rejoin (4002, End)", ev)
		}
	case <-ctx.Done():
		t.Fatal("an unanswered forwarded join was never given up")
	}
	r.mu.Lock()
	stale := r.stale
	r.mu.Unlock()
	if !stale {
		t.Error("the Ref still routes to the node that did not answer")
	}

	released := &Ref{n: n, doc: "d", key: 2, node: "nobody"}
	sub2 := &evSub{ev: make(chan owner.Event, 4)}
	released.Send(ctx, owner.Join{Sub: sub2})
	released.Release()
	released.mu.Lock()
	armed := released.watch.armed
	released.mu.Unlock()
	if armed {
		t.Error("Release left the wait armed")
	}
	released.unanswered("nobody") // as a timer that fired anyway would
	select {
	case ev := <-sub2.ev:
		t.Fatalf("a released Ref told its subscriber %#v", ev)
	default:
	}
}
