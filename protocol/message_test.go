package protocol_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

var sv = crdt.StateVector{1: 4, 0xdeadbeefcafe: 17}

// messages returns one message of every type, with the values Decode gives
// back for them (Version filled in, empty slices nil, empty SVs empty).
func messages() []protocol.Message {
	upd := []byte{0x94, 1, 0x90, 0x90, 0x90}
	return []protocol.Message{
		&protocol.Hello{Version: 1, Token: "tok.en", Agents: []crdt.AgentID{7, 1 << 63}, Client: "collab-go/0.1"},
		&protocol.Hello{Version: 1},
		&protocol.Welcome{Version: 1, Session: "s-1", Limits: protocol.Limits{MaxFrame: 1 << 20, MaxDocs: 64, MaxOpsPerBatch: 1 << 14, MaxDocBytes: 64 << 20, PingIntervalMs: 25000, PongTimeoutMs: 10000}},
		&protocol.Join{Doc: "notes/2024 ✓", SV: sv, ReadOnly: true},
		&protocol.Join{Doc: "d", SV: crdt.StateVector{}},
		&protocol.Sync{Doc: "d", Chunk: 0, Update: upd},
		&protocol.Sync{Doc: "d", Chunk: 7, Final: true, Update: upd, SV: sv},
		&protocol.Join{Doc: "d", SV: crdt.StateVector{}, Snapshot: true},
		&protocol.Sync{Doc: "d", Chunk: 0, Update: []byte{0x94, 1}, Snapshot: true},
		&protocol.Sync{Doc: "d", Chunk: 1, Final: true, Update: []byte{2, 3}, SV: sv, Snapshot: true},
		&protocol.Update{Doc: "d", Batch: 1<<64 - 1, Update: upd},
		&protocol.Update{Doc: "d", Update: []byte{}},
		&protocol.Ack{Doc: "d", Batch: 3, Status: protocol.AckApplied, Applied: 10, Durable: 8},
		&protocol.Ack{Doc: "d", Batch: 3, Status: protocol.AckDurable, Applied: 10, Durable: 12},
		&protocol.Ack{Doc: "d", Batch: 4, Status: protocol.AckRejected},
		&protocol.Leave{Doc: "d"},
		&protocol.Error{Code: protocol.CodeSlow, Message: "outbound queue full", RetryAfterMs: 1500},
		&protocol.Error{Code: protocol.CodeForgedAgent, Doc: "d", Batch: 9, Message: "agent 5 not claimed"},
		&protocol.Ping{Nonce: 42},
		&protocol.Pong{Nonce: 1<<64 - 1},
		&protocol.Refresh{Token: "new"},
		&protocol.Broadcast{Doc: "d", From: "s1", Data: []byte(`{"kind":"comment","text":"hi"}`)},
		&protocol.Broadcast{Doc: "d", Data: []byte(`42`)},
		&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: []byte{1, 2}, Head: []byte{3}}, Meta: map[string]string{"typing": "1", "b": ""}}},
		&protocol.PresenceSet{Doc: "d"},
		&protocol.Presence{Doc: "d", Full: true, Peers: []presence.Peer{
			{Session: "s1", User: presence.User{ID: "u", Name: "Ann ✓", Color: "#fff"}, State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: []byte{1}, Head: []byte{1}}}},
			{Session: "s2", ReadOnly: true, State: presence.State{Meta: map[string]string{"k": "v"}}},
		}},
		&protocol.Presence{Doc: "d", Gone: []string{"s1", "s3"}},
		&protocol.Presence{Doc: "d", Moved: []presence.Peer{{Session: "s1", State: presence.State{Cursor: presence.Cursor{Root: "body", Anchor: []byte{4}, Head: []byte{4}}}}}},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[protocol.Type]bool{}
	for _, m := range messages() {
		b := protocol.Encode(m)
		got, err := protocol.Decode(b, protocol.DecodeLimits{})
		if err != nil {
			t.Errorf("Decode(Encode(%+v)) error: %v", m, err)
			continue
		}
		if !equal(got, m) {
			t.Errorf("Decode(Encode(m)) = %+v, want %+v", got, m)
		}
		if got.Type() != m.Type() || b[1] != byte(m.Type()) {
			t.Errorf("frame of %+v has type %v, want %v", m, got.Type(), m.Type())
		}
		if again := protocol.Encode(got); !bytes.Equal(again, b) {
			t.Errorf("Encode(Decode(b)) = %x, want %x", again, b)
		}
		if app := protocol.AppendEncode([]byte("xy"), m); !bytes.Equal(app, append([]byte("xy"), b...)) {
			t.Errorf("AppendEncode(xy, m) = %x, want xy + %x", app, b)
		}
		seen[m.Type()] = true
	}
	for _, typ := range append(allTypes(), protocol.TypePresenceSet, protocol.TypePresence) {
		if !seen[typ] {
			t.Errorf("no round-trip case for %v", typ)
		}
	}
}

func allTypes() []protocol.Type {
	var ts []protocol.Type
	for typ := protocol.TypeHello; typ <= protocol.TypeMessage; typ++ {
		ts = append(ts, typ)
	}
	return ts
}

// equal compares messages, state vectors by content (nil equals empty).
func equal(a, b protocol.Message) bool {
	switch x := a.(type) {
	case *protocol.Join:
		y, ok := b.(*protocol.Join)
		return ok && x.Doc == y.Doc && x.ReadOnly == y.ReadOnly && x.SV.Equal(y.SV)
	case *protocol.Sync:
		y, ok := b.(*protocol.Sync)
		return ok && x.Doc == y.Doc && x.Chunk == y.Chunk && x.Final == y.Final &&
			bytes.Equal(x.Update, y.Update) && x.SV.Equal(y.SV) && (x.SV == nil) == (y.SV == nil)
	case *protocol.Update:
		y, ok := b.(*protocol.Update)
		return ok && x.Doc == y.Doc && x.Batch == y.Batch && bytes.Equal(x.Update, y.Update)
	}
	return reflect.DeepEqual(a, b)
}

// TestGolden pins the bytes of a few frames: they are the wire contract in
// docs/PROTOCOL.md and must not change within a protocol version.
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		m    protocol.Message
		want []byte
	}{
		{&protocol.Ping{Nonce: 300}, []byte{0x92, 9, 0xcd, 0x01, 0x2c}},
		{&protocol.Leave{Doc: "ab"}, []byte{0x92, 7, 0xa2, 'a', 'b'}},
		{&protocol.Hello{Token: "t", Agents: []crdt.AgentID{5}, Client: ""}, []byte{0x95, 1, 1, 0xa1, 't', 0x91, 5, 0xa0}},
		{&protocol.Join{Doc: "d"}, []byte{0x94, 3, 0xa1, 'd', 0xc4, 3, 0x92, 1, 0x90, 0xc2}},
		{&protocol.Sync{Doc: "d", Update: []byte{1}}, []byte{0x96, 4, 0xa1, 'd', 0, 0xc2, 0xc4, 1, 1, 0xc0}},
		{&protocol.Join{Doc: "d", Snapshot: true}, []byte{0x95, 3, 0xa1, 'd', 0xc4, 3, 0x92, 1, 0x90, 0xc2, 0xc3}},
		{&protocol.Sync{Doc: "d", Update: []byte{1}, Snapshot: true}, []byte{0x97, 4, 0xa1, 'd', 0, 0xc2, 0xc4, 1, 1, 0xc0, 0xc3}},
		{&protocol.Update{Doc: "d", Batch: 2, Update: []byte{1}}, []byte{0x94, 5, 0xa1, 'd', 2, 0xc4, 1, 1}},
		{&protocol.Ack{Doc: "d", Batch: 2, Status: protocol.AckDurable, Applied: 5, Durable: 5}, []byte{0x96, 6, 0xa1, 'd', 2, 2, 5, 5}},
		{&protocol.Error{Code: protocol.CodeSlow, RetryAfterMs: 100}, []byte{0x96, 8, 0xcd, 0x0f, 0xa8, 0xa0, 0, 0xa0, 100}},
		{&protocol.PresenceSet{Doc: "d", State: presence.State{Cursor: presence.Cursor{Root: "r", Anchor: []byte{1}, Head: []byte{2}}, Meta: map[string]string{"k": "v"}}},
			[]byte{0x96, 32, 0xa1, 'd', 0xa1, 'r', 0xc4, 1, 1, 0xc4, 1, 2, 0x81, 0xa1, 'k', 0xa1, 'v'}},
		{&protocol.Presence{Doc: "d", Peers: []presence.Peer{{Session: "s", User: presence.User{Name: "N"}}}, Gone: []string{"g"}},
			[]byte{0x96, 33, 0xa1, 'd', 0xc2, 0x91, 0x99, 0xa1, 's', 0xa0, 0xa1, 'N', 0xa0, 0xc2, 0xa0, 0xc4, 0, 0xc4, 0, 0xc0, 0x90, 0x91, 0xa1, 'g'}},
		{&protocol.Presence{Doc: "d", Moved: []presence.Peer{{Session: "s", State: presence.State{Cursor: presence.Cursor{Root: "r", Anchor: []byte{7}, Head: []byte{7}}}}}},
			[]byte{0x96, 33, 0xa1, 'd', 0xc2, 0x90, 0x91, 0x95, 0xa1, 's', 0xa1, 'r', 0xc4, 1, 7, 0xc4, 0, 0xc0, 0x90}},
		{&protocol.Welcome{Session: "s", Limits: protocol.Limits{MaxDocs: 1, PingIntervalMs: -5}}, []byte{0x94, 2, 1, 0xa1, 's', 0x96, 0, 1, 0, 0, 0, 0}},
	} {
		if got := protocol.Encode(c.m); !bytes.Equal(got, c.want) {
			t.Errorf("Encode(%+v) = % x, want % x", c.m, got, c.want)
		}
	}
}

func TestEncodePanicsOnForeignMessage(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Encode(foreign) did not panic")
		}
	}()
	protocol.Encode(foreign{})
}

type foreign struct{}

func (foreign) Type() protocol.Type { return protocol.TypePing }

func TestTypeAndStatusStrings(t *testing.T) {
	names := map[string]bool{}
	for _, typ := range append(allTypes(), protocol.TypePresenceSet, protocol.TypePresence) {
		s := typ.String()
		if names[s] || s == "" {
			t.Errorf("%d.String() = %q, duplicate or empty", typ, s)
		}
		names[s] = true
	}
	if got, want := protocol.Type(40).String(), "type(40)"; got != want {
		t.Errorf("Type(40).String() = %q, want %q", got, want)
	}
	if got, want := protocol.AckDurable.String(), "durable"; got != want {
		t.Errorf("AckDurable.String() = %q, want %q", got, want)
	}
}
