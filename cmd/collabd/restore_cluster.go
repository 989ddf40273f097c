package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/server/cluster"
	"github.com/collabd/collabd/storage"
	"github.com/collabd/collabd/storage/jetstream"
)

// restoreToCluster implements "collabd restore --nats": it loads every
// document of a single node's backup (or stopped collabd.db) into a
// running cluster's JetStream, the way into cluster mode. Each document is
// written under its lease, as an owner would (a fenced writer at the
// lease's epoch): its snapshot, then its log tail. A document the cluster
// already has, or whose lease a node holds, is skipped and reported; the
// cluster's nodes keep serving meanwhile. The stream's and buckets'
// replication and the lease TTL are read from the cluster, never changed.
func restoreToCluster(ctx context.Context, in, urls string, sec natsSecurity, stdout, progress io.Writer) error {
	if _, err := verifyFile(ctx, in); err != nil {
		return fmt.Errorf("%s does not verify, nothing restored: %w", in, err)
	}
	src, err := openReadOnly(in)
	if err != nil {
		return err
	}
	defer src.Close()
	opts, err := sec.clientOptions()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(urls, append(opts, nats.Name("collabd restore"))...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	// The cluster's settings: a Store or Leases made with others would
	// update the shared stream and buckets.
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	str, err := js.Stream(ctx, "collabd_ops")
	if err != nil {
		return fmt.Errorf("no collabd cluster on this NATS (stream collabd_ops: %w); start its nodes first", err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return err
	}
	lkv, err := js.KeyValue(ctx, "collabd_leases")
	if err != nil {
		return fmt.Errorf("no collabd cluster on this NATS (lease bucket: %w); start its nodes first", err)
	}
	lst, err := lkv.Status(ctx)
	if err != nil {
		return err
	}
	logs, err := jetstream.New(ctx, nc, jetstream.Options{Replicas: info.Config.Replicas, MaxRecordBytes: int(info.Config.MaxMsgSize)})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = logs.Close(cctx) // every write was waited for
	}()
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	leases, err := cluster.NewLeases(ctx, nc, cluster.LeaseOptions{Node: "restore-" + hex.EncodeToString(b[:]),
		TTL: lst.TTL(), Replicas: info.Config.Replicas})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = leases.Close(cctx) // releases what is left; leases expire anyway
	}()
	var restored, skipped int
	for after := ""; ; {
		docs, err := src.List(ctx, storage.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			break
		}
		for _, d := range docs {
			after = d.ID
			if d.Deleted {
				continue
			}
			why, err := restoreDoc(ctx, src, logs, leases, d.ID)
			if err != nil {
				return fmt.Errorf("%q: %w (%d restored before it)", d.ID, err, restored)
			}
			if why != "" {
				skipped++
				fmt.Fprintf(progress, "skipped %q: %s\n", d.ID, why)
				continue
			}
			restored++
		}
	}
	fmt.Fprintf(stdout, "restored %s into the cluster at %s: %d documents, %d skipped\n", in, redactURLs(urls), restored, skipped)
	if skipped > 0 {
		return fmt.Errorf("%d documents skipped (already in the cluster or in use)", skipped)
	}
	return nil
}

// restoreDoc writes one document under its lease; why says why it was
// skipped.
func restoreDoc(ctx context.Context, src *storage.Store, logs *jetstream.Store, leases *cluster.Leases, id string) (why string, err error) {
	doc, err := src.Load(ctx, id)
	if err != nil {
		return "", err
	}
	lease, err := leases.Acquire(ctx, id)
	if errors.Is(err, cluster.ErrHeld) {
		return "a node holds its lease (it is in use in the cluster)", nil
	}
	if err != nil {
		return "", err
	}
	defer func() {
		logs.Release(id)
		_ = leases.Release(context.WithoutCancel(ctx), lease) // it expires anyway
	}()
	st, err := logs.Open(ctx, id, lease.Epoch)
	switch {
	case errors.Is(err, jetstream.ErrDeleted):
		return "deleted in the cluster", nil
	case err == nil:
		return "the cluster has it already", nil
	case !errors.Is(err, jetstream.ErrNotFound):
		return "", err
	}
	if doc.Info.HasSnapshot {
		// The snapshot covers the log up to the fence Open appended.
		if err := logs.Compact(ctx, id, doc.Snapshot, st.LastSeq); err != nil {
			return "", err
		}
	}
	// Submit never blocks: past the queue's bound (ErrBusy) wait for the
	// oldest write in flight, then submit again. Every write is waited for
	// (a failed record does not stop the ones after it).
	var inFlight []*jetstream.Pending
	for _, e := range doc.Tail {
		p, err := logs.Submit(id, e.Data)
		for errors.Is(err, jetstream.ErrBusy) && len(inFlight) > 0 {
			if _, err = waitPending(ctx, inFlight[0]); err != nil {
				return "", err
			}
			inFlight = inFlight[1:]
			p, err = logs.Submit(id, e.Data)
		}
		if err != nil {
			return "", err
		}
		inFlight = append(inFlight, p)
	}
	for _, p := range inFlight {
		if _, err := waitPending(ctx, p); err != nil {
			return "", err
		}
	}
	return "", restoreVersions(ctx, src, logs, id)
}

// restoreVersions copies a document's versions, oldest first, each with
// its original time.
func restoreVersions(ctx context.Context, src *storage.Store, logs *jetstream.Store, id string) error {
	var seqs []uint64 // newest first
	for before := uint64(0); ; {
		page, err := src.Versions(ctx, id, before, 1000)
		if err != nil {
			return err
		}
		for _, v := range page {
			seqs = append(seqs, v.Seq)
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].Seq
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		v, err := src.Version(ctx, id, seqs[i])
		if err != nil {
			return err
		}
		meta := cluster.VersionMeta{Version: v.Version, Named: v.Kind == storage.VersionNamed, Label: v.Label,
			Authors: v.Authors, Time: v.Time.UnixNano()}
		p, err := logs.SubmitVersion(id, meta.Encode(), v.Snapshot)
		if err != nil {
			return fmt.Errorf("version %d: %w", v.Seq, err)
		}
		if _, err := waitPending(ctx, p); err != nil {
			return fmt.Errorf("version %d: %w", v.Seq, err)
		}
	}
	return nil
}

// waitPending waits for a write's ack.
func waitPending(ctx context.Context, p *jetstream.Pending) (uint64, error) {
	select {
	case <-p.Done():
		return p.Result()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
