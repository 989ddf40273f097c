package e2e

// Memory under hostile input, measured on the real binary: the server's
// peak RSS (VmHWM) after each attack of issue 11 must stay within a bound
// its configuration sets. The figures are logged (go test -v -run
// TestHostileMemory ./e2e/) and quoted in docs/SECURITY.md.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/collabd/collabd/crdt"
	"github.com/collabd/collabd/internal/mp"
	"github.com/collabd/collabd/protocol"
)

// binServer is a `collabd serve` subprocess.
type binServer struct {
	cmd  *exec.Cmd
	addr string
}

func buildCollabd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "collabd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/collabd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startBinary(t *testing.T, bin string, args ...string) *binServer {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error"}, args...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("server did not start: %q %v", line, err)
	}
	return &binServer{cmd: cmd, addr: addr}
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func (b *binServer) peakRSS(t *testing.T) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestHostileMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and attacks a subprocess")
	}
	bin := buildCollabd(t)

	// Item 4: one connection joins and leaves distinct documents as fast as
	// it can. With the join rate lifted, the loaded-document cap is what
	// bounds memory; with the default rate, joins past it are refused.
	t.Run("join-leave flood", func(t *testing.T) {
		joins := envInt("HOSTILE_JOINS", 50000)
		maxDocs := envInt("HOSTILE_MAX_LOADED", 5000)
		srv := startBinary(t, bin, "--join-rate", "1e9", "--max-loaded-docs", fmt.Sprint(maxDocs))
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+srv.addr+"/v1/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var overloaded, synced int
		var wmu sync.Mutex // one writer at a time: the flood and the reader's pongs
		readerDone := make(chan error, 1)
		go func() { // drain and count what the server says
			for {
				_, b, err := conn.ReadMessage()
				if err != nil {
					readerDone <- err
					return
				}
				switch m, _ := protocol.Decode(b, protocol.DecodeLimits{}); m := m.(type) {
				case *protocol.Error:
					if m.Code == protocol.CodeOverloaded {
						overloaded++
					}
				case *protocol.Sync:
					if m.Final {
						synced++
						if synced+overloaded == joins {
							readerDone <- nil
							return
						}
					}
				case *protocol.Ping:
					wmu.Lock()
					_ = conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(&protocol.Pong{Nonce: m.Nonce}))
					wmu.Unlock()
				}
			}
		}()
		write := func(m protocol.Message) {
			wmu.Lock()
			defer wmu.Unlock()
			if err := conn.WriteMessage(websocket.BinaryMessage, protocol.Encode(m)); err != nil {
				t.Fatal(err)
			}
		}
		write(&protocol.Hello{Version: protocol.Version, Agents: []crdt.AgentID{1}})
		start := time.Now()
		for i := range joins {
			id := fmt.Sprint("flood/", i)
			write(&protocol.Join{Doc: id})
			write(&protocol.Leave{Doc: id})
		}
		select {
		case err := <-readerDone:
			if err != nil {
				t.Fatalf("after %d syncs: %v", synced, err)
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("flood not answered: %d synced, %d refused", synced, overloaded)
		}
		rss := srv.peakRSS(t)
		t.Logf("%d join+leave pairs in %v, --max-loaded-docs %d: %d synced, %d refused as overloaded; peak RSS %.0f MiB",
			joins, time.Since(start).Round(time.Millisecond), maxDocs, synced, overloaded, rss)
		// ~20 KiB a loaded document (the governor's estimate), plus the
		// runtime: the cap, not the number of ids, sets the bound.
		if limit := 96 + float64(maxDocs)*32/1024; rss > limit {
			t.Errorf("peak RSS %.0f MiB, want under %.0f MiB", rss, limit)
		}
	})

	// Item 3: snapshot uploads whose compressed body claims 1 GiB (DEFLATE
	// of 1 GiB of zeros, 1.3 MB on the wire, and an LZ4 block), two at once.
	t.Run("snapshot bombs", func(t *testing.T) {
		srv := startBinary(t, bin)
		bombs := [][]byte{bombContainer(1, 1<<30, deflateZeros(1<<30)), bombContainer(2, 1<<30, lz4Zeros(1<<30)),
			bombContainer(1, 1<<20, deflateZeros(1<<30))} // an honest-looking header, a body that inflates past it
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("PUT", fmt.Sprintf("http://%s/v1/docs/bomb%d/snapshot", srv.addr, i), bytes.NewReader(bombs[i%len(bombs)]))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		rss := srv.peakRSS(t)
		t.Logf("6 snapshot bombs claiming or inflating to 1 GiB, 2-3 at a time: statuses %v; peak RSS %.0f MiB", codes, rss)
		for code, n := range codes {
			if code < 400 || code >= 500 {
				t.Errorf("%d bombs answered %d, want 4xx", n, code)
			}
		}
		if rss > 160 {
			t.Errorf("peak RSS %.0f MiB, want under 160 MiB", rss)
		}
	})

	// Item 6: fallback sessions POST bodies of zeros (a million empty
	// frames each), eight at once, repeatedly.
	t.Run("fallback zeros", func(t *testing.T) {
		srv := startBinary(t, bin)
		zeros := make([]byte, 4<<20)
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 4 {
					resp, err := http.Post("http://"+srv.addr+"/v1/rt", "application/json", nil)
					if err != nil {
						t.Error(err)
						return
					}
					var sess struct{ Frames string }
					_ = json.NewDecoder(resp.Body).Decode(&sess)
					resp.Body.Close()
					resp, err = http.Post("http://"+srv.addr+sess.Frames+"&seq=1", "application/octet-stream", bytes.NewReader(zeros))
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					codes[resp.StatusCode]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		rss := srv.peakRSS(t)
		t.Logf("32 POSTs of 4 MiB of zeros, 8 at a time: statuses %v; peak RSS %.0f MiB", codes, rss)
		if codes[400] != 32 {
			t.Errorf("statuses %v, want 32 × 400", codes)
		}
		if rss > 160 {
			t.Errorf("peak RSS %.0f MiB, want under 160 MiB", rss)
		}
	})
}

// Snapshot containers as docs/FORMATS.md specifies them: msgpack
// [version=1, compression (1 DEFLATE, 2 LZ4), body_len, body].
func bombContainer(kind, rawLen uint64, body []byte) []byte {
	b := []byte{0x94, 0x01}
	b = mp.AppendUint(b, kind)
	b = mp.AppendUint(b, rawLen)
	return mp.AppendBin(b, body)
}

// deflateZeros is the DEFLATE stream of n zeros (1 GiB: about 1.3 MB).
func deflateZeros(n int) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range n >> 20 {
		_, _ = w.Write(zeros)
	}
	_ = w.Close()
	return buf.Bytes()
}

// lz4Zeros is an LZ4 block that decompresses to about n zeros: one literal,
// one match of offset 1 and length ~n, then the five closing literals.
func lz4Zeros(n int) []byte {
	b := []byte{0x1f, 0x00, 0x01, 0x00}
	ml := n - 1 - 5 - 4 - 15
	for ; ml >= 255; ml -= 255 {
		b = append(b, 255)
	}
	b = append(b, byte(ml))
	return append(b, 0x50, 0, 0, 0, 0, 0)
}
