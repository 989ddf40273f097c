package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt/yjs"
	yproto "github.com/collabd/collabd/protocol/yjs"
)

// The Yjs wires, for driving collabd's Yjs doors, Hocuspocus and
// y-websocket from the same Go generator (issue 16, item 7): a yjsConn
// is one client speaking y-websocket (URL ws://host/v1/yjs, the document
// appended as y-websocket's provider does) or Hocuspocus (URL
// ws://host/v1/hocuspocus, or a Hocuspocus server's; the document named in
// every frame), with a Yjs replica of the crdt/yjs engine.

// Yjs wire protocols.
const (
	ProtoYWebsocket = "y-websocket"
	ProtoHocuspocus = "hocuspocus"
)

// yjsRoot is the Y.Text the Yjs scenarios type into (the reference
// harness's adapters use "t").
const yjsRoot = "t"

// yjsConn is one Yjs client. Its read loop (run) is the only reader and
// the only user of doc; writes are serialised by wmu.
type yjsConn struct {
	ws    *websocket.Conn
	proto string
	key   []byte // Hocuspocus: the encoded document name every frame starts with
	lim   yproto.Limits

	wmu sync.Mutex // guards writes to ws

	mu     sync.Mutex // guards doc, synced
	doc    *yjs.Doc
	synced chan struct{} // closed at the first sync step 2
	once   sync.Once
}

// dialYjs opens a Yjs client of doc over proto and starts the sync (step
// 1; Hocuspocus: the Auth message first, with token).
func dialYjs(ctx context.Context, cfg Config, proto, doc string) (*yjsConn, error) {
	u := cfg.URL
	if proto == ProtoYWebsocket {
		u = strings.TrimRight(u, "/") + "/" + doc
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	h := http.Header{}
	if cfg.Token != "" && proto == ProtoYWebsocket {
		h.Set("Authorization", "Bearer "+cfg.Token)
	}
	ws, _, err := d.DialContext(ctx, u, h)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	c := &yjsConn{ws: ws, proto: proto, lim: yproto.Limits{MaxMessage: 64 << 20}, doc: yjs.New(yjs.Limits{}), synced: make(chan struct{})}
	if proto == ProtoHocuspocus {
		k := yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HQueryAwareness, Doc: doc})
		c.key = k[:len(k)-1]
		if err := c.send(yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HAuth, Doc: doc, Auth: yproto.AuthToken,
			Text: cfg.Token, HasText: true, Version: "4.8.0"})); err != nil {
			ws.Close()
			return nil, err
		}
	}
	if err := c.sendSync(yproto.SyncStep1, c.doc.StateVector()); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *yjsConn) send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.BinaryMessage, frame)
}

// sendSync sends a sync message in the connection's framing.
func (c *yjsConn) sendSync(t yproto.SyncType, payload []byte) error {
	body := yproto.AppendSync(nil, t, payload)
	if c.key != nil {
		body = append(append([]byte(nil), c.key...), body...)
	}
	return c.send(body)
}

// insertAt appends s to the text as this client and sends the update.
func (c *yjsConn) insert(client uint64, s string) error {
	c.mu.Lock()
	u, err := c.doc.InsertText(client, yjsRoot, c.textLen(), s)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.sendSync(yproto.SyncUpdate, u)
}

// textLen is the text's length in UTF-16 units (ASCII here: characters);
// under mu.
func (c *yjsConn) textLen() int { return len(c.doc.Text(yjsRoot)) }

// text is the replica's text.
func (c *yjsConn) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc.Text(yjsRoot)
}

// run reads until the connection ends, applying updates; seen is told the
// text's length after each one (at its arrival time), and texts (if not
// nil) the text itself.
func (c *yjsConn) run(seen func(n int, at time.Time), texts func(text string, at time.Time)) error {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		at := time.Now()
		var t yproto.Type
		var st yproto.SyncType
		var payload []byte
		if c.proto == ProtoHocuspocus {
			m, err := yproto.DecodeHocuspocus(data, c.lim)
			if err != nil {
				return err
			}
			switch m.Type {
			case yproto.HPing:
				if err := c.send(yproto.AppendHocuspocus(nil, yproto.HMessage{Type: yproto.HPong})); err != nil {
					return err
				}
				continue
			case yproto.HAuth:
				if m.Auth == yproto.AuthPermissionDenied {
					return fmt.Errorf("loadgen: permission denied: %s", m.Text)
				}
				continue
			case yproto.HSync:
				t, st, payload = yproto.TypeSync, m.Sync, m.Payload
			default:
				continue
			}
		} else {
			m, err := yproto.Decode(data, c.lim)
			if err != nil {
				return err
			}
			t, st, payload = m.Type, m.Sync, m.Payload
		}
		if t != yproto.TypeSync {
			continue
		}
		if st == yproto.SyncStep1 { // the server's: answer with what it lacks
			c.mu.Lock()
			diff, err := c.doc.Diff(payload)
			c.mu.Unlock()
			if err != nil {
				return err
			}
			if err := c.sendSync(yproto.SyncStep2, diff); err != nil {
				return err
			}
			continue
		}
		c.mu.Lock()
		_, err = c.doc.Apply(payload)
		n := c.textLen()
		var text string
		if texts != nil {
			text = c.doc.Text(yjsRoot)
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if st == yproto.SyncStep2 {
			c.once.Do(func() { close(c.synced) })
		}
		seen(n, at)
		if texts != nil {
			texts(text, at)
		}
	}
}

func (c *yjsConn) close() { _ = c.ws.Close() }

// checkProto refuses an unknown Yjs wire.
func checkProto(proto string) error {
	if proto != ProtoYWebsocket && proto != ProtoHocuspocus {
		return fmt.Errorf("loadgen: unknown Yjs protocol %q (%s or %s)", proto, ProtoYWebsocket, ProtoHocuspocus)
	}
	return nil
}

// connectYjs dials len(conns) Yjs clients, client i of document doc(i),
// runs watch(i, c) on a goroutine for each (its read loop: it ends when the
// connection is closed; readers counts them) and returns once every one
// has its first sync.
func connectYjs(ctx context.Context, cfg Config, proto string, conns []*yjsConn, doc func(int) string,
	readers *sync.WaitGroup, watch func(i int, c *yjsConn)) error {
	return Bounded(ctx, len(conns), cfg.Dial, func(ctx context.Context, i int) error {
		c, err := dialYjs(ctx, cfg, proto, doc(i))
		if err != nil {
			return err
		}
		conns[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			watch(i, c)
		}()
		select {
		case <-c.synced:
			return nil
		case <-time.After(30 * time.Second):
			return errNotSynced
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// errNotSynced: a client did not get its first sync in time.
var errNotSynced = errors.New("loadgen: no sync step 2 in time")

// RunYjsFanout is RunFanout over a Yjs wire (proto): one writer appends
// one character per insert at Rate a second, Subscribers clients each keep
// a Yjs replica; latency runs from an insert's send to each subscriber's
// text reaching its length; every replica must end equal to the writer's.
func RunYjsFanout(ctx context.Context, cfg Config, proto string, p Fanout) (*Result, error) {
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	cfg, p = cfg.withDefaults(), p.withDefaults()
	start := time.Now()
	res := newResult("fanout", param("protocol", proto), param("subscribers", p.Subscribers), param("rate", p.Rate), param("duration", p.Duration))
	doc := "fanout-" + runID()
	pr := newProbe(cfg)

	all := make([]*yjsConn, p.Subscribers+1) // [0] is the writer
	defer func() {
		for _, c := range all {
			if c != nil {
				c.close()
			}
		}
	}()
	total := min(p.Rate*int(p.Duration/time.Second), markerCount)
	clk := newClock(total)
	lat := make([]latencies, len(all))
	progress := make([]int, len(all))
	var pmu sync.Mutex // guards progress
	var wg sync.WaitGroup
	t0 := time.Now()
	cfg.stage("connecting %d subscribers and the writer over %s", p.Subscribers, proto)
	err := connectYjs(ctx, cfg, proto, all, func(int) string { return doc }, &wg, func(i int, c *yjsConn) {
		last := 0
		_ = c.run(func(n int, at time.Time) {
			for k := last; k < n; k++ {
				if d, ok := clk.since(k, at); ok && i > 0 {
					lat[i].add(d)
				}
			}
			last = max(last, n)
			pmu.Lock()
			progress[i] = last
			pmu.Unlock()
		}, nil)
	})
	if err != nil {
		return nil, err
	}
	res.add(metric("subscribers connected in", time.Since(t0).Seconds(), "s"))

	smp := startSampler(ctx, pr, 500*time.Millisecond)
	cfg.stage("typing %d inserts/s for %v", p.Rate, p.Duration)
	writer, client := all[0], uint64(0x5eed)
	tick := time.NewTicker(time.Second / time.Duration(p.Rate))
	sent := 0
	for sent < total && ctx.Err() == nil {
		<-tick.C
		k := clk.take()
		if k < 0 {
			break
		}
		clk.stamp(k)
		if err := writer.insert(client, "x"); err != nil {
			break
		}
		sent++
	}
	tick.Stop()
	use := smp.stop(ctx)
	lastSend := time.Now()
	cfg.stage("waiting for %d subscribers to see every insert", p.Subscribers)
	settle, cancel := context.WithTimeout(ctx, cfg.Settle+10*time.Second)
	defer cancel()
	allSeen := waitUntil(settle, cfg.Settle, func() bool {
		pmu.Lock()
		defer pmu.Unlock()
		for i := 1; i < len(progress); i++ {
			if progress[i] < sent {
				return false
			}
		}
		return true
	})
	caughtUp := time.Since(lastSend)
	want := writer.text()
	var got []string
	for _, c := range all[1:] {
		got = append(got, c.text())
	}
	for _, c := range all {
		c.close()
	}
	wg.Wait()
	var merged latencies
	for i := range lat {
		merged.merge(&lat[i])
	}
	res.add(metric("inserts sent", float64(sent), ""))
	res.add(merged.summary("latency all")...)
	res.add(metric("last subscriber caught up after last send", float64(caughtUp.Milliseconds()), "ms"))
	res.add(use.metrics("load")...)
	bad := differing(want, got)
	pmu.Lock()
	seenAll := 0
	for i := 1; i < len(progress); i++ {
		if progress[i] >= sent {
			seenAll++
		}
	}
	pmu.Unlock()
	res.check("all inserts seen", allSeen, "%d of %d subscribers saw all %d inserts", seenAll, p.Subscribers, sent)
	res.check("converged", bad == 0 && len(want) == sent, "%d of %d texts differ from the writer's (%d chars)", bad, len(got), len(want))
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
