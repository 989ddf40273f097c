package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server/owner"
)

func fwdSamples() []*fwd {
	since := uint64(7)
	return []*fwd{
		{kind: fwdJoin, origin: "n1", key: 1, doc: "d\x00.*>", subID: "abcd", docKind: owner.KindYjs, noSync: true, readOnly: true,
			sv: []byte{1, 2}, user: presence.User{ID: "u", Name: "U", Color: "#fff"}, subject: "u", checkOps: true, agents: []uint64{1, 1 << 40}},
		{kind: fwdUpdate, origin: "n2", key: 2, doc: "d", batch: 9, data: []byte("upd")},
		{kind: fwdPresence, origin: "n2", key: 2, doc: "d", data: protocol.Encode(&protocol.PresenceSet{Doc: "d", State: presence.State{Meta: map[string]string{"a": "b"}}})},
		{kind: fwdSync, origin: "n2", key: 2, doc: "d", sv: []byte{0}},
		{kind: fwdAwareness, origin: "n2", key: 2, doc: "d", data: []byte{3}, hasData: true},
		{kind: fwdAwareness, origin: "n2", key: 2, doc: "d"},
		{kind: fwdFollow, origin: "n3", key: 3, doc: "d", root: "body", since: &since, maxSteps: 100},
		{kind: fwdFollow, origin: "n3", key: 3, doc: "d", root: "body"},
		{kind: fwdBroadcast, origin: "n3", key: 3, doc: "d", data: []byte(`{"x":1}`)},
		{kind: fwdLeave, origin: "n3", key: 3, doc: "d"},
		{kind: fwdUnfollow, origin: "n3", key: 3, doc: "d"},
		{kind: fwdReadOnly, origin: "n3", key: 3, doc: "d"},
	}
}

func TestFwdRoundTrip(t *testing.T) {
	for _, f := range fwdSamples() {
		got, err := decodeFwd(encodeFwd(f))
		if err != nil {
			t.Fatalf("decodeFwd(kind %d) = %v", f.kind, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("decodeFwd(encodeFwd(%+v)) = %+v", f, got)
		}
	}
}

func evtSamples() []owner.Event {
	return []owner.Event{
		&owner.SyncEvent{Doc: "d", Chunk: 2, Final: true, Update: []byte("u"), SV: []byte{1}},
		&owner.SyncEvent{Doc: "d", Update: []byte("u")},
		&owner.UpdateEvent{Doc: "d", Updates: [][]byte{[]byte("a"), []byte("b")}, From: 3, Version: 5,
			Changes: []owner.Change{{Root: "body", Pos: 1, Del: 2, Ins: "xy"}}},
		&owner.AckEvent{Doc: "d", Batch: 4, Status: protocol.AckDurable, Applied: 5, Durable: 5},
		&owner.ErrorEvent{Doc: "d", Batch: 1, Code: protocol.CodeDocUnloading, Message: "m", RetryAfter: time.Second, End: true},
		&owner.PresenceEvent{Msg: &protocol.Presence{Doc: "d", Full: true, Gone: []string{"s1"}}},
		&owner.AwarenessEvent{Doc: "d", Update: []byte{1, 2}, Full: true},
		&owner.FeedStartEvent{Version: 3, Text: "hello", Reset: true},
		&owner.FeedStartEvent{Version: 3, Steps: []owner.Step{{From: 1, To: 3, Changes: []owner.Change{{Root: "body", Ins: "x"}}}}},
		&owner.FeedStartEvent{Version: 3, JSON: []byte(`{}`), Current: true},
		&owner.MessageEvent{Doc: "d", From: "s", Data: []byte(`1`)},
		&owner.JoinedEvent{Doc: "d"},
	}
}

func TestEvtRoundTrip(t *testing.T) {
	for _, ev := range evtSamples() {
		b, ok := encodeEvt(42, true, ev, "", false)
		if !ok {
			t.Fatalf("encodeEvt(%T) not encoded", ev)
		}
		got, err := decodeEvt(b, protocol.DecodeLimits{})
		if err != nil {
			t.Fatalf("decodeEvt(%T) = %v", ev, err)
		}
		if got.key != 42 || !got.soft {
			t.Errorf("decodeEvt(%T) key %d soft %v", ev, got.key, got.soft)
		}
		if !reflect.DeepEqual(got.ev, ev) {
			t.Errorf("decodeEvt(encodeEvt(%#v)) = %#v", ev, got.ev)
		}
	}
}

// TestWireRefusesTruncated: every strict prefix of a valid message is
// refused, never a panic or a partial message.
func TestWireRefusesTruncated(t *testing.T) {
	for _, f := range fwdSamples() {
		b := encodeFwd(f)
		for i := range len(b) {
			if _, err := decodeFwd(b[:i]); err == nil {
				t.Errorf("decodeFwd(%x) of a truncated kind %d accepted", b[:i], f.kind)
			}
		}
		if _, err := decodeFwd(append(bytes.Clone(b), 0)); err == nil {
			t.Errorf("decodeFwd with a trailing byte (kind %d) accepted", f.kind)
		}
	}
	for _, ev := range evtSamples() {
		b, _ := encodeEvt(1, false, ev, "", false)
		for i := range len(b) {
			if _, err := decodeEvt(b[:i], protocol.DecodeLimits{}); err == nil {
				t.Errorf("decodeEvt(%x) of a truncated %T accepted", b[:i], ev)
			}
		}
	}
}

// FuzzDecodeWire feeds hostile bytes to every decoder: no panic, no
// allocation past what the input declares and holds, and what decodes
// re-encodes to a message that decodes the same.
func FuzzDecodeWire(f *testing.F) {
	for _, x := range fwdSamples() {
		f.Add(encodeFwd(x))
	}
	for _, ev := range evtSamples() {
		b, _ := encodeEvt(1, false, ev, "", false)
		f.Add(b)
	}
	for _, m := range reqSamples() {
		f.Add(encodeReq("d", m))
	}
	f.Add(encodeFanRef(1, false, "d", 3))
	f.Add(encodeReadResult(owner.ReadResult{Roots: []string{"a"}, Clock: map[string]uint64{"x": 1}, Content: map[string][]byte{"a": nil}}))
	f.Add(encodeEditResult(owner.EditResult{Err: errors.New("x")}))
	f.Add(encodeImportResult(owner.ImportResult{Version: 2}))
	f.Add(encodeCheckpointResult(owner.CheckpointResult{Seq: 1, Version: 2}))
	f.Add(encodeRestoreResult(owner.RestoreResult{Version: 2, Applied: 1}))
	for _, p := range partSamples() {
		f.Add(encodePart(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodePart(b); err == nil && p.kind != partRefused {
			q, err := decodePart(encodePart(p))
			if err != nil || !reflect.DeepEqual(p, q) {
				t.Fatalf("part re-encoding: %v, %+v != %+v", err, p, q)
			}
		}
		if x, err := decodeFwd(b); err == nil {
			y, err := decodeFwd(encodeFwd(x))
			if err != nil || !reflect.DeepEqual(x, y) {
				t.Fatalf("fwd re-encoding: %v, %+v != %+v", err, x, y)
			}
		}
		if e, err := decodeEvt(b, protocol.DecodeLimits{}); err == nil && !e.ref {
			if _, ok := encodeEvt(e.key, e.soft, e.ev, "", false); !ok {
				t.Fatalf("decoded event %T does not encode", e.ev)
			}
		}
		_, _ = decodeReq(b)
		_, _ = decodeReadResult(b)
		_, _ = decodeEditResult(b)
		_, _ = decodeBroadcastResult(b)
		_, _ = decodeErrReply(reqDelete, b)
		_, _ = decodeImportResult(b)
		_, _ = decodeCheckpointResult(b)
		_, _ = decodeRestoreResult(b)
	})
}

func reqSamples() []owner.Msg {
	v := uint64(3)
	return []owner.Msg{
		owner.Read{Root: "body", What: owner.ReadInfo},
		owner.Read{What: owner.ReadSnapshot},
		owner.Edit{Root: "body", Edits: []owner.Splice{{Pos: 1, Del: 2, Ins: "x"}, {Ins: "é"}}, Version: &v, Key: "k"},
		owner.Edit{Root: "body"},
		owner.Broadcast{Data: []byte(`{"a":1}`)},
		owner.Create{Kind: owner.KindYjs},
		owner.Delete{},
		owner.Import{Kind: owner.KindYjs, From: fakeEngine{snapEngine: "state"}},
		owner.Checkpoint{Label: "v1", Author: "ann"},
		owner.Restore{Texts: map[string]string{"body": "hi", "title": ""}},
		owner.Restore{Texts: map[string]string{}, From: fakeEngine{snapEngine: "yjs"}, Kind: owner.KindYjs},
	}
}

// snapEngine is a replica as the wire sees it: its snapshot.
type snapEngine string

func (e snapEngine) Snapshot() []byte { return []byte(e) }

type fakeEngine struct {
	owner.Engine
	snapEngine
}

func (e fakeEngine) Snapshot() []byte { return e.snapEngine.Snapshot() }

func TestReqRoundTrip(t *testing.T) {
	for _, m := range reqSamples() {
		b := encodeReq("doc", m)
		q, err := decodeReq(b)
		if err != nil {
			t.Fatalf("decodeReq(%T) = %v", m, err)
		}
		var got owner.Msg
		switch q.kind {
		case reqRead:
			got = q.read
		case reqEdit:
			got = q.edit
		case reqBroadcast:
			got = q.bcast
		case reqCreate:
			got = owner.Create{Kind: q.docKind}
		case reqDelete:
			got = owner.Delete{}
		case reqImport:
			got = owner.Import{Kind: q.docKind, From: fakeEngine{snapEngine: snapEngine(q.snap)}}
		case reqCheckpoint:
			got = q.ckpt
		case reqRestore:
			r := owner.Restore{Texts: q.texts}
			if q.hasSnap {
				r.From, r.Kind = fakeEngine{snapEngine: snapEngine(q.snap)}, q.docKind
			}
			got = r
		}
		if q.doc != "doc" || !reflect.DeepEqual(got, m) {
			t.Errorf("decodeReq(encodeReq(%#v)) = %q %#v", m, q.doc, got)
		}
		for i := range len(b) {
			if _, err := decodeReq(b[:i]); err == nil {
				t.Errorf("decodeReq of a truncated %T accepted", m)
			}
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	reads := []owner.ReadResult{
		{Err: owner.ErrNoDocument},
		{Err: &owner.Refused{Code: protocol.CodeDocUnloading, Message: "moved"}},
		{Kind: owner.KindYjs, Version: 7, Text: "hi", Roots: []string{"a", "b"}, Clock: map[string]uint64{"x": 1},
			Pending: 2, Peers: 3, Sessions: 4, Snapshot: []byte{1}, Awareness: map[uint64]string{9: "{}"}, Content: map[string][]byte{"a": []byte(`"hi"`)}},
	}
	for _, want := range reads {
		got, err := decodeReadResult(encodeReadResult(want))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decodeReadResult(encodeReadResult(%#v)) = %#v, %v", want, got, err)
		}
	}
	edit := owner.EditResult{Version: 4, Applied: 2, Replay: true}
	if got, err := decodeEditResult(encodeEditResult(edit)); err != nil || !reflect.DeepEqual(got, edit) {
		t.Errorf("edit result round trip = %#v, %v", got, err)
	}
	for _, want := range []error{nil, owner.ErrExists, owner.ErrNoDocument, &owner.Refused{Code: protocol.CodeDocDeleted, Message: "gone"}} {
		got, err := decodeErrReply(reqDelete, encodeErrReply(reqDelete, want))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("error reply round trip of %v = %v, %v", want, got, err)
		}
	}
	imp := owner.ImportResult{Version: 9, Err: &owner.Refused{Code: protocol.CodeDocTooLarge, Message: "big"}}
	if got, err := decodeImportResult(encodeImportResult(imp)); err != nil || !reflect.DeepEqual(got, imp) {
		t.Errorf("import result round trip = %#v, %v", got, err)
	}
	ck := owner.CheckpointResult{Seq: 3, Version: 12}
	if got, err := decodeCheckpointResult(encodeCheckpointResult(ck)); err != nil || !reflect.DeepEqual(got, ck) {
		t.Errorf("checkpoint result round trip = %#v, %v", got, err)
	}
	rs := owner.RestoreResult{Version: 20, Applied: 4}
	if got, err := decodeRestoreResult(encodeRestoreResult(rs)); err != nil || !reflect.DeepEqual(got, rs) {
		t.Errorf("restore result round trip = %#v, %v", got, err)
	}
	bc := owner.BroadcastResult{Delivered: 3}
	if got, err := decodeBroadcastResult(encodeBroadcastResult(bc)); err != nil || !reflect.DeepEqual(got, bc) {
		t.Errorf("broadcast result round trip = %#v, %v", got, err)
	}
}

func TestFanOutRoundTrip(t *testing.T) {
	ev := &owner.UpdateEvent{Doc: "d", Updates: [][]byte{[]byte("u")}, From: 1, Version: 2}
	b, _ := encodeEvtSeq(5, false, ev, "", false, 9)
	e, err := decodeEvt(b, protocol.DecodeLimits{})
	if err != nil || !e.fan || e.seq != 9 || e.doc != "d" || e.key != 5 || !reflect.DeepEqual(e.ev, ev) {
		t.Fatalf("decodeEvt(a fanned update) = %+v, %v", e, err)
	}
	e, err = decodeEvt(encodeFanRef(6, true, "d", 9), protocol.DecodeLimits{})
	if err != nil || !e.ref || e.seq != 9 || e.doc != "d" || e.key != 6 || !e.soft {
		t.Fatalf("decodeEvt(a reference) = %+v, %v", e, err)
	}
	if _, err := decodeEvt(encodeFanRef(6, false, "d", 0), protocol.DecodeLimits{}); err == nil {
		t.Error("a reference to seq 0 accepted")
	}
}

// FuzzDecodeVersionMeta: stored version metadata is decoded or refused,
// never a panic, and what decodes stays within its bounds.
func FuzzDecodeVersionMeta(f *testing.F) {
	f.Add(VersionMeta{Version: 3, Named: true, Label: "Sent", Authors: []string{"alice"}, Time: 1}.Encode())
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"t":-1}`))
	f.Add([]byte(`{"authors":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeVersionMeta(b)
		if err != nil {
			return
		}
		if len(m.Authors) > 256 || len(m.Label) > MaxVersionLabel || m.Time < 0 {
			t.Fatalf("DecodeVersionMeta = %+v", m)
		}
		if _, err := DecodeVersionMeta(m.Encode()); err != nil {
			t.Fatalf("re-decoding %+v: %v", m, err)
		}
	})
}
