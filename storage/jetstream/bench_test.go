package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// BenchmarkAckLatency: one update at a time, waiting for its ack: the
// durable-ack latency (in-process nodes on loopback).
// "sync" runs are with SyncAlways (collabd serve --nats-sync always, the
// default): every record fsynced on a quorum before its ack.
func BenchmarkAckLatency(b *testing.B) {
	for _, run := range []struct {
		nodes int
		sync  bool
	}{{1, false}, {3, false}, {1, true}, {3, true}} {
		name := fmt.Sprintf("R%d", run.nodes)
		if run.sync {
			name += "-sync"
		}
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, run.nodes, run.sync)
			update := make([]byte, 100)
			b.ResetTimer()
			for range b.N {
				p, err := s.Submit("doc", update)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Result(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThroughput: 64 documents with 16 updates in flight each
// (grouped into records per document).
func BenchmarkThroughput(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", nodes), func(b *testing.B) {
			s := benchStore(b, nodes, false, benchDocs(64)...)
			update := make([]byte, 100)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/64 + 1
			for d := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					doc := fmt.Sprintf("doc-%d", d)
					var ps []*jetstream.Pending
					for i := range per {
						p, err := s.Submit(doc, update)
						if errors.Is(err, jetstream.ErrBusy) {
							continue
						}
						if err != nil {
							b.Error(err)
							return
						}
						ps = append(ps, p)
						if len(ps) == 16 || i == per-1 {
							for _, p := range ps {
								if _, err := p.Result(); err != nil {
									b.Error(err)
									return
								}
							}
							ps = ps[:0]
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func benchDocs(n int) []string {
	var docs []string
	for i := range n {
		docs = append(docs, fmt.Sprintf("doc-%d", i))
	}
	return docs
}

func benchStore(b *testing.B, nodes int, sync bool, docs ...string) *jetstream.Store {
	b.Helper()
	if len(docs) == 0 {
		docs = []string{"doc"}
	}
	var c *natstest.Cluster
	if nodes == 1 {
		c = natstest.SingleWith(b, func(cfg *natsembed.Config) { cfg.SyncAlways = sync })
	} else {
		c = natstest.StartWith(b, nodes, func(_ int, cfg *natsembed.Config) { cfg.SyncAlways = sync })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := jetstream.New(ctx, c.Connect(), jetstream.Options{Replicas: nodes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	for _, d := range docs {
		if _, err := s.Open(ctx, d, 1); err != nil && !errors.Is(err, jetstream.ErrNotFound) {
			b.Fatal(err)
		}
	}
	return s
}
