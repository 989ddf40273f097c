package chaos

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// An isolated server loses its routes and gets none back while it is
// isolated (no route around the proxies: routes are not learnt from
// gossip at the servers' real ports), the other two keep theirs, and the
// heal brings it back.
func TestExtNATSIsolate(t *testing.T) {
	if testing.Short() {
		t.Skip("three NATS servers")
	}
	ports, release, err := reservePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	x, err := newExtNATS(t.TempDir(), "tok", ports, nil)
	release() // the proxies have their ports
	if err != nil {
		t.Fatal(err)
	}
	defer x.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := x.start(ctx); err != nil {
		t.Fatal(err)
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("no %s: routes %d %d %d", what, x.servers[0].Routes(), x.servers[1].Routes(), x.servers[2].Routes())
			}
			time.Sleep(20 * time.Millisecond) // polling a count nats-server does not signal
		}
	}
	full := func() bool {
		return x.servers[0].Routes() > 0 && x.servers[1].Routes() > 0 && x.servers[2].Routes() > 0
	}
	until("full mesh", full)
	x.isolate(0, true)
	until("isolation", func() bool { return x.servers[0].Routes() == 0 })
	// It stays isolated: nats-server retries its configured routes (cut)
	// and has no other address of its peers.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := x.servers[0].Routes(); n != 0 {
			t.Fatalf("isolated server has %d routes again", n)
		}
		if x.servers[1].Routes() == 0 || x.servers[2].Routes() == 0 {
			t.Fatalf("the other two lost each other: routes %d %d", x.servers[1].Routes(), x.servers[2].Routes())
		}
	}
	x.isolate(0, false)
	until("routes after the heal", full)
}

// No route bypasses the proxies: with server 1 and server 3 cut off each
// other from the start, server 1 learns of server 3 from server 2 (the
// gossip that makes implicit routes) and tries the address server 3
// announces, which refuses; it never routes to server 3 until the heal.
// (Before the servers announced a refusing address, such a route went
// straight to server 3's route port and survived every isolation.)
func TestExtNATSNoImplicitRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("three NATS servers")
	}
	ports, release, err := reservePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	logs := newSyncBuffer()
	x, err := newExtNATS(t.TempDir(), "tok", ports, &lineWriterSet{w: logs})
	release() // the proxies have their ports
	if err != nil {
		t.Fatal(err)
	}
	defer x.stop()
	x.routes[0][2].setCut(true)
	x.routes[2][0].setCut(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := x.start(ctx); err != nil {
		t.Fatal(err)
	}
	// The implicit route's attempt is logged as an error naming the
	// announced address, refused: the event to wait on.
	nowhere := "dial tcp " + x.cfgs[2].ClusterAdvertise + ": connect: connection refused"
	for !strings.Contains(logs.String(), nowhere) {
		select {
		case <-logs.wrote:
		case <-ctx.Done():
			t.Fatalf("no server tried the route address announced, refused (%q); log:\n%s", nowhere, logs.String())
		}
	}
	if x.servers[0].RoutedTo("nats3") || x.servers[2].RoutedTo("nats1") {
		t.Fatal("servers 1 and 3 are routed to each other around their cut proxies")
	}
	x.routes[0][2].setCut(false)
	x.routes[2][0].setCut(false)
	for !x.servers[0].RoutedTo("nats3") {
		if ctx.Err() != nil {
			t.Fatal("no route between servers 1 and 3 after the heal")
		}
		time.Sleep(20 * time.Millisecond) // polling: nats-server signals no new route
	}
}

// syncBuffer is a bytes.Buffer for writers on several goroutines; wrote
// is signalled after every write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{} // capacity 1
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
