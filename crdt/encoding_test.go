package crdt_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/collabd/collabd/crdt"
)

// The hand-written codec must produce msgpack that a general implementation
// reads as the documented structure (docs/FORMATS.md).
func TestUpdateIsMsgpack(t *testing.T) {
	d := crdt.NewDoc(crdt.Options{Agent: 0x1234567890})
	_ = d.Text("body").Insert(0, "hé🎉")
	_ = d.Text("body").Delete(1, 1)
	u := d.TakeUpdate()
	var v []any
	if err := msgpack.Unmarshal(u, &v); err != nil {
		t.Fatalf("update is not msgpack: %v", err)
	}
	if len(v) != 4 {
		t.Fatalf("update has %d elements, want 4 [version, agents, roots, ops]", len(v))
	}
	if ver, _ := v[0].(int8); ver != 1 {
		t.Errorf("version %v, want 1", v[0])
	}
	agents := v[1].([]any)
	if len(agents) != 1 || toUint(agents[0]) != 0x1234567890 {
		t.Errorf("agents %v, want [0x1234567890]", agents)
	}
	if roots := v[2].([]any); len(roots) != 1 || roots[0] != "body" {
		t.Errorf("roots %v, want [body]", roots)
	}
	// The insert goes out as the runs it is now: "h", the deleted "é" as a
	// tombstone without its text, "🎉"; then the delete.
	ops := v[3].([]any)
	if len(ops) != 4 {
		t.Fatalf("%d ops, want 3 insert pieces and a delete: %v", len(ops), ops)
	}
	if ins := ops[0].([]any); toUint(ins[0]) != 0 || ins[4] != "h" || toUint(ins[3]) != 0 {
		t.Errorf("first insert op %v", ins)
	}
	if tomb := ops[1].([]any); toUint(tomb[4]) != 1 || toUint(tomb[3]) != 1 {
		t.Errorf("tombstone op %v: want seq 1, length 1 without text", tomb)
	}
	del := ops[3].([]any)
	if toUint(del[0]) != 1 || toUint(del[3]) != 3 || toUint(del[4]) != 1 || toUint(del[6]) != 1 || del[7] != false {
		t.Errorf("delete op %v: want kind 1, seq 3, length 1, target seq 1, forward", del)
	}
}

func toUint(v any) uint64 {
	switch x := v.(type) {
	case int8:
		return uint64(x)
	case int16:
		return uint64(x)
	case int32:
		return uint64(x)
	case int64:
		return uint64(x)
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint64:
		return x
	}
	return ^uint64(0)
}

func TestStateVectorMsgpackField(t *testing.T) {
	type message struct {
		Doc string           `msgpack:"doc"`
		SV  crdt.StateVector `msgpack:"sv"`
	}
	in := message{Doc: "d1", SV: crdt.StateVector{7: 3, 1: 10}}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out message
	if err := msgpack.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Doc != "d1" || !out.SV.Equal(in.SV) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	// The embedded form is the same as the standalone encoding.
	if !bytes.Contains(b, crdt.EncodeStateVector(in.SV)) {
		t.Error("embedded state vector differs from EncodeStateVector")
	}
	// A bomb inside a message is refused without allocating from it.
	bomb := []byte{0x81, 0xa2, 's', 'v', 0x92, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff}
	var m message
	var de *crdt.DecodeError
	if err := msgpack.Unmarshal(bomb, &m); !errors.As(err, &de) {
		t.Fatalf("bomb: got %v, want a *crdt.DecodeError", err)
	}
}

func TestDecodeErrorsAreTyped(t *testing.T) {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	_ = d.Text("t").Insert(0, "abc")
	good := d.TakeUpdate()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"wrong version", append([]byte{0x94, 0x02}, good[2:]...)},
		{"not an array", []byte{0xa3, 'a', 'b', 'c'}},
		{"array bomb", []byte{0x94, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range tests {
		fresh := crdt.NewDoc(crdt.Options{Agent: 2})
		err := fresh.ApplyUpdate(tc.in)
		var de *crdt.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want *crdt.DecodeError", tc.name, err)
		}
		if fresh.Text("t").Len() != 0 || fresh.Version() != 0 {
			t.Errorf("%s: rejected update changed the document", tc.name)
		}
	}
}

func TestPendingBufferIsBounded(t *testing.T) {
	src := crdt.NewDoc(crdt.Options{Agent: 1})
	var ups [][]byte
	for i := 0; i < 20; i++ {
		_ = src.Text("t").Insert(i, "x")
		ups = append(ups, src.TakeUpdate())
	}
	d := crdt.NewDoc(crdt.Options{Agent: 2, Limits: crdt.Limits{MaxPending: 5}})
	// Everything but the first update waits for it; the sixth overflows.
	for i := 1; i <= 5; i++ {
		if err := d.ApplyUpdate(ups[i]); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if d.Pending() != 5 {
		t.Fatalf("pending %d, want 5", d.Pending())
	}
	if err := d.ApplyUpdate(ups[6]); !errors.Is(err, crdt.ErrPendingFull) {
		t.Fatalf("overflow: got %v, want ErrPendingFull", err)
	}
	if err := d.ApplyUpdate(ups[0]); err != nil {
		t.Fatal(err)
	}
	if d.Pending() != 0 || d.Text("t").String() != "xxxxxx" {
		t.Fatalf("after the missing update: pending %d, text %q", d.Pending(), d.Text("t").String())
	}
	// Duplicates are no-ops.
	for _, u := range ups[:6] {
		if err := d.ApplyUpdate(u); err != nil {
			t.Fatal(err)
		}
	}
	if d.Text("t").String() != "xxxxxx" || d.Version() != 6 {
		t.Fatalf("duplicates changed the document: %q, version %d", d.Text("t").String(), d.Version())
	}
}

func TestInvalidOpRejectedWhole(t *testing.T) {
	a := crdt.NewDoc(crdt.Options{Agent: 1})
	_ = a.Text("t").Insert(0, "abc")
	_ = a.Text("t").Delete(0, 1) // seq 3 is a delete, not an item
	first := a.EncodeDiff(nil)
	d := crdt.NewDoc(crdt.Options{Agent: 2})
	if err := d.ApplyUpdate(first); err != nil {
		t.Fatal(err)
	}
	// An insert by agent 3 whose left origin names agent 1's seq 3, which is
	// a delete op, not an item: [1, [1, 3], ["t"], [[0, 0, 1, 0, "q", 1, 3, 0, 0]]].
	bad := []byte{0x94, 0x01, 0x92, 0x01, 0x03, 0x91, 0xa1, 't', 0x91,
		0x99, 0x00, 0x00, 0x01, 0x00, 0xa1, 'q', 0x01, 0x03, 0x00, 0x00}
	if _, err := crdt.DecodeUpdate(bad, crdt.Limits{}); err != nil {
		t.Fatalf("crafted update should decode: %v", err)
	}
	before := d.Text("t").String()
	if err := d.ApplyUpdate(bad); !errors.Is(err, crdt.ErrInvalidOp) {
		t.Fatalf("got %v, want ErrInvalidOp", err)
	}
	if d.Text("t").String() != before || d.Pending() != 0 {
		t.Fatal("invalid op changed the document")
	}
}
