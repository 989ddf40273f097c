package crdt

import (
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/collabd/collabd/internal/mp"
)

// EncodeStateVector encodes sv as msgpack [version, [agent, next, ...]] with
// agents in ascending order (equal state vectors encode to equal bytes).
func EncodeStateVector(sv StateVector) []byte {
	agents := sv.agents()
	b := []byte{0x92, svVersion}
	b = mp.AppendArrayLen(b, 2*len(agents))
	for _, a := range agents {
		b = mp.AppendUint(b, uint64(a))
		b = mp.AppendUint(b, sv[a])
	}
	return b
}

// DecodeStateVector decodes a state vector made by EncodeStateVector.
func DecodeStateVector(b []byte, lim Limits) (StateVector, error) {
	lim = lim.withDefaults()
	d := decoder{what: "state vector"}
	d.r.Reset(b)
	if _, err := d.array("state vector", 2); err != nil {
		return nil, err
	}
	if _, err := d.uint("version", svVersion); err != nil {
		return nil, err
	}
	n, err := d.array("entries", -1)
	if err != nil {
		return nil, err
	}
	if n%2 != 0 || n/2 > lim.MaxAgents {
		return nil, d.fail(fmt.Sprintf("%d entries (want an even count, at most %d pairs)", n, lim.MaxAgents), nil)
	}
	sv := make(StateVector, n/2)
	for range n / 2 {
		a, err := d.uint("agent", math.MaxUint64)
		if err != nil {
			return nil, err
		}
		next, err := d.uint("next seq", math.MaxUint32)
		if err != nil {
			return nil, err
		}
		if a == 0 {
			return nil, d.fail("agent 0 is reserved", nil)
		}
		if _, dup := sv[AgentID(a)]; dup {
			return nil, d.fail(fmt.Sprintf("agent %x listed twice", a), nil)
		}
		if next > 0 {
			sv[AgentID(a)] = next
		}
	}
	if err := d.r.Done(); err != nil {
		return nil, d.fail("after entries", err)
	}
	return sv, nil
}

var (
	_ msgpack.CustomEncoder = StateVector(nil)
	_ msgpack.CustomDecoder = (*StateVector)(nil)
)

// EncodeMsgpack lets a StateVector be a field of a message encoded with
// github.com/vmihailenco/msgpack/v5 (same layout as EncodeStateVector).
func (sv StateVector) EncodeMsgpack(enc *msgpack.Encoder) error {
	agents := sv.agents()
	if err := enc.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := enc.EncodeUint(svVersion); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(2 * len(agents)); err != nil {
		return err
	}
	for _, a := range agents {
		if err := enc.EncodeUint(uint64(a)); err != nil {
			return err
		}
		if err := enc.EncodeUint(sv[a]); err != nil {
			return err
		}
	}
	return nil
}

// maxDecodedAgents bounds a state vector read through DecodeMsgpack, which
// has no Limits at hand.
const maxDecodedAgents = 1 << 16

// DecodeMsgpack reads a state vector embedded in a message decoded with
// github.com/vmihailenco/msgpack/v5. It never allocates from a declared
// length: entries are read one by one.
func (sv *StateVector) DecodeMsgpack(dec *msgpack.Decoder) error {
	bad := func(reason string) error { return &DecodeError{What: "state vector", Reason: reason} }
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 2 {
		return bad("not a [version, entries] array")
	}
	if v, err := dec.DecodeUint64(); err != nil || v != svVersion {
		return bad("unknown version")
	}
	n, err = dec.DecodeArrayLen()
	if err != nil || n < 0 || n%2 != 0 || n/2 > maxDecodedAgents {
		return bad("bad entry count")
	}
	out := make(StateVector, min(n/2, 64))
	for range n / 2 {
		a, err := dec.DecodeUint64()
		if err != nil {
			return bad("agent")
		}
		next, err := dec.DecodeUint64()
		if err != nil || next > math.MaxUint32 || a == 0 {
			return bad("entry out of range")
		}
		if _, dup := out[AgentID(a)]; dup {
			return bad("agent listed twice")
		}
		if next > 0 {
			out[AgentID(a)] = next
		}
	}
	*sv = out
	return nil
}
