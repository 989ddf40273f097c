package chaos

import (
	"context"
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
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	x, err := newExtNATS(t.TempDir(), "tok", ports, nil)
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
