package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

// heldAt is a partsHeld over a budget of max bytes with a clock the test
// moves.
func heldAt(max int64) (*partsHeld, *time.Time) {
	now := time.Unix(1000, 0)
	return newPartsHeld(&budget{max: max}, 30*time.Second, func() time.Time { return now }), &now
}

func refusedCode(t *testing.T, err error) protocol.Code {
	t.Helper()
	var r *owner.Refused
	if !errors.As(err, &r) {
		t.Fatalf("error %v, want a refusal", err)
	}
	return r.Code
}

// A request in parts is whole once its last part is in, and only if every
// part follows the one before as the first declared; a broken sequence is
// dropped and gives its bytes back.
func TestPartsAssemble(t *testing.T) {
	h, _ := heldAt(1 << 20)
	data := []byte("0123456789abcdef")
	for i := range 3 {
		b, err := h.add(&part{id: "a.1", index: i, parts: 3, size: 16, chunk: data[i*6 : min(i*6+6, 16)]})
		if err != nil || (i < 2) != (b == nil) {
			t.Fatalf("part %d: %q, %v", i, b, err)
		}
		if i == 2 && !bytes.Equal(b, data) {
			t.Fatalf("assembled %q", b)
		}
	}
	if u := h.budget.used.Load(); u != 16 {
		t.Fatalf("budget %d in use, want 16 (the caller's until served)", u)
	}
	h.budget.give(16)

	for name, seq := range map[string][]*part{
		"a skipped part":     {{index: 0, parts: 3, size: 9, chunk: []byte("abc")}, {index: 2, parts: 3, size: 9, chunk: []byte("ghi")}},
		"another total":      {{index: 0, parts: 3, size: 9, chunk: []byte("abc")}, {index: 1, parts: 4, size: 9, chunk: []byte("def")}},
		"another size":       {{index: 0, parts: 3, size: 9, chunk: []byte("abc")}, {index: 1, parts: 3, size: 10, chunk: []byte("def")}},
		"more than declared": {{index: 0, parts: 2, size: 4, chunk: []byte("abc")}, {index: 1, parts: 2, size: 4, chunk: []byte("def")}},
		"less than declared": {{index: 0, parts: 2, size: 9, chunk: []byte("abc")}, {index: 1, parts: 2, size: 9, chunk: []byte("d")}},
		"started twice":      {{index: 0, parts: 2, size: 9, chunk: []byte("abc")}, {index: 0, parts: 2, size: 9, chunk: []byte("abc")}},
		"no start (or gone)": {{index: 1, parts: 2, size: 9, chunk: []byte("abc")}},
	} {
		var err error
		for _, p := range seq {
			p.id = "b.1"
			if _, err = h.add(p); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: taken", name)
			continue
		}
		if c := refusedCode(t, err); c != protocol.CodeInvalidOp && c != protocol.CodeDocUnloading {
			t.Errorf("%s: code %d", name, c)
		}
		if u := h.budget.used.Load(); u != 0 || len(h.in) != 0 {
			t.Errorf("%s: %d bytes, %d sequences still held", name, u, len(h.in))
		}
	}
}

// Past the budget a sequence is refused as overloaded (retry); one that is
// not finished within the ttl is dropped and its bytes are given back.
func TestPartsBudgetAndExpiry(t *testing.T) {
	h, now := heldAt(100)
	if _, err := h.add(&part{id: "x", index: 0, parts: 2, size: 80, chunk: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	_, err := h.add(&part{id: "y", index: 0, parts: 2, size: 80, chunk: []byte("a")})
	if refusedCode(t, err) != protocol.CodeOverloaded {
		t.Fatalf("past the budget: %v", err)
	}
	if _, ok := h.keep("z", make([]byte, 50), 10); ok {
		t.Fatal("an answer kept past the budget")
	}
	*now = now.Add(31 * time.Second)
	if _, err := h.add(&part{id: "y", index: 0, parts: 2, size: 80, chunk: []byte("a")}); err != nil {
		t.Fatalf("after x expired: %v", err)
	}
	if _, ok := h.in["x"]; ok || h.budget.used.Load() != 80 {
		t.Fatalf("x still held (%d bytes in use)", h.budget.used.Load())
	}
	if _, err := h.add(&part{id: "x", index: 1, parts: 2, size: 80, chunk: []byte("b")}); refusedCode(t, err) != protocol.CodeDocUnloading {
		t.Fatalf("the rest of an expired sequence: %v", err)
	}
	h.clear()
	if h.budget.used.Load() != 0 {
		t.Fatalf("%d bytes in use after clear", h.budget.used.Load())
	}
}

// A kept answer is fetched part by part; the last part forgets it, and an
// unknown id or index is refused.
func TestPartsKeptAnswer(t *testing.T) {
	h, now := heldAt(1 << 20)
	data := bytes.Repeat([]byte("0123456789"), 10)
	big, ok := h.keep("n1.7", data, 30)
	if !ok {
		t.Fatal("not kept")
	}
	p, err := decodePart(big)
	if err != nil || p.kind != partBig || p.id != "n1.7" || p.parts != 4 || p.size != 100 {
		t.Fatalf("partBig %+v, %v", p, err)
	}
	if _, err := h.get("n1.7", 4); refusedCode(t, err) != protocol.CodeDocUnloading {
		t.Fatalf("a part past the last: %v", err)
	}
	var got []byte
	for i := range 4 {
		c, err := h.get("n1.7", i)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got = append(got, c...)
	}
	if !bytes.Equal(got, data) || h.budget.used.Load() != 0 || len(h.out) != 0 {
		t.Fatalf("fetched %d bytes (equal %v); %d bytes, %d answers still held", len(got), bytes.Equal(got, data), h.budget.used.Load(), len(h.out))
	}
	if _, err := h.get("n1.7", 0); err == nil {
		t.Fatal("a fetched answer fetched again")
	}
	h.keep("n1.8", data, 30)
	*now = now.Add(time.Minute)
	if _, err := h.get("n1.8", 0); err == nil || h.budget.used.Load() != 0 {
		t.Fatalf("an expired answer: %v, %d bytes in use", err, h.budget.used.Load())
	}
}

// Part messages round-trip; malformed ones are refused.
func TestPartWire(t *testing.T) {
	for _, p := range partSamples() {
		q, err := decodePart(encodePart(p))
		if err != nil || q.kind != p.kind || q.id != p.id || q.index != p.index || q.parts != p.parts || q.size != p.size || !bytes.Equal(q.chunk, p.chunk) {
			t.Errorf("%+v decodes to %+v, %v", p, q, err)
		}
		if !isPart(encodePart(p)) {
			t.Errorf("%+v is not a part", p)
		}
	}
	for _, p := range []*part{
		{kind: partData, id: "a", index: 2, parts: 2, size: 9, chunk: []byte("x")}, // index past the parts
		{kind: partData, id: "a", index: 0, parts: 1, size: 9, chunk: []byte("x")}, // one part is no sequence
		{kind: partData, id: "a", index: 0, parts: 2, size: 1, chunk: []byte("xy")},
		{kind: partData, id: "", index: 0, parts: 2, size: 9, chunk: []byte("x")},
		{kind: partData, id: "a", index: 0, parts: 2, size: 9},
		{kind: partBig, id: "a", parts: 3, size: 2},
		{kind: partRefused},
		{kind: 0x46, id: "a"},
	} {
		if q, err := decodePart(encodePart(p)); err == nil {
			t.Errorf("%+v accepted as %+v", p, q)
		}
	}
	for _, m := range reqSamples() {
		if isPart(encodeReq("d", m)) {
			t.Errorf("request %T taken for a part", m)
		}
	}
	if isPart(encodeReadResult(owner.ReadResult{})) {
		t.Error("a read's answer taken for a part")
	}
}

func partSamples() []*part {
	return []*part{
		{kind: partData, id: "n1.1", index: 1, parts: 3, size: 9, chunk: []byte("abc")},
		{kind: partAck},
		{kind: partBig, id: "n2.z", parts: 2, size: 20},
		{kind: partGet, id: "n2.z", index: 1},
		{kind: partChunk, chunk: []byte("chunk")},
		{kind: partRefused, err: &owner.Refused{Code: protocol.CodeOverloaded, Message: "retry"}},
	}
}
