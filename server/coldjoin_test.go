package server_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// joinSnapshot joins doc asking for the snapshot form and returns the Sync
// frames of the answer.
func (c *client) joinSnapshot(doc string) []*protocol.Sync {
	c.t.Helper()
	c.send(&protocol.Join{Doc: doc, SV: crdt.StateVector{}, Snapshot: true})
	var out []*protocol.Sync
	for {
		m, ok := c.read().(*protocol.Sync)
		if !ok {
			c.t.Fatalf("expected sync, got %T", m)
		}
		out = append(out, m)
		if m.Final {
			return out
		}
	}
}

// A cold join that asks for it gets the document as a snapshot, in pieces
// of at most MaxChunk bytes that concatenate to one snapshot; a join that
// does not ask (an older client) gets updates, as before. Both hold the
// same text and state vector, after a restart too (the server's replica is
// then a lazily loaded snapshot).
func TestColdJoinSnapshot(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{OpRate: 1e9, OpBurst: 1 << 30} // 300,000 ops in a few batches
	ts := startServerWith(t, dir, cfg)
	a := dial(t, ts.url, 1)
	a.join("big")
	// Random text that compresses badly, at random positions: a snapshot
	// of more than one piece.
	rng := rand.New(rand.NewPCG(1, 2))
	var batch uint64
	for range 30 {
		batch++
		a.edit("big", batch, func(x *crdt.Text) error {
			for range 100 {
				var sb strings.Builder
				for range 100 {
					sb.WriteRune(rune('!' + rng.IntN(90)))
				}
				if err := x.Insert(rng.IntN(x.Len()+1), sb.String()); err != nil {
					return err
				}
			}
			return nil
		})
		durable := false
		for !durable {
			switch m := a.read().(type) {
			case *protocol.Ack:
				if m.Status == protocol.AckRejected {
					t.Fatalf("batch %d rejected", m.Batch)
				}
				durable = m.Status == protocol.AckDurable && m.Batch == batch
			case *protocol.Error:
				t.Fatalf("batch %d: %s", batch, m.Message)
			}
		}
	}
	want := a.doc.Text("body").String()
	check := func(when string, url string) {
		t.Helper()
		c := dial(t, url, 5)
		syncs := c.joinSnapshot("big")
		var snap []byte
		for i, s := range syncs {
			if !s.Snapshot || s.Chunk != i || len(s.Update) > protocol.MaxChunk {
				t.Fatalf("%s: sync %d: snapshot %v, chunk %d, %d bytes", when, i, s.Snapshot, s.Chunk, len(s.Update))
			}
			snap = append(snap, s.Update...)
		}
		if len(syncs) < 2 {
			t.Fatalf("%s: a %d-byte snapshot came in %d piece(s), want several", when, len(snap), len(syncs))
		}
		d, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 5})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if got := d.Text("body").String(); got != want {
			t.Fatalf("%s: snapshot text differs (%d vs %d code points)", when, len([]rune(got)), len([]rune(want)))
		}
		if final := syncs[len(syncs)-1]; !final.SV.Equal(d.StateVector()) {
			t.Fatalf("%s: final state vector %v, snapshot's %v", when, final.SV, d.StateVector())
		}
		old := dial(t, url, 6)
		old.join("big") // no snapshot flag: updates
		if got := old.doc.Text("body").String(); got != want {
			t.Fatalf("%s: updates give another text", when)
		}
		// The snapshot replica edits like any other.
		if err := d.Text("body").Insert(0, "x"); err != nil {
			t.Fatal(err)
		}
		c.send(&protocol.Update{Doc: "big", Batch: 1, Update: d.TakeUpdate()})
		for {
			if m, ok := c.read().(*protocol.Ack); ok {
				if m.Status != protocol.AckApplied && m.Status != protocol.AckDurable {
					t.Fatalf("%s: edit after a snapshot join: ack status %d", when, m.Status)
				}
				break
			}
		}
		want = d.Text("body").String()
	}
	check("live", ts.url)
	ts.stop()
	ts2 := startServerWith(t, dir, cfg)
	check("after restart", ts2.url)
}

// A snapshot from outside (PUT) is checked whole before it is merged: one
// whose lengths agree but whose structure does not (the hostile_origin
// golden vector, which a lazy load accepts) is refused, and nothing
// changes.
func TestImportChecksLazySnapshot(t *testing.T) {
	raw, err := os.ReadFile("../testdata/golden/lazy_snapshots.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Vectors []struct{ Name, Snapshot string }
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	var hostile []byte
	for _, v := range g.Vectors {
		if v.Name == "hostile_origin" {
			hostile, _ = hex.DecodeString(v.Snapshot)
		}
	}
	if hostile == nil {
		t.Fatal("no hostile_origin vector")
	}
	if _, err := crdt.LoadSnapshot(hostile, crdt.Options{}); err != nil {
		t.Fatalf("the vector should load lazily: %v", err)
	}
	ts := startServerWith(t, t.TempDir(), server.Config{})
	req, _ := http.NewRequest("PUT", httpURL(ts)+"/v1/docs/h/snapshot", bytes.NewReader(hostile))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "snapshot") {
		t.Fatalf("PUT hostile snapshot: %d %s, want 400", resp.StatusCode, body)
	}
	if resp, err := http.Get(httpURL(ts) + "/v1/docs/h"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("after a refused import the document exists: %v %v", err, resp.Status)
	} else {
		resp.Body.Close()
	}
}
