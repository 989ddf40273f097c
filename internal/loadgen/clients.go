package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/internal/rawclient"
)

// full is a clients/go client joined to one document.
type full struct {
	c *collab.Client
	d *collab.Document
}

// dialFull connects a clients/go client and joins doc.
func dialFull(ctx context.Context, cfg Config, doc string) (*full, error) {
	c, err := collab.Dial(ctx, cfg.URL, collab.Options{Token: cfg.Token})
	if err != nil {
		return nil, err
	}
	d, err := c.Join(ctx, doc)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("loadgen: join %s: %w", doc, err)
	}
	return &full{c: c, d: d}, nil
}

func closeFull(fs []*full) {
	var wg sync.WaitGroup
	for _, f := range fs {
		if f != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = f.c.Close() }()
		}
	}
	wg.Wait()
}

// dialLight connects a raw-protocol client that keeps a replica (cheap:
// thousands per run). buf is the WebSocket buffer size (small for idle
// connections).
func dialLight(ctx context.Context, cfg Config, buf int) (*rawclient.Conn, error) {
	return rawclient.Dial(ctx, cfg.URL, rawclient.Options{Token: cfg.Token, Client: "collabd-bench", Replica: true, BufferSize: buf})
}

func closeLight(ls []*rawclient.Conn) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}

// runID is a random suffix that keeps documents of different runs apart.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitUntil polls cond every 20 ms until it holds, ctx ends or d passes.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
	return true
}

// texts compares texts: it returns how many differ from want.
func differing(want string, got []string) int {
	n := 0
	for _, g := range got {
		if g != want {
			n++
		}
	}
	return n
}
