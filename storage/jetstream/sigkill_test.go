package jetstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/storage/jetstream"
)

// childEnv carries a child node's config: name|storeDir|client|cluster|routes.
const childEnv = "COLLABD_TEST_NATS_NODE"

// TestMain runs an embedded NATS node instead of the tests when started as
// a child of TestNoAckedLossOnSIGKILL.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		runChildNode(cfg)
		return
	}
	os.Exit(m.Run())
}

func runChildNode(cfg string) {
	f := strings.Split(cfg, "|")
	if len(f) != 5 {
		fmt.Println("bad config")
		os.Exit(2)
	}
	_, err := natsembed.Start(natsembed.Config{
		Name: f[0], StoreDir: f[1], Listen: f[2], ClusterName: "sigkill",
		ClusterListen: f[3], Routes: strings.Split(f[4], ","),
		ReadyTimeout: 30 * time.Second, // a loaded machine (the race stage runs beside other packages)
	})
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	select {} // until killed
}

// freePorts reserves n loopback ports by listening on port 0 and closing.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		_ = l.Close() // reserved only to learn a free port
	}
	return ports
}

// startSigkillNodes starts the three nodes as child processes on fresh
// ports and returns them and their client URLs; on failure it kills those
// it started.
func startSigkillNodes(t *testing.T) ([]*exec.Cmd, []string, error) {
	t.Helper()
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	var urls []string
	var cmds []*exec.Cmd
	kill := func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for i := range 3 {
		cfg := fmt.Sprintf("n%d|%s|127.0.0.1:%d|127.0.0.1:%d|%s", i+1, t.TempDir(), ports[i], ports[3+i], strings.Join(routes, ","))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+cfg)
		out, err := cmd.StdoutPipe()
		if err != nil {
			kill()
			return nil, nil, err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			kill()
			return nil, nil, err
		}
		cmds = append(cmds, cmd)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			kill()
			return nil, nil, fmt.Errorf("node %d: %q, %v", i+1, line, err)
		}
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill() // may be dead already
			_ = c.Wait()         // its exit status is the kill's
		}
	})
	return cmds, urls, nil
}

// TestNoAckedLossOnSIGKILL: three embedded nodes in child processes, a
// stream of three replicas; the stream leader's process is killed with
// SIGKILL (no shutdown, no leadership hand-over) while updates are being
// written. Writes resume once the survivors have elected a leader, and
// every acked update loads back, once, in order.
func TestNoAckedLossOnSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	// A reserved port can be taken by another process before its node
	// binds it (the node then never gets ready): the three start again on
	// fresh ports, up to three times.
	var urls []string
	var cmds []*exec.Cmd
	for try := 1; ; try++ {
		var err error
		if cmds, urls, err = startSigkillNodes(t); err == nil {
			break
		} else if try == 3 {
			t.Fatal(err)
		} else {
			t.Logf("start %d: %v; again on fresh ports", try, err)
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s := newStore(t, nc, jetstream.Options{Replicas: 3, WriteTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const doc = "survivor"
	if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatal(err)
	}
	var acked []string
	failed, next := 0, 0
	write := func(n int) {
		t.Helper()
		for done := 0; done < n; {
			var ps []*jetstream.Pending
			var us []string
			for range 16 {
				u := fmt.Sprintf("u%d", next)
				p, err := s.Submit(doc, []byte(u))
				if errors.Is(err, jetstream.ErrBusy) {
					break
				}
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				next++
				ps, us = append(ps, p), append(us, u)
			}
			for i, p := range ps {
				select {
				case <-p.Done():
				case <-ctx.Done():
					t.Fatal("writes stalled")
				}
				if _, err := p.Result(); err == nil {
					acked = append(acked, us[i])
					done++
				} else if errors.Is(err, jetstream.ErrUnavailable) {
					failed++
				} else {
					t.Fatalf("update %s: %v", us[i], err)
				}
			}
		}
	}
	write(200)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, "collabd_ops")
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	var leader int
	if _, err := fmt.Sscanf(info.Cluster.Leader, "n%d", &leader); err != nil {
		t.Fatalf("leader %q: %v", info.Cluster.Leader, err)
	}
	start := time.Now()
	if err := cmds[leader-1].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	write(200)
	t.Logf("SIGKILL of the stream leader %s: 200 more acked after %v (%d unconfirmed)", info.Cluster.Leader, time.Since(start), failed)
	check(t, ctx, s, doc, acked, 400)
}
