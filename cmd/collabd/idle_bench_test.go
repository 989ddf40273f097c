package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/protocol"
)

// BenchmarkIdleConnections opens N idle sessions (hello, then nothing) to a
// `collabd serve` subprocess and reports the server's RSS growth per
// connection, read from /proc/PID/status.
//
//	go test -run='^$' -bench=IdleConnections -benchtime=1x ./cmd/collabd
func BenchmarkIdleConnections(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			bin := filepath.Join(b.TempDir(), "collabd")
			if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
				b.Fatalf("build: %v\n%s", err, out)
			}
			for b.Loop() {
				cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", b.TempDir(), "--log-level", "error",
					"--max-conns", "20000", "--max-conns-per-ip", "20000")
				out, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 128)
				k, _ := out.Read(buf)
				addr := strings.TrimSpace(strings.TrimPrefix(string(buf[:k]), "listening on "))
				url := "ws://" + addr + "/v1/ws"
				before := rssKiB(b, cmd.Process.Pid)
				conns := make([]*websocket.Conn, 0, n)
				for i := range n {
					c, _, err := websocket.DefaultDialer.Dial(url, nil)
					if err != nil {
						b.Fatalf("connection %d: %v", i, err)
					}
					hello := protocol.Encode(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{crdt.AgentID(i + 1)}})
					if err := c.WriteMessage(websocket.BinaryMessage, hello); err != nil {
						b.Fatal(err)
					}
					if _, _, err := c.ReadMessage(); err != nil { // welcome
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				after := rssKiB(b, cmd.Process.Pid)
				b.ReportMetric(float64(after-before)/float64(n), "KiB/conn")
				for _, c := range conns {
					_ = c.Close()
				}
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			}
		})
	}
}

func rssKiB(b *testing.B, pid int) int {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
