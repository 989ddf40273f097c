package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MemberOptions configures Members. A zero field is the documented
// default.
type MemberOptions struct {
	// Prefix names the bucket "<Prefix>_nodes"; "" is "collabd".
	Prefix string
	// Node is this node's id (required; letters, digits, '-', '_').
	Node string
	// Info is published as this node's value (e.g. its forwarding address).
	Info []byte
	// TTL is how long a node stays live after its last heartbeat; 0 is
	// 5 s. It is the bucket's TTL: every node must use the same.
	TTL time.Duration
	// Replicas of the bucket (1..5); 0 is 3.
	Replicas int
	// Beat, if set, drives heartbeats instead of a ticker every TTL/3
	// (tests stop sending to play a node that hangs).
	Beat <-chan time.Time
	// Logger gets heartbeat failures; nil discards them.
	Logger *slog.Logger
	// Stuck, if set, is called (on the heartbeat goroutine; it must not
	// block) when heartbeats have failed without a break for longer than
	// TTL, and again at most once a TTL while they go on failing. The NATS
	// server this node is connected to may have lost its cluster: a
	// partition between NATS servers leaves the client's connection up, so
	// nats.go does not move by itself. collabd serve then makes the
	// connection move to another server (external NATS).
	Stuck func()
}

// Members is this node's view of the live nodes: a JetStream KV bucket
// with one key per node, written on every heartbeat and expiring TTL after
// the last one (the servers put a marker then, so watchers see it). Leave
// deletes the key at once. One goroutine heartbeats, another watches the
// bucket; Leave stops both.
type Members struct {
	opts MemberOptions
	kv   jetstream.KeyValue
	w    jetstream.KeyWatcher

	stop chan struct{} // closed by Leave
	wg   sync.WaitGroup

	mu      sync.Mutex           // guards the fields below
	live    map[string][]byte    // node → info
	seen    map[string]time.Time // node → when its last heartbeat was received
	changed chan struct{}        // closed and replaced on every change
	synced  chan struct{}        // closed once the watcher has the initial values
	left    bool
}

// Join publishes this node in the bucket (through nc, which stays the
// caller's) and starts heartbeating and watching. It returns once the
// initial membership is known.
func Join(ctx context.Context, nc *nats.Conn, opts MemberOptions) (*Members, error) {
	if opts.Prefix == "" {
		opts.Prefix = "collabd"
	}
	if err := checkName("prefix", opts.Prefix); err != nil {
		return nil, err
	}
	if err := checkName("node id", opts.Node); err != nil {
		return nil, err
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	kv, err := bucket(ctx, js, opts.Prefix+"_nodes", "collabd live nodes (value: node info)", opts.TTL, opts.Replicas)
	if err != nil {
		return nil, err
	}
	if _, err := kv.Put(ctx, opts.Node, opts.Info); err != nil {
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	w, err := kv.WatchAll(context.Background()) // stopped by Leave
	if err != nil {
		return nil, fmt.Errorf("cluster: watch nodes: %w", err)
	}
	m := &Members{opts: opts, kv: kv, w: w, stop: make(chan struct{}), live: map[string][]byte{}, seen: map[string]time.Time{},
		changed: make(chan struct{}), synced: make(chan struct{})}
	m.wg.Add(2)
	go m.watch()
	go m.heartbeat()
	select {
	case <-m.synced:
		return m, nil
	case <-ctx.Done():
		_ = m.Leave(context.Background()) // undo the join; ctx's error is what matters
		return nil, ctx.Err()
	}
}

// Node is this node's id.
func (m *Members) Node() string { return m.opts.Node }

// Live is the sorted ids of the live nodes and a channel closed at the next
// change (wait on it, then call Live again).
func (m *Members) Live() ([]string, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.live))
	for id := range m.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, m.changed
}

// Info is a live node's published info.
func (m *Members) Info(node string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, ok := m.live[node]
	return info, ok
}

// Leave stops heartbeating and watching and deletes this node's key, so
// the others see it gone at once.
func (m *Members) Leave(ctx context.Context) error {
	m.mu.Lock()
	if m.left {
		m.mu.Unlock()
		return nil
	}
	m.left = true
	m.mu.Unlock()
	close(m.stop)
	_ = m.w.Stop() // ends the watcher's updates channel
	m.wg.Wait()
	if err := m.kv.Delete(ctx, m.opts.Node); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

func (m *Members) heartbeat() {
	defer m.wg.Done()
	beat := m.opts.Beat
	if beat == nil {
		t := time.NewTicker(m.opts.TTL / 3)
		defer t.Stop()
		beat = t.C
	}
	var failing, stuck time.Time // failing since (zero: the last beat landed); Stuck called last
	for {
		select {
		case <-m.stop:
			return
		case <-beat:
			ctx, cancel := context.WithTimeout(context.Background(), m.opts.TTL/3)
			_, err := m.kv.Put(ctx, m.opts.Node, m.opts.Info)
			cancel()
			now := time.Now()
			if err == nil {
				failing = time.Time{}
				continue
			}
			m.opts.Logger.Warn("cluster: heartbeat failed", "node", m.opts.Node, "err", err)
			if failing.IsZero() {
				failing = now
			}
			if m.opts.Stuck != nil && now.Sub(failing) > m.opts.TTL && now.Sub(stuck) > m.opts.TTL {
				stuck = now
				m.opts.Logger.Warn("cluster: heartbeats failing for longer than the TTL: moving to another NATS server", "node", m.opts.Node, "since", failing)
				m.opts.Stuck()
			}
		}
	}
}

// A node also leaves the view when no heartbeat of it was received for
// TTL and a half, whether or not the servers' expiry marker arrives: after
// a node's crash took the bucket's leader with it, the survivors' watchers
// were seen to miss the marker, and kept the dead node live for good
// (TestServeClusterSIGKILL). This node never leaves its own view.
func (m *Members) watch() {
	defer m.wg.Done()
	prune := time.NewTicker(max(m.opts.TTL/4, 10*time.Millisecond))
	defer prune.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-prune.C:
			m.mu.Lock()
			for id, t := range m.seen {
				if id != m.opts.Node && now.Sub(t) > m.opts.TTL+m.opts.TTL/2 {
					delete(m.seen, id)
					delete(m.live, id)
					m.notifyLocked()
				}
			}
			m.mu.Unlock()
		case e, ok := <-m.w.Updates():
			if !ok {
				return
			}
			m.mu.Lock()
			switch {
			case e == nil:
				select {
				case <-m.synced:
				default:
					close(m.synced)
				}
			case e.Operation() == jetstream.KeyValuePut:
				_, had := m.live[e.Key()]
				m.live[e.Key()] = e.Value()
				m.seen[e.Key()] = time.Now()
				if !had {
					m.notifyLocked()
				}
			default: // left or expired
				delete(m.seen, e.Key())
				if _, had := m.live[e.Key()]; had {
					delete(m.live, e.Key())
					m.notifyLocked()
				}
			}
			m.mu.Unlock()
		}
	}
}

// notifyLocked wakes the waiters of the current change channel. Called
// with m.mu held (closing never blocks).
func (m *Members) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}
