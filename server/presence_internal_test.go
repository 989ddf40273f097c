package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// parkedSession is a session whose writer is "busy" (writing is set and no
// writer runs), so everything enqueued stays queued: a peer that stopped
// reading.
func parkedSession(srv *Server, id string) *session {
	return &session{srv: srv, id: id, writing: true, done: make(chan struct{})}
}

// Under backpressure presence is dropped, never the connection, and the
// session that missed frames gets the whole presence once it drains.
func TestPresenceDroppedForSlowSession(t *testing.T) {
	srv := &Server{cfg: Config{QueueBytes: 8 << 10}.withDefaults()}
	o := &owner{id: "d", srv: srv, ownerState: ownerState{subs: map[*session]bool{}, pres: newOwnerPresence(srv.cfg)}}
	defer o.pres.timer.Stop()
	slow, mover := parkedSession(srv, "slow"), parkedSession(srv, "mover")
	now := time.Now()
	for _, s := range []*session{slow, mover} {
		o.subs[s] = true
		o.presenceJoin(request{s: s, user: presence.User{Name: s.id}}, now)
	}
	var meta = map[string]string{"note": string(make([]byte, 900))}
	for i := range 200 { // ~200 KiB of presence for an 8 KiB queue
		now = now.Add(time.Second)
		meta["i"] = fmt.Sprint(i)
		o.presenceSet(request{s: mover, state: presence.State{Meta: meta}}, now)
		if o.pres.armed {
			o.flushPresence(now)
		}
		mover.mu.Lock()
		mover.queue, mover.queued = nil, 0 // the mover keeps up
		mover.mu.Unlock()
	}
	if slow.closed {
		t.Fatalf("slow session closed (code %v) because of presence", slow.code)
	}
	if slow.queued > srv.cfg.QueueBytes/2 {
		t.Fatalf("slow session queued %d bytes, more than half its %d", slow.queued, srv.cfg.QueueBytes)
	}
	if !o.pres.stale[slow] {
		t.Fatal("slow session not marked stale after missing frames")
	}
	// The slow session drains; the next flush sends it the whole presence,
	// with the mover's latest state.
	slow.mu.Lock()
	slow.queue, slow.queued = nil, 0
	slow.mu.Unlock()
	now = now.Add(time.Second)
	o.flushPresence(now)
	if len(slow.queue) != 1 {
		t.Fatalf("after draining: %d frames queued, want 1", len(slow.queue))
	}
	m, err := protocol.Decode(slow.queue[0], protocol.DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := m.(*protocol.Presence)
	if !ok || !p.Full {
		t.Fatalf("want a full presence, got %+v", m)
	}
	for _, peer := range p.Peers {
		if peer.Session == "mover" && peer.Meta["i"] != "199" {
			t.Fatalf("mover's state %q, want the latest (199)", peer.Meta["i"])
		}
	}
	if o.pres.stale[slow] {
		t.Fatal("still stale after the full presence went out")
	}
}
