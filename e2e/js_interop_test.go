package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
	"github.com/collabd/collabd/server"
)

// TestJSInterop: JS clients (clients/js, driven by test/interop-driver.mjs
// in a node process) and Go clients (clients/go) edit one document at the
// same time, both cutting their connections at random; at quiescence every
// replica in both languages has the server's text and state vector.
//
// It needs node and clients/js/node_modules (`make js` installs them); it
// builds clients/js/dist itself. Without them it is skipped.
func TestJSInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH")
	}
	jsDir, err := filepath.Abs("../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "ws")); err != nil {
		t.Skip("clients/js/node_modules missing: run make js")
	}
	build := exec.Command("npm", "run", "--silent", "build")
	build.Dir = jsDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("npm run build: %v\n%s", err, out)
	}

	seed := uint64(time.Now().UnixNano() % 1_000_000)
	t.Logf("seed %d", seed)
	const doc, goClients, goEdits, jsSteps = "interop", 3, 300, 300
	ts := startServer(t, server.Config{})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "test/interop-driver.mjs", ts.url(), doc, fmt.Sprint(seed), fmt.Sprint(jsSteps))
	cmd.Dir = jsDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		for range lines { // drain so the reader ends
		}
	})
	next := func(prefix string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("seed %d: driver ended before %s: %v\n%s", seed, prefix, <-exited, stderr.String())
				}
				if rest, found := strings.CutPrefix(l, prefix); found {
					return rest
				}
			case <-ctx.Done():
				t.Fatalf("seed %d: waiting for %s: %v\n%s", seed, prefix, ctx.Err(), stderr.String())
			}
		}
	}

	sws := make([]*netSwitch, goClients)
	reps := make([]*collab.Document, goClients)
	for i := range goClients {
		sws[i] = &netSwitch{}
		reps[i] = join(t, dialClient(t, ts.url(), 0, sws[i]), doc)
	}
	errs := make(chan error, goClients)
	var wg sync.WaitGroup
	for i := range goClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			tick := time.NewTicker(2 * time.Millisecond) // paces the edits to overlap the JS ones
			defer tick.Stop()
			for k := range goEdits {
				<-tick.C
				if err := randomEdit(r, reps[i], fmt.Sprintf("<g%d.%d>", i, k)); err != nil {
					errs <- fmt.Errorf("go client %d edit %d: %w", i, k, err)
					return
				}
				if r.IntN(30) == 0 {
					sws[i].cut()
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	for range goClients {
		if err := <-errs; err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	for i, d := range reps {
		if err := d.WaitDurable(ctx); err != nil {
			t.Fatalf("seed %d: go client %d: WaitDurable: %v (status %+v)", seed, i, err, d.Status())
		}
	}
	next("EDITED")

	// Every edit of both languages is durable: a fresh client sees them all.
	want := checkConverged(t, seed, ts.url(), doc, reps)
	if _, err := io.WriteString(stdin, "SV "+hex.EncodeToString([]byte(want.sv))+"\n"); err != nil {
		t.Fatal(err)
	}
	var js []struct{ Body, Title, SV string }
	if err := json.Unmarshal([]byte(next("RESULT ")), &js); err != nil {
		t.Fatal(err)
	}
	for i, r := range js {
		got := snapshot{texts: map[string]string{}, sv: mustHex(t, r.SV)}
		for root, s := range map[string]string{"body": r.Body, "title": r.Title} {
			if s != "" {
				got.texts[root] = s
			}
		}
		if !got.equal(want) {
			t.Errorf("seed %d: JS replica %d = %q (sv %s), server %q (sv %x)", seed, i, got.texts, r.SV, want.texts, want.sv)
		}
	}
	if err := <-exited; err != nil {
		t.Errorf("driver: %v\n%s", err, stderr.String())
	}
	if sv, _ := crdt.DecodeStateVector([]byte(want.sv), crdt.Limits{}); len(sv) < goClients+3 {
		t.Errorf("seed %d: the server's state vector has %d agents, want every client's (%d)", seed, len(sv), goClients+3)
	}
}

func mustHex(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Regression: the server kept idle connections alive with WebSocket control
// pings, which browser JavaScript never sees, so a browser client heard
// nothing on an idle document. docs/PROTOCOL.md (Keepalive): the server sends
// `ping [9, nonce]` frames and the client answers with `pong [10, nonce]`.
func TestServerSendsPingFrames(t *testing.T) {
	ts := startServer(t, server.Config{PingInterval: 50 * time.Millisecond, PongTimeout: time.Second})
	b := dialBare(t, ts.url(), 1)
	b.conn.SetPingHandler(func(string) error { return nil }) // a browser never sees these
	deadline := time.Now().Add(500 * time.Millisecond)       // ten ping intervals
	for time.Now().Before(deadline) {
		_ = b.conn.SetReadDeadline(deadline)
		_, data, err := b.conn.ReadMessage()
		if err != nil {
			break
		}
		if m, err := protocol.Decode(data, protocol.DecodeLimits{}); err == nil && m.Type() == protocol.TypePing {
			return // fixed
		}
	}
	t.Errorf("no ping frame [9, nonce] from the server in 500 ms with ping_interval_ms 50 (PROTOCOL.md Keepalive); it sends WebSocket control pings instead")
}
