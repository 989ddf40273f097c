package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/rawclient"
	"github.com/collabd/collabd/protocol"
)

// ackWriter is a raw-protocol writer that times its acks: one batch per
// insert, and for each batch the time from its send to its applied ack and
// to its durable ack (the owner's apply, then the storage commit: bbolt's
// group commit on one node, JetStream's publish ack in a cluster).
//
// It keeps a replica of its own (the Conn's belongs to Run), touched only
// by the goroutine that calls insert and text. Run's goroutine records the
// acks; read the latencies only after close.
type ackWriter struct {
	c     *rawclient.Conn
	doc   *crdt.Doc
	id    string
	batch uint64
	base  time.Time
	sent  []atomic.Int64 // batch -> send time, ns since base + 1; 0: not sent
	wg    sync.WaitGroup // Run

	durableN atomic.Int64 // batches acked durable
	// owned by Run's goroutine until wg.Wait returns
	applied, durable latencies
}

// dialWriter connects a writer to cfg.URL, joins doc and starts its reader.
// It can send up to max batches; close it exactly once.
func dialWriter(ctx context.Context, cfg Config, doc string, max int) (*ackWriter, error) {
	w := &ackWriter{id: doc, base: time.Now(), sent: make([]atomic.Int64, max+1)}
	c, err := rawclient.Dial(ctx, cfg.URL, rawclient.Options{Token: cfg.Token, Client: "collabd-bench", Replica: true, OnAck: w.onAck})
	if err != nil {
		return nil, err
	}
	if err := c.Join(ctx, doc); err != nil {
		c.Close()
		return nil, fmt.Errorf("loadgen: writer join %s: %w", doc, err)
	}
	w.c = c
	w.doc = crdt.NewDoc(crdt.Options{Agent: c.Agent()})
	if err := w.doc.ApplyUpdate(c.Doc().EncodeDiff(nil)); err != nil { // what the document held
		c.Close()
		return nil, fmt.Errorf("loadgen: writer replica of %s: %w", doc, err)
	}
	w.wg.Add(1)
	go func() { defer w.wg.Done(); _, _ = c.Run(nil) }() // ends with the connection; missing acks show in the check
	return w, nil
}

// onAck runs on Run's goroutine.
func (w *ackWriter) onAck(a *protocol.Ack, at time.Time) {
	if a.Batch == 0 || a.Batch >= uint64(len(w.sent)) {
		return
	}
	s := w.sent[a.Batch].Load()
	if s == 0 {
		return
	}
	d := at.Sub(w.base) - time.Duration(s-1)
	switch a.Status {
	case protocol.AckApplied:
		w.applied.add(d)
	case protocol.AckDurable:
		w.durable.add(d)
		w.durableN.Add(1)
	}
}

// insert appends s to root as the next batch.
func (w *ackWriter) insert(root, s string) error {
	if w.batch+1 >= uint64(len(w.sent)) {
		return fmt.Errorf("loadgen: writer: more than %d batches", len(w.sent)-1)
	}
	t := w.doc.Text(root)
	if err := t.Insert(t.Len(), s); err != nil {
		return err
	}
	w.batch++
	w.sent[w.batch].Store(int64(time.Since(w.base)) + 1)
	return w.c.Send(&protocol.Update{Doc: w.id, Batch: w.batch, Update: w.doc.TakeUpdate()})
}

// text is the writer's text of root.
func (w *ackWriter) text(root string) string { return w.doc.Text(root).String() }

// allDurable reports whether every batch sent was acked durable.
func (w *ackWriter) allDurable() bool { return w.durableN.Load() >= int64(w.batch) }

// close closes the connection and waits for its reader.
func (w *ackWriter) close() {
	w.c.Close()
	w.wg.Wait()
}
