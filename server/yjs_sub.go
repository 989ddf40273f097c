package server

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
	yproto "github.com/collabd/collabd/protocol/yjs"
	"github.com/collabd/collabd/server/owner"
)

// yjsSub is one document of a Yjs door: the document of a y-websocket
// connection, or one provider of a multiplexed Hocuspocus connection. The
// owner sees it as a Subscriber (and Author); its frames go into its
// connection's queue, framed for its door. The connection's read loop
// owns the fields marked so; everything the owner reads is fixed when the
// sub is made.
type yjsSub struct {
	conn   *session
	id     string // the peer's name in presence
	doc    string
	key    []byte  // Hocuspocus: the routing key as the provider sent it, encoded (varString); nil for y-websocket
	claims *Claims // the token that opened it (nil in development mode)
	scope  string  // Hocuspocus: the scope its Authenticated answer names
	ended  atomic.Bool

	// read loop only
	o        docRef
	readOnly bool
	batch    uint64
	clients  map[uint64]bool // awareness client ids this sub has set
	denied   bool            // y-websocket: told once that its updates are not applied
}

// maxAwarenessClients bounds the awareness client ids one sub may set
// (a provider has one; a few more for editors sharing a connection).
const maxAwarenessClients = 8

var (
	_ owner.Subscriber = (*yjsSub)(nil)
	_ owner.Author     = (*yjsSub)(nil)
	_ owner.Authored   = (*yjsSub)(nil)
)

func (y *yjsSub) ID() string      { return y.id }
func (y *yjsSub) Seen() time.Time { return y.conn.Seen() }

// Subject is the token subject of the sub's user ("" in development mode).
func (y *yjsSub) Subject() string {
	if y.claims == nil {
		return ""
	}
	return y.claims.Subject
}

// Admit applies the connection's op rate to an update (Yjs client ids
// are not claimed: see docs/YJS.md). A Yjs update costs one op per 16
// bytes, at least one: typing (an update of ~25 bytes a keystroke) and a
// burst of 20,000 small updates pass, a flood of megabytes does not.
func (y *yjsSub) Admit(_ []uint64, _, length int) error {
	return y.conn.Admit(nil, 1, max(1, length/16))
}

// user is who the sub is in presence and in its awareness states.
func (y *yjsSub) user() presence.User { return userOf(y.claims, y.id) }

// frame is body as a frame of the sub's door: as it is for y-websocket,
// after the routing key for Hocuspocus (whose bodies are y-websocket's).
func (y *yjsSub) frame(body []byte) []byte {
	if y.key == nil {
		return body
	}
	out := make([]byte, 0, len(y.key)+len(body))
	return append(append(out, y.key...), body...)
}

// hframe is a Hocuspocus-only message for the sub's document.
func (y *yjsSub) hframe(m yproto.HMessage) []byte {
	m.Doc, m.Session, m.HasKey = "", "", false
	return y.frame(yproto.AppendHocuspocus(nil, m)[1:]) // the body after an empty key's one length byte
}

// hocusKey is the encoded routing key of a Hocuspocus frame (its
// varString), the prefix of every frame for that provider.
func hocusKey(m yproto.HMessage) []byte {
	b := yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HQueryAwareness, Doc: m.Doc, Session: m.Session, HasKey: m.HasKey})
	return b[:len(b)-1] // HQueryAwareness has no body: drop its one type byte
}

func (y *yjsSub) hocus() bool { return y.key != nil }

// Deliver encodes an owner event for the sub's door and queues it. An
// update or awareness change fanned out to many subs is encoded once (the
// event's Memo holds the y-websocket body, which Hocuspocus frames carry
// after their key).
func (y *yjsSub) Deliver(ev owner.Event) bool {
	c := y.conn
	switch ev := ev.(type) {
	case *owner.SyncEvent:
		if ev.Update != nil {
			t := yproto.SyncUpdate
			if ev.Final {
				t = yproto.SyncStep2
			}
			if !c.enqueueSync(y.frame(yproto.AppendSync(nil, t, ev.Update))) {
				return false
			}
		}
		if ev.SV != nil {
			return c.enqueue(y.frame(yproto.AppendSync(nil, yproto.SyncStep1, ev.SV)))
		}
		return true
	case *owner.UpdateEvent:
		if ev.Memo == nil {
			for _, u := range ev.Updates {
				ev.Memo = append(ev.Memo, yproto.AppendSync(nil, yproto.SyncUpdate, u))
			}
		}
		for _, body := range ev.Memo {
			if !c.enqueue(y.frame(body)) {
				return false
			}
		}
		return true
	case *owner.AwarenessEvent:
		return c.enqueue(y.frame(awarenessBody(ev)))
	case *owner.JoinedEvent:
		if !y.hocus() {
			return true
		}
		// The document is open: only now is the provider told it is authenticated.
		return c.enqueue(y.hframe(yproto.HMessage{Type: yproto.HAuth, Auth: yproto.AuthAuthenticated, Text: y.scope, HasText: true}))
	case *owner.AckEvent:
		if !y.hocus() {
			return true // y-websocket has no acks: its clients get the same durability untold
		}
		switch ev.Status {
		case protocol.AckDurable:
			// SyncStatus(true) only once the update is on disk: the
			// provider's unsyncedChanges reaching 0 means stored.
			return c.enqueue(y.hframe(yproto.HMessage{Type: yproto.HSyncStatus, Synced: true}))
		case protocol.AckRejected:
			return c.enqueue(y.hframe(yproto.HMessage{Type: yproto.HSyncStatus, Synced: false}))
		}
		return true
	case *owner.ErrorEvent:
		return y.refused(ev)
	case *owner.MessageEvent:
		if !y.hocus() {
			return true // y-websocket has no message channel
		}
		return c.enqueueSoft(y.hframe(yproto.HMessage{Type: yproto.HStateless, Stateless: string(ev.Data)}))
	}
	return true // presence (Yjs peers see awareness instead), follower events
}

// DeliverSoft queues awareness and messages unless the connection is
// behind (then they are dropped: the owner sends every state later).
func (y *yjsSub) DeliverSoft(ev owner.Event) bool {
	switch ev := ev.(type) {
	case *owner.AwarenessEvent:
		return y.conn.enqueueSoft(y.frame(awarenessBody(ev)))
	case *owner.PresenceEvent:
		return true
	}
	return y.Deliver(ev)
}

func awarenessBody(ev *owner.AwarenessEvent) []byte {
	if ev.Memo == nil {
		ev.Memo = yproto.AppendAwareness(nil, ev.Update)
	}
	return ev.Memo
}

// refused handles an owner's refusal. Neither door has error frames: a
// document that is gone (deleted, corrupt, of the other kind) is denied
// in the door's own words (y-websocket: the auth message, then the
// connection closes; Hocuspocus: permission denied for that document, the
// connection stays); any other refusal closes the connection with its
// code, and the provider reconnects and syncs again by state vector,
// which resends what the server does not have.
func (y *yjsSub) refused(ev *owner.ErrorEvent) bool {
	c := y.conn
	c.srv.metrics.ErrorSent(ev.Code)
	switch {
	case ev.Code == protocol.CodePresenceRefused:
		return true // a malformed or oversized awareness update: dropped
	case ev.End && y.hocus():
		y.ended.Store(true)
		return c.enqueue(y.hframe(yproto.HMessage{Type: yproto.HAuth, Auth: yproto.AuthPermissionDenied, Text: ev.Message, HasText: true}))
	case ev.End:
		y.ended.Store(true)
		c.enqueue(yproto.AppendAuthDenied(nil, ev.Message))
	}
	c.close(ev.Code, ev.Message)
	return false
}

// stampAwareness rewrites an awareness update from the sub's peer: states
// of more than maxAwarenessClients client ids are dropped, and in auth
// mode each state's "user" gets the token's name and color (nobody can
// appear as someone else). Read loop only. It returns nil when nothing is
// left to apply.
func (y *yjsSub) stampAwareness(update []byte, lim yproto.Limits) ([]byte, error) {
	entries, err := yproto.DecodeAwareness(update, lim)
	if err != nil {
		return nil, err
	}
	kept := entries[:0]
	for _, e := range entries {
		if !y.clients[e.Client] {
			if len(y.clients) >= maxAwarenessClients {
				continue
			}
			y.clients[e.Client] = true
		}
		if y.claims != nil && !e.Removed() {
			if e.State, err = stampUser(e.State, y.user()); err != nil {
				return nil, err
			}
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		return nil, nil
	}
	if len(kept) == len(entries) && y.claims == nil {
		return update, nil
	}
	return yproto.AppendAwarenessUpdate(nil, kept), nil
}

// stampUser sets the name and color of a state's "user" object (made if
// missing) to u's, keeping its other fields. A state that is not a JSON
// object is refused in auth mode.
func stampUser(state string, u presence.User) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(state), &obj); err != nil || obj == nil {
		return "", fmt.Errorf("%w: awareness state is not a JSON object", yproto.ErrMalformed)
	}
	user := map[string]json.RawMessage{}
	if raw, ok := obj["user"]; ok {
		_ = json.Unmarshal(raw, &user) // a non-object user is replaced
		if user == nil {
			user = map[string]json.RawMessage{}
		}
	}
	name, _ := json.Marshal(u.Name)
	color, _ := json.Marshal(u.Color)
	user["name"], user["color"] = name, color
	if u.ID != "" {
		id, _ := json.Marshal(u.ID)
		user["id"] = id
	}
	raw, _ := json.Marshal(user)
	obj["user"] = raw
	out, err := json.Marshal(obj)
	return string(out), err
}
