package protocol

import (
	"fmt"
	"math"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/mp"
)

// Encode returns m as one frame: a msgpack array whose first element is
// m.Type(). It panics if m is not one of this package's message types (a
// programming error, not an input error). Encode does not validate fields: a
// frame with a bad document id, say, is refused by the peer's Decode. Int
// fields are clamped to 0..2^31-1.
func Encode(m Message) []byte { return AppendEncode(nil, m) }

// AppendEncode appends the frame of m to dst and returns the extended slice.
func AppendEncode(dst []byte, m Message) []byte {
	b := dst
	switch m := m.(type) {
	case *Hello:
		b = append(b, 0x95, byte(TypeHello))
		b = mp.AppendUint(b, uint64(version(m.Version)))
		b = mp.AppendString(b, m.Token)
		b = mp.AppendArrayLen(b, len(m.Agents))
		for _, a := range m.Agents {
			b = mp.AppendUint(b, uint64(a))
		}
		b = mp.AppendString(b, m.Client)
	case *Welcome:
		b = append(b, 0x94, byte(TypeWelcome))
		b = mp.AppendUint(b, uint64(version(m.Version)))
		b = mp.AppendString(b, m.Session)
		l := m.Limits
		b = append(b, 0x96)
		for _, v := range [...]int{l.MaxFrame, l.MaxDocs, l.MaxOpsPerBatch, l.MaxDocBytes, l.PingIntervalMs, l.PongTimeoutMs} {
			b = appendInt(b, v)
		}
	case *Join:
		if m.Snapshot {
			b = append(b, 0x95, byte(TypeJoin))
		} else {
			b = append(b, 0x94, byte(TypeJoin))
		}
		b = mp.AppendString(b, m.Doc)
		b = appendSV(b, m.SV)
		b = mp.AppendBool(b, m.ReadOnly)
		if m.Snapshot {
			b = mp.AppendBool(b, true)
		}
	case *Sync:
		if m.Snapshot {
			b = append(b, 0x97, byte(TypeSync))
		} else {
			b = append(b, 0x96, byte(TypeSync))
		}
		b = mp.AppendString(b, m.Doc)
		b = appendInt(b, m.Chunk)
		b = mp.AppendBool(b, m.Final)
		b = mp.AppendBin(b, m.Update)
		if m.Final {
			b = appendSV(b, m.SV)
		} else {
			b = mp.AppendNil(b)
		}
		if m.Snapshot {
			b = mp.AppendBool(b, true)
		}
	case *Update:
		b = append(b, 0x94, byte(TypeUpdate))
		b = mp.AppendString(b, m.Doc)
		b = mp.AppendUint(b, m.Batch)
		b = mp.AppendBin(b, m.Update)
	case *Ack:
		b = append(b, 0x96, byte(TypeAck))
		b = mp.AppendString(b, m.Doc)
		b = mp.AppendUint(b, m.Batch)
		b = mp.AppendUint(b, uint64(m.Status))
		b = mp.AppendUint(b, m.Applied)
		b = mp.AppendUint(b, m.Durable)
	case *Leave:
		b = append(b, 0x92, byte(TypeLeave))
		b = mp.AppendString(b, m.Doc)
	case *Error:
		b = append(b, 0x96, byte(TypeError))
		b = mp.AppendUint(b, uint64(m.Code))
		b = mp.AppendString(b, m.Doc)
		b = mp.AppendUint(b, m.Batch)
		b = mp.AppendString(b, m.Message)
		b = appendInt(b, m.RetryAfterMs)
	case *Ping:
		b = append(b, 0x92, byte(TypePing))
		b = mp.AppendUint(b, m.Nonce)
	case *Pong:
		b = append(b, 0x92, byte(TypePong))
		b = mp.AppendUint(b, m.Nonce)
	case *Refresh:
		b = append(b, 0x92, byte(TypeRefresh))
		b = mp.AppendString(b, m.Token)
	case *Broadcast:
		b = append(b, 0x94, byte(TypeMessage))
		b = mp.AppendString(b, m.Doc)
		b = mp.AppendString(b, m.From)
		b = mp.AppendStringBytes(b, m.Data)
	case *PresenceSet:
		b = append(b, 0x96, byte(TypePresenceSet)) // 6 fields
		b = mp.AppendString(b, m.Doc)
		b = appendState(b, m.State)
	case *Presence:
		b = appendPresence(b, m)
	default:
		panic(fmt.Sprintf("protocol: Encode of %T, not a message type of this package", m))
	}
	return b
}

func version(v int) int {
	if v == 0 {
		return Version
	}
	return v
}

// maxInt is the largest value of an int field on the wire (2^31-1), so that
// 32-bit clients can hold every value.
const maxInt = math.MaxInt32

func appendInt(b []byte, v int) []byte {
	return mp.AppendUint(b, uint64(min(max(v, 0), maxInt)))
}

// appendSV appends sv as a bin holding crdt.EncodeStateVector(sv).
func appendSV(b []byte, sv crdt.StateVector) []byte {
	return mp.AppendBin(b, crdt.EncodeStateVector(sv))
}
