package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/presence"
	"github.com/collabd/collabd/protocol"
)

// BenchmarkPresenceStorm: 100 peers on one document of a `collabd serve`
// subprocess, each moving its cursor 30 times a second for 5 s. Reports the
// server's CPU (utime+stime from /proc/PID/stat, in % of one core), its
// write and read syscalls per second (/proc/PID/io) and the bytes and
// frames each client receives per second.
//
//	go test -run='^$' -bench=PresenceStorm -benchtime=1x ./cmd/collabd
func BenchmarkPresenceStorm(b *testing.B) {
	const (
		peers  = 100
		hz     = 30
		window = 5 * time.Second
	)
	bin := filepath.Join(b.TempDir(), "collabd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for b.Loop() {
		args := []string{"serve", "--addr", "127.0.0.1:0", "--data", b.TempDir(), "--log-level", "error"}
		prof := os.Getenv("COLLABD_BENCH_CPUPROFILE") // a file for the server's CPU profile over the window
		if prof != "" {
			args = append(args, "--debug-addr", "127.0.0.1:6061")
		}
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 128)
		k, _ := out.Read(buf)
		url := "ws://" + strings.TrimSpace(strings.TrimPrefix(string(buf[:k]), "listening on ")) + "/v1/ws"

		conns := make([]*websocket.Conn, peers)
		for i := range conns {
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				b.Fatal(err)
			}
			_ = c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{crdt.AgentID(i + 1)}}))
			_ = c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Join{Doc: "storm", SV: crdt.StateVector{}}))
			conns[i] = c
		}
		var bytes, frames atomic.Int64
		var counting atomic.Bool
		var readers sync.WaitGroup
		for _, c := range conns {
			readers.Add(1)
			go func() { // ends when the connection closes
				defer readers.Done()
				for {
					_, data, err := c.ReadMessage()
					if err != nil {
						return
					}
					if counting.Load() {
						bytes.Add(int64(len(data)))
						frames.Add(1)
					}
				}
			}()
		}
		cpu0, sys0 := cpuTicks(b, cmd.Process.Pid)
		w0, r0, t0 := writeCalls(b, cmd.Process.Pid), readCalls(b, cmd.Process.Pid), time.Now()
		counting.Store(true)
		profDone := make(chan error, 1)
		if prof != "" {
			go func() { profDone <- fetchProfile(prof, window) }()
		} else {
			profDone <- nil
		}
		var movers sync.WaitGroup
		for i, c := range conns {
			movers.Add(1)
			go func() { // paced by a ticker, bounded by the window
				defer movers.Done()
				tk := time.NewTicker(time.Second / hz)
				defer tk.Stop()
				end := time.After(window)
				for n := uint64(0); ; n++ {
					select {
					case <-end:
						return
					case <-tk.C:
					}
					pos := crdt.EncodeRelPos(crdt.RelPos{Item: crdt.ID{Agent: crdt.AgentID(i + 1), Seq: n}})
					st := presence.State{Cursor: presence.Cursor{Root: "body", Anchor: pos, Head: pos}}
					if c.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.PresenceSet{Doc: "storm", State: st})) != nil {
						return
					}
				}
			}()
		}
		movers.Wait()
		counting.Store(false)
		if err := <-profDone; err != nil {
			b.Error(err)
		}
		secs := time.Since(t0).Seconds()
		cpu1, sys1 := cpuTicks(b, cmd.Process.Pid)
		cpu := float64(cpu1-cpu0) / 100 / secs // USER_HZ is 100 on Linux
		b.ReportMetric(cpu*100, "server-cpu-%")
		b.ReportMetric(float64(sys1-sys0)/secs, "server-sys-%") // of it in the kernel (stime): ticks/s = % of a core
		b.ReportMetric(float64(writeCalls(b, cmd.Process.Pid)-w0)/secs, "server-writes/s")
		b.ReportMetric(float64(readCalls(b, cmd.Process.Pid)-r0)/secs, "server-reads/s")
		b.ReportMetric(float64(bytes.Load())/peers/secs, "B/s/client")
		b.ReportMetric(float64(frames.Load())/peers/secs, "frames/s/client")
		for _, c := range conns {
			_ = c.Close()
		}
		readers.Wait()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// cpuTicks is utime+stime of a process in clock ticks, and stime alone.
func cpuTicks(b *testing.B, pid int) (all, sys int64) {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are fields 14 and 15 of the line, 12 and 13 after ") ".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, s
}

// writeCalls is the number of write-family syscalls (write, writev, …) a
// process made: syscw in /proc/PID/io.
func writeCalls(b *testing.B, pid int) int64 { return procIO(b, pid, "syscw: ") }

// readCalls is the number of read-family syscalls (read, recvmsg, …,
// those that found nothing to read too) a process made: syscr.
func readCalls(b *testing.B, pid int) int64 { return procIO(b, pid, "syscr: ") }

// procIO is one counter of /proc/PID/io.
func procIO(b *testing.B, pid int, field string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/io", field, pid)
	return 0
}

// fetchProfile saves the server's CPU profile over d (see --debug-addr).
func fetchProfile(path string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:6061/debug/pprof/profile?seconds=%d", int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
