package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
	p := startServeProc(t, "--nats-embedded", "--node-id", "n1", "--nats-replicas", "1", "--lease-ttl", "2s")
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
