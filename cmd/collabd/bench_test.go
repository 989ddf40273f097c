package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
	"github.com/collabd/collabd/server"
	"github.com/collabd/collabd/storage"
)

// benchServer is an in-process server on a loopback httptest listener.
func benchServer(t *testing.T) string {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, IdleUnload: 100 * time.Millisecond, ShutdownRetry: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hs.Close()
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"
}

// TestBenchScenarios runs every scenario in a tiny configuration against an
// in-process server: the run must pass its own checks (convergence, no
// failed cycles) and write a table and JSON with the metrics a reader
// needs. Timing is not asserted.
func TestBenchScenarios(t *testing.T) {
	url := benchServer(t)
	pid := "--server-pid=" + itoa(os.Getpid()) // the server shares this process: /proc readings are sane, not separable
	for _, tc := range []struct {
		args []string
		want []string // metrics that must have a value
	}{
		{[]string{"fanout", "--subs", "4", "--full", "2", "--rate", "40", "--duration", "1s", pid},
			[]string{"latency all p50", "latency all p99", "latency full clients max", "load server cpu avg", "load generator cpu",
				"applied ack p50", "durable ack p50", "durable ack p99"}},
		// The cluster flags against one server: two "nodes" that are the
		// same URL and PID.
		{[]string{"fanout", "--subs", "4", "--full", "1", "--rate", "40", "--duration", "1s", "--doc", "fixed-" + itoa(os.Getpid()),
			"--writer-url", url, "--urls", url + "," + url, "--node-pids", itoa(os.Getpid()) + "," + itoa(os.Getpid())},
			[]string{"durable ack p99", "node 1 cpu", "node 2 cpu per insert", "nodes cpu per insert"}},
		{[]string{"manydocs", "--docs", "2", "--per-doc", "2", "--rate", "5", "--duration", "1s", "--urls", url + "," + url, "--node-pids", itoa(os.Getpid())},
			[]string{"latency p50", "node 1 cpu per insert", "nodes cpu per insert"}},
		{[]string{"idle", "--conns", "12", "--steps", "6", "--hold", "300ms", "--urls", url + "," + url, "--node-pids", itoa(os.Getpid())},
			[]string{"connections held", "node 1 rss per conn", "hold node 1 cpu"}},
		{[]string{"manydocs", "--docs", "3", "--per-doc", "3", "--rate", "5", "--duration", "1s"},
			[]string{"latency p50", "latency p99", "inserts sent", "load generator cpu"}},
		{[]string{"idle", "--conns", "24", "--steps", "12", "--per-doc", "6", "--hold", "300ms", pid},
			[]string{"connections held", "rss per conn at top", "hold server rss max"}},
		{[]string{"coldjoin", "--chars", "3000", "--joins", "2", pid},
			[]string{"append join median", "random join median", "random build until durable"}},
		{[]string{"churn", "--workers", "3", "--docs", "2", "--rate", "50", "--duration", "1s", "--recover", "10s", pid},
			[]string{"cycles", "cycle p99", "server fds before", "server fds at end"}},
		{[]string{"presence", "--peers", "6", "--duration", "1s", pid},
			[]string{"bytes in per client", "frames in per client", "storm server cpu avg"}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench"}, tc.args...)
			args = append(args, "--url", url, "--json", out, "--settle", "10s", "--max-time", "1m", "--progress", "50ms")
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			if strings.Contains(stdout.String(), "<nil>") {
				t.Errorf("the table prints <nil>:\n%s", stdout.String())
			}
			// Progress lines while it runs: every scenario but coldjoin (which
			// may finish before the first tick) runs for a second or more.
			progress := regexp.MustCompile(`(?m)^collabd bench ` + tc.args[0] + `: \d+(\.\d+)?m?s, \S.*$`)
			lines := progress.FindAllString(stderr.String(), -1)
			if tc.args[0] != "coldjoin" && len(lines) == 0 {
				t.Fatalf("no progress line on stderr:\n%s", stderr.String())
			}
			if tc.args[0] != "coldjoin" && strings.HasSuffix(lines[len(lines)-1], ", starting") {
				t.Errorf("the last progress line names no stage: %q", lines[len(lines)-1])
			}
			if !strings.Contains(stdout.String(), "== "+tc.args[0]) {
				t.Errorf("table lacks its header:\n%s", stdout.String())
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var res loadgen.Result
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if res.Scenario != tc.args[0] || !res.OK() || len(res.Checks) == 0 {
				t.Errorf("result %s ok=%v checks=%v", res.Scenario, res.OK(), res.Checks)
			}
			for _, name := range tc.want {
				v, ok := res.Lookup(name)
				// RSS growth per connection can be negative here: the server
				// shares this test process, whose GC may return memory.
				if !ok || (v < 0 && !strings.Contains(name, "rss per conn")) {
					t.Errorf("metric %q = %v, %v; want a value ≥ 0\n%s", name, v, ok, stdout.String())
				}
			}
			var md bytes.Buffer
			if code := run([]string{"bench", "summarize", out}, &md, &stderr); code != 0 || !strings.Contains(md.String(), "| metric | value | unit |") {
				t.Errorf("summarize: exit %d\n%s%s", code, md.String(), stderr.String())
			}
			t.Logf("\n%s", stdout.String())
		})
	}
}

func TestBenchRefusesRemote(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "fanout", "--url", "ws://192.0.2.1:8080/v1/ws"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "non-loopback") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
	if code := run([]string{"bench", "nosuch"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown scenario: exit %d, want 2", code)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestBenchFanoutYjs: the fan-out scenario over both Yjs wires against the
// in-process server's doors (the same generator drives Hocuspocus and
// y-websocket servers: BENCHMARKS.md). Every subscriber's Go Yjs replica
// must end equal to the writer's.
func TestBenchFanoutYjs(t *testing.T) {
	base := strings.TrimSuffix(benchServer(t), "/v1/ws")
	for _, tc := range []struct{ proto, path string }{{"y-websocket", "/v1/yjs"}, {"hocuspocus", "/v1/hocuspocus"}} {
		t.Run(tc.proto, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			var stdout, stderr bytes.Buffer
			args := []string{"bench", "fanout", "--proto", tc.proto, "--url", base + tc.path, "--subs", "6", "--rate", "40",
				"--duration", "1s", "--json", out, "--settle", "10s", "--max-time", "1m", "--progress", "0"}
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			many := filepath.Join(t.TempDir(), "many.json")
			margs := []string{"bench", "manydocs", "--proto", tc.proto, "--url", base + tc.path, "--docs", "3", "--per-doc", "3",
				"--rate", "5", "--duration", "1s", "--json", many, "--settle", "10s", "--max-time", "1m", "--progress", "0"}
			if code := run(margs, &stdout, &stderr); code != 0 {
				t.Fatalf("manydocs: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			if b, err := os.ReadFile(many); err != nil || !strings.Contains(string(b), `"latency p99"`) {
				t.Fatalf("manydocs result: %v %s", err, b)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var res loadgen.Result
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Fatalf("checks failed: %v\n%s", res.Checks, stdout.String())
			}
			if v, ok := res.Lookup("latency all p99"); !ok || v <= 0 {
				t.Errorf("latency all p99 = %v, %v", v, ok)
			}
		})
	}
}
