package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/collabd/collabd/internal/natsembed/natstest"
)

// TestServeClusterFlags: cluster flags that do not go together are
// refused before anything starts (exit 2).
func TestServeClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-embedded"}, "--node-id"},
		{[]string{"--nats", "nats://x:4222", "--nats-embedded", "--node-id", "n1"}, "exclude"},
		{[]string{"--nats-routes", "nats://n2:6222"}, "need --nats-embedded"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-listen", ":4222"}, "need --nats-embedded"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-replicas", "7"}, "1 to 5"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--lease-ttl", "10ms"}, "at least 1s"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-sync", "sometimes"}, "\"always\" or an interval"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-sync", "-1s"}, "\"always\" or an interval"},
		{[]string{"--nats-token", "x"}, "need --nats or --nats-embedded"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-user", "u"}, "go together"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-token", "t", "--nats-user", "u", "--nats-password", "p"}, "excludes"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-creds", "f", "--nats-token", "t"}, "excludes"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-tls-cert", "c"}, "go together"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-cluster-secret", "0123456789abcdef"}, "is for --nats-embedded"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-creds", "f"}, "is for --nats"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-cluster-secret", "0123456789abcdef"}, "needs --nats-cluster-listen"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-cluster-advertise", "n1:6222"}, "needs --nats-cluster-listen"},
		{[]string{"--nats", "nats://x:4222", "--node-id", "n1", "--nats-cluster-advertise", "n1:6222"}, "need --nats-embedded"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-cluster-listen", "127.0.0.1:0", "--nats-cluster-secret", "short"}, "16 bytes"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-tls-cert", "c", "--nats-tls-key", "k"}, "needs --nats-tls-ca"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--nats-cluster-listen", "0.0.0.0:6222"}, "not loopback"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--handover-after", "-1s"}, "not negative"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--handover-rate", "0"}, "--handover-rate"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--handover-rate", "NaN"}, "--handover-rate"},
		{[]string{"--nats-embedded", "--node-id", "n1", "--cluster-outbox-bytes", "1000"}, "at least 65536"},
	} {
		code, _, stderr := runCmd(t, append([]string{"serve", "--data", t.TempDir()}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v = %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestServeClusterEnv: COLLABD_* variables set the cluster flags.
func TestServeClusterEnv(t *testing.T) {
	t.Setenv("COLLABD_NATS_EMBEDDED", "true")
	t.Setenv("COLLABD_NATS_REPLICAS", "9")
	code, _, stderr := runCmd(t, "serve", "--data", t.TempDir(), "--node-id", "n1")
	if code != 2 || !strings.Contains(stderr, "--nats-replicas 9") {
		t.Errorf("serve with COLLABD_NATS_REPLICAS=9 = %d, %q; want 2 and the replicas refused", code, stderr)
	}
}

// TestServeClusterEmbeddedOneNode runs "collabd serve --nats-embedded" as
// a one-node cluster (replicas 1): it serves edits from JetStream and
// /readyz reports ready; SIGTERM stops it (the cleanup checks it exits).
func TestServeClusterEmbeddedOneNode(t *testing.T) {
	p := startServeProc(t, "--nats-embedded", "--node-id", "n1", "--nats-replicas", "1", "--lease-ttl", "2s", "--log-level", "debug")
	p.waitLog("cluster mode", "node=n1")
	base := "http://" + p.addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postEdits(ctx, base, "clustered", 0, "hello"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/docs/clustered/text", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		if path != "/readyz" && !strings.Contains(string(b), "hello") {
			t.Errorf("GET %s = %s, want hello", path, b)
		}
	}
}

// freePorts reserves n loopback ports (listen on port 0 and close).
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

// TestServeClusterSIGKILL runs three "collabd serve --nats-embedded"
// processes as one cluster, edits a document over REST through the two
// nodes that do not own it, SIGKILLs the owner's process (its embedded
// NATS node dies with it) and goes on editing through the survivors,
// retrying what is refused: every edit answered 200 (durable) is in the
// document exactly once afterwards.
func TestServeClusterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("three collabd processes and a raft election")
	}
	ports := freePorts(t, 3)
	routes := routeURLs(ports)
	procs := make([]*serveProc, 3)
	errs := make(chan error, 3)
	for i := range procs {
		go func() {
			p, err := launchServeProc(t, "--nats-embedded", "--node-id", fmt.Sprintf("n%d", i+1),
				"--nats-cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--nats-routes", strings.Join(routes, ","),
				"--lease-ttl", "2s", "--log-level", "debug")
			procs[i] = p
			errs <- err
		}()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	base := func(i int) string { return "http://" + procs[i].addr }
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const doc = "killed"
	// Find the owner: the node whose metrics count the document.
	if err := postEdits(ctx, base(0), doc, 0, "[start]"); err != nil {
		t.Fatal(err)
	}
	owner := -1
	for i := range procs {
		_, body := httpGet(t, base(i)+"/metrics")
		if strings.Contains(body, "collabd_cluster_owned_documents 1") {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no node owns the document")
	}
	var others []int
	for i := range procs {
		if i != owner {
			others = append(others, i)
		}
	}
	acked := []string{"[start]"}
	attempt := 0
	// edit inserts a new piece through node i, retrying refusals with a new
	// piece each time (an unanswered attempt may or may not have landed).
	edit := func(i int) {
		for {
			attempt++
			piece := fmt.Sprintf("[%d]", attempt)
			err := postEdits(ctx, base(i), doc, 0, piece)
			if err == nil {
				acked = append(acked, piece)
				return
			}
			if ctx.Err() != nil {
				for j, p := range procs {
					t.Logf("n%d logs:\n%s", j+1, p.logText())
				}
				t.Fatalf("no edit through n%d acked before the deadline: %v", i+1, err)
			}
			select {
			case <-time.After(200 * time.Millisecond): // the client's backoff after a 503
			case <-ctx.Done():
			}
		}
	}
	for k := range 10 {
		edit(others[k%2])
	}
	killed := time.Now()
	procs[owner].kill()
	for k := range 10 {
		edit(others[k%2])
		if k == 0 {
			t.Logf("first edit acked %v after the SIGKILL of n%d", time.Since(killed), owner+1)
		}
	}
	_, text := httpGet(t, base(others[0])+"/v1/docs/"+doc+"/text")
	for _, p := range acked {
		if n := strings.Count(text, p); n != 1 {
			t.Errorf("acked %s is in the document %d times", p, n)
		}
	}
	t.Logf("%d edits acked (%d attempts), all present once", len(acked), attempt)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeClusterSecure runs a one-node embedded cluster with TLS on its
// NATS client port (certificates made here) and a client token from the
// environment: it serves, a NATS client needs the CA and the token, and
// the token is not in its (debug) log. (Routes with TLS and the route
// secret: natsembed's TestSecureCluster, a three-node cluster.)
func TestServeClusterSecure(t *testing.T) {
	const token = "client-token-3a6d9c0e"
	ca := natstest.NewCA(t, "collabd test CA")
	// The node's certificate names its public host only, not 127.0.0.1:
	// the node reaches its own NATS in-process.
	caFile, certFile, keyFile := ca.Files(t.TempDir(), "n1", "n1.collabd.test")
	t.Setenv("COLLABD_NATS_TOKEN", token)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	p := startServeProc(t, "--nats-embedded", "--node-id", "n1", "--nats-replicas", "1", "--log-level", "debug",
		"--nats-listen", natsAddr, "--nats-tls-ca", caFile, "--nats-tls-cert", certFile, "--nats-tls-key", keyFile)
	p.waitLog("cluster mode", "node=n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postEdits(ctx, "http://"+p.addr, "secured", 0, "hello"); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, "http://"+p.addr+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz = %d %s", code, body)
	}
	tlsOK := &tls.Config{RootCAs: ca.Pool, ServerName: "n1.collabd.test", MinVersion: tls.VersionTLS12}
	if nc, err := nats.Connect("nats://"+natsAddr, nats.Secure(tlsOK), nats.Token(token)); err != nil {
		t.Errorf("a client with the CA and the token: %v", err)
	} else {
		nc.Close()
	}
	for name, opts := range map[string][]nats.Option{
		"no token":   {nats.Secure(tlsOK)},
		"no TLS":     {nats.Token(token)},
		"another CA": {nats.Secure(&tls.Config{RootCAs: natstest.NewCA(t, "other").Pool, ServerName: "n1.collabd.test", MinVersion: tls.VersionTLS12}), nats.Token(token)},
		"wrong name": {nats.Secure(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}), nats.Token(token)},
	} {
		if nc, err := nats.Connect("nats://"+natsAddr, append(opts, nats.Timeout(5*time.Second))...); err == nil {
			nc.Close()
			t.Errorf("a client with %s connected", name)
		}
	}
	if strings.Contains(p.logText(), token) {
		t.Error("the token is in the log")
	}
}

// TestServeClusterSecureRoutes: three "collabd serve --nats-embedded"
// processes whose routes use mutual TLS (certificates made here) and a
// route secret, both from the flags and COLLABD_* variables, form the
// cluster: an edit through one node is read through the others and
// listed. (A node without the secret or the CA is refused: natsembed's
// TestSecureCluster.)
func TestServeClusterSecureRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("three collabd processes")
	}
	const secret = "route-secret-2f6b8d0a4c1e"
	t.Setenv("COLLABD_NATS_CLUSTER_SECRET", secret)
	ca := natstest.NewCA(t, "collabd test CA")
	ports := freePorts(t, 3)
	routes := routeURLs(ports)
	procs := make([]*serveProc, 3)
	errs := make(chan error, 3)
	for i := range procs {
		caFile, certFile, keyFile := ca.Files(t.TempDir(), fmt.Sprintf("n%d", i+1))
		go func() {
			p, err := launchServeProc(t, "--nats-embedded", "--node-id", fmt.Sprintf("n%d", i+1),
				"--nats-cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--nats-routes", strings.Join(routes, ","),
				"--nats-tls-ca", caFile, "--nats-tls-cert", certFile, "--nats-tls-key", keyFile, "--log-level", "debug")
			procs[i] = p
			errs <- err
		}()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := postEdits(ctx, "http://"+procs[0].addr, "secured routes", 0, "over TLS"); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs[1:] {
		if code, body := httpGet(t, "http://"+p.addr+docPath("secured routes", "/text")); code != http.StatusOK || body != "over TLS" {
			t.Errorf("read through %s = %d %q", p.addr, code, body)
		}
		if code, body := httpGet(t, "http://"+p.addr+"/v1/docs"); code != http.StatusOK || !strings.Contains(body, `"secured routes"`) {
			t.Errorf("list through %s = %d %s", p.addr, code, body)
		}
	}
	for i, p := range procs {
		if strings.Contains(p.logText(), secret) {
			t.Errorf("node %d logged the route secret", i+1)
		}
	}
}

// routeURLs are the NATS route URLs of loopback ports.
func routeURLs(ports []int) []string {
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return routes
}
