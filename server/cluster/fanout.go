package cluster

import (
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// Fan-out once per node (docs/CLUSTER.md "Forwarding"). The owner delivers
// one *owner.UpdateEvent to every subscriber of a step; for the sessions
// of one other node the first delivery publishes the update, numbered
// within the document's fan-out to that node, and the others publish only
// a reference to that number (a few bytes). The node decodes the update
// once and delivers the same event to each of its sessions, which share
// its encoding (the event's Memo). NATS keeps one publisher's messages in
// order, so a reference follows its update; one that does not match (the
// document moved between two owners meanwhile) makes its session rejoin.
// Followers (their view depends on their root) get their own copies.

// fanOut is the owner side: per document, per subscriber node, the last
// update event published in full and its number. Guarded by Node.mu;
// dropped when the document is given up.
type fanOut struct {
	ev  *owner.UpdateEvent
	seq uint64
}

// fanSeq numbers ev within doc's fan-out to node: first reports whether
// this delivery publishes it in full.
func (n *Node) fanSeq(doc, node string, ev *owner.UpdateEvent) (seq uint64, first bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	byNode := n.fanOut[doc]
	if byNode == nil {
		byNode = map[string]*fanOut{}
		n.fanOut[doc] = byNode
	}
	st := byNode[node]
	if st == nil {
		st = &fanOut{}
		byNode[node] = st
	}
	if st.ev != ev {
		st.ev, st.seq, first = ev, st.seq+1, true
	}
	return st.seq, first
}

// dropFanOut forgets a document's fan-out state (it was given up).
func (n *Node) dropFanOut(doc string) {
	n.mu.Lock()
	delete(n.fanOut, doc)
	n.mu.Unlock()
}

// fanIn is the receiving side: per document, the last update received in
// full. Guarded by Node.mu; dropped with the document's last Ref.
type fanIn struct {
	ev   *owner.UpdateEvent
	seq  uint64
	refs int // Refs of the document on this node
}

// fanned resolves a fan-out event: an update in full is kept for the
// references that follow; a reference returns the update it names (nil
// if it is not the last one received).
func (n *Node) fanned(e *evt) owner.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.fanIn[e.doc]
	if e.fan {
		if st != nil {
			st.ev, st.seq = e.ev.(*owner.UpdateEvent), e.seq
		}
		return e.ev
	}
	if st == nil || st.seq != e.seq || st.ev == nil {
		return nil
	}
	return st.ev
}

// refDoc counts a Ref of doc (delta +1 or -1), dropping the document's
// fan-in state with its last Ref.
func (n *Node) refDocLocked(doc string, delta int) {
	st := n.fanIn[doc]
	if st == nil {
		st = &fanIn{}
		n.fanIn[doc] = st
	}
	if st.refs += delta; st.refs <= 0 {
		delete(n.fanIn, doc)
	}
}

// missedFanOut is what a session whose reference names an update this node
// does not have is told: rejoin (and resync by state vector).
func missedFanOut(doc string) *owner.ErrorEvent {
	return &owner.ErrorEvent{Doc: doc, Code: protocol.CodeDocUnloading, Message: "an update was missed while the document moved; rejoin", End: true}
}
