package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Errors of the chaos scenarios.
var (
	ErrStart = errors.New("chaos: server did not start")
)

// Serve says how to run `collabd serve`.
type Serve struct {
	// Bin is the collabd executable; it is run as Bin [Args...] serve ...
	Bin string
	// Args come before "serve" (none for a real collabd binary).
	Args []string
	// Env is added to the environment of the server.
	Env []string
	// Data is the data directory, kept across restarts.
	Data string
	// Extra are more flags for serve (e.g. --queue-bytes).
	Extra []string
	// Log receives the server's stderr; nil discards it. LogPath names it
	// in reports.
	Log     io.Writer
	LogPath string
	// Progress, if set, is told the run's current stage ("cycle 12 of
	// 200", …) for a progress line; called on the scenario's goroutine.
	Progress func(stage string)
}

// stage reports the run's current stage to Progress, if set.
func (s Serve) stage(format string, args ...any) {
	if s.Progress != nil {
		s.Progress(fmt.Sprintf(format, args...))
	}
}

// proc is one running server. Its owner calls kill or term, and then wait,
// exactly once each.
type proc struct {
	cmd   *exec.Cmd
	addr  string // host:port it listens on
	done  chan struct{}
	err   error // set before done is closed
	start time.Time
}

// startServe runs the server on addr ("127.0.0.1:0" for any port) and
// returns once it listens (or within 30 s, or ctx, with an error).
func startServe(ctx context.Context, s Serve, addr string) (*proc, error) {
	args := append(append([]string{}, s.Args...), "serve", "--addr", addr, "--data", s.Data, "--log-level", "warn")
	args = append(args, s.Extra...)
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Stderr = s.Log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), start: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	line := make(chan string, 1)
	go func() { // owned by p: ends when the process closes stdout (exits)
		br := bufio.NewReader(out)
		l, _ := br.ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, br)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case l := <-line:
		a, ok := strings.CutPrefix(strings.TrimSpace(l), "listening on ")
		if !ok {
			p.kill()
			return nil, fmt.Errorf("%w: %q (see the server log)", ErrStart, l)
		}
		p.addr = a
		return p, nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.kill()
	return nil, fmt.Errorf("%w within 30s", ErrStart)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill SIGKILLs the server and waits until it is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // already exited: nothing to do
	<-p.done
}

// term sends SIGTERM and waits up to d for a clean exit (then SIGKILL). It
// reports how long the shutdown took and whether it exited with status 0.
func (p *proc) term(d time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return time.Since(t0), p.err == nil
	case <-t.C:
		p.kill()
		return time.Since(t0), false
	}
}

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) wsURL() string   { return "ws://" + p.addr + "/v1/ws" }
func (p *proc) httpURL() string { return "http://" + p.addr }

// restart starts the server again on the same address. The port may be
// briefly unavailable; it retries for up to 10 s.
func restart(ctx context.Context, s Serve, addr string) (*proc, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := startServe(ctx, s, addr)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return p, err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// ready reports whether GET /readyz answers 200.
func ready(ctx context.Context, hc *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// docText reads GET /v1/docs/{id}/text.
func docText(ctx context.Context, hc *http.Client, base, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/docs/"+id+"/text", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("chaos: GET text of %s: %s: %s", id, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// loopbackAddr reports whether addr's host is a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
