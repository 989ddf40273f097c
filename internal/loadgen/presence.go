package loadgen

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/rawclient"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// Presence is Peers light clients on one document, each moving its cursor
// Hz times a second for Duration.
type Presence struct {
	Peers    int           // default 100
	Hz       int           // cursor moves per second per peer (default 30)
	Duration time.Duration // default 10s
}

// RunPresence measures the server's CPU and what each client receives
// (bytes and frames a second) during a presence storm.
func RunPresence(ctx context.Context, cfg Config, p Presence) (*Result, error) {
	cfg = cfg.withDefaults()
	if p.Peers <= 0 {
		p.Peers = 100
	}
	if p.Hz <= 0 {
		p.Hz = 30
	}
	if p.Duration <= 0 {
		p.Duration = 10 * time.Second
	}
	start := time.Now()
	res := newResult("presence", param("peers", p.Peers), param("hz", p.Hz), param("duration", p.Duration))
	doc := "storm-" + runID()
	const textLen = 200
	peers := make([]*rawclient.Conn, p.Peers)
	var wg sync.WaitGroup
	defer func() {
		closeLight(peers)
		wg.Wait()
	}()
	// The first peer writes the text the cursors point into.
	first, err := dialLight(ctx, cfg, 4096)
	if err != nil {
		return nil, err
	}
	peers[0] = first
	if err := first.Join(ctx, doc); err != nil {
		return nil, err
	}
	batch, err := first.Insert(fanRoot, 0, strings.Repeat("abcdefghij", textLen/10))
	if err != nil {
		return nil, err
	}
	if err := waitAck(ctx, first, batch); err != nil {
		return nil, err
	}
	cfg.stage("connecting %d peers", p.Peers)
	if err := Bounded(ctx, p.Peers-1, cfg.Dial, func(ctx context.Context, j int) error {
		c, err := dialLight(ctx, cfg, 4096)
		if err != nil {
			return err
		}
		peers[j+1] = c
		return c.Join(ctx, doc)
	}); err != nil {
		return nil, err
	}
	// Cursor positions, computed before the readers own the replicas.
	pos := make([][][]byte, p.Peers)
	for i, c := range peers {
		t := c.Doc().Text(fanRoot)
		if t.Len() != textLen {
			return nil, fmt.Errorf("loadgen: peer %d has %d chars, want %d", i, t.Len(), textLen)
		}
		for k := range textLen {
			rp, err := t.RelPos(k, crdt.AssocAfter)
			if err != nil {
				return nil, err
			}
			pos[i] = append(pos[i], crdt.EncodeRelPos(rp))
		}
	}
	for _, c := range peers {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = c.Run(nil) }() // a dropped peer shows in Alive
	}
	var b0, f0 int64
	for _, c := range peers {
		b0 += c.Bytes()
		f0 += c.Frames()
	}
	smp := startSampler(ctx, newProbe(cfg), 500*time.Millisecond)
	t0 := time.Now()
	cfg.stage("%d peers moving cursors at %d Hz for %v", p.Peers, p.Hz, p.Duration)
	storm, cancel := context.WithTimeout(ctx, p.Duration)
	defer cancel()
	var movers sync.WaitGroup
	sentErr := make([]error, p.Peers)
	for i, c := range peers {
		movers.Add(1)
		go func() { // the only sender on c from here on
			defer movers.Done()
			tk := time.NewTicker(time.Second / time.Duration(p.Hz))
			defer tk.Stop()
			for n := i; ; n++ {
				select {
				case <-storm.Done():
					return
				case <-tk.C:
				}
				rp := pos[i][n%textLen]
				st := presence.State{Cursor: presence.Cursor{Root: fanRoot, Anchor: rp, Head: rp}}
				if err := c.Send(&protocol.PresenceSet{Doc: doc, State: st}); err != nil {
					sentErr[i] = err
					return
				}
			}
		}()
	}
	movers.Wait()
	secs := time.Since(t0).Seconds()
	use := smp.stop(ctx)
	var b1, f1 int64
	alive := 0
	for _, c := range peers {
		b1 += c.Bytes()
		f1 += c.Frames()
		if c.Alive() {
			alive++
		}
	}
	failed := 0
	for _, e := range sentErr {
		if e != nil {
			failed++
		}
	}
	res.add(metric("presence-sets sent", float64(p.Peers*p.Hz)*secs, "≈"),
		metric("bytes in per client", float64(b1-b0)/float64(p.Peers)/secs, "B/s"),
		metric("frames in per client", float64(f1-f0)/float64(p.Peers)/secs, "/s"))
	res.add(use.metrics("storm")...)
	res.check("peers stay connected", alive == p.Peers && failed == 0, "%d of %d open, %d send failures", alive, p.Peers, failed)
	res.check("presence received", f1 > f0, "%d frames", f1-f0)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// waitAck reads until the server acks batch as applied.
func waitAck(ctx context.Context, c *rawclient.Conn, batch uint64) error {
	for {
		m, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if a, ok := m.(*protocol.Ack); ok && a.Batch == batch && a.Status != protocol.AckRejected {
			return nil
		}
	}
}
