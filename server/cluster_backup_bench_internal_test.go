package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// BenchmarkClusterBackup: the copy a cluster backup makes (copyCluster:
// every document of the replicated store, snapshot-less here, 10 updates
// of 100 bytes each, into a new bbolt store) with 8, 16 and 32 documents
// at a time, in turn, and as the reference in the same run, a single
// node's backup of the resulting store (bbolt's hot copy, to io.Discard).
// One NATS node, R1.
func BenchmarkClusterBackup(b *testing.B) {
	const docs, updates = 500, 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nc := natstest.Single(b).Connect()
	logs, err := jetstream.New(ctx, nc, jetstream.Options{Replicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = logs.Close(context.Background()) })
	update := make([]byte, 100)
	for i := range docs {
		doc := fmt.Sprintf("doc-%04d", i)
		if _, err := logs.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
			b.Fatal(err)
		}
		var last *jetstream.Pending
		for range updates {
			if last, err = logs.Submit(doc, update); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := last.Result(); err != nil {
			b.Fatal(err)
		}
		logs.Release(doc)
	}
	copyTime := map[int]time.Duration{}
	var refTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		for _, workers := range []int{8, 16, 32} { // in turn: the same load on each
			st, err := storage.Open(filepath.Join(b.TempDir(), fmt.Sprintf("c%d-%d.db", i, workers)), storage.Options{})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			n, err := copyCluster(ctx, logs, st, workers)
			copyTime[workers] += time.Since(start)
			if err != nil || n != docs {
				b.Fatalf("copyCluster = %d, %v", n, err)
			}
			if workers == backupWorkers {
				start = time.Now()
				if _, err := st.Backup(ctx, io.Discard); err != nil {
					b.Fatal(err)
				}
				refTime += time.Since(start)
			}
			_ = st.Close()
		}
	}
	for workers, d := range copyTime {
		b.ReportMetric(float64(docs*b.N)/d.Seconds(), fmt.Sprintf("docs/s-%dworkers", workers))
	}
	b.ReportMetric(refTime.Seconds()*1000/float64(b.N), "bbolt-backup-ms/op")
}
