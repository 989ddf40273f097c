package crdt

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// AgentID identifies one editing replica. Zero is reserved ("no agent").
type AgentID uint64

// NewAgentID returns a random non-zero agent id.
func NewAgentID() AgentID {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		if a := AgentID(binary.LittleEndian.Uint64(b[:])); a != 0 {
			return a
		}
	}
}

// ID names one inserted character or one deletion: the Seq-th op of Agent.
// The zero ID means "none" (the start or end of a text, as an origin).
type ID struct {
	Agent AgentID
	Seq   uint64
}

// IsZero reports whether id is the "none" id.
func (id ID) IsZero() bool { return id.Agent == 0 }

func (id ID) String() string {
	if id.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%x:%d", uint64(id.Agent), id.Seq)
}

// StateVector maps each agent to the next seq a replica expects from it: the
// replica has seen exactly the ops (agent, 0..sv[agent]-1) of every agent.
type StateVector map[AgentID]uint64

// Clone returns a copy of sv.
func (sv StateVector) Clone() StateVector { return maps.Clone(sv) }

// Contains reports whether sv has seen every op that o has seen.
func (sv StateVector) Contains(o StateVector) bool {
	for a, n := range o {
		if sv[a] < n {
			return false
		}
	}
	return true
}

// Equal reports whether sv and o describe the same set of ops.
func (sv StateVector) Equal(o StateVector) bool {
	return sv.Contains(o) && o.Contains(sv)
}

// Version is the number of ops sv covers: a monotonic document version.
func (sv StateVector) Version() uint64 {
	var v uint64
	for _, n := range sv {
		v += n
	}
	return v
}

// agents returns the agents of sv in ascending order (deterministic encoding).
func (sv StateVector) agents() []AgentID {
	return slices.Sorted(maps.Keys(sv))
}

// ref is an internal id: an index into the document's agent table and a seq.
type ref struct {
	a uint32
	s uint32
}

const noAgent = ^uint32(0)

var none = ref{a: noAgent}

func (r ref) isNone() bool { return r.a == noAgent }

func (r ref) plus(k uint32) ref { return ref{r.a, r.s + k} }
