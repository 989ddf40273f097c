package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Progress output of long commands (backup, restore, export, bench, chaos).
// On a terminal one status line is rewritten in place (\r) a few times a
// second; otherwise (a log file, CI) a full line is printed every few
// seconds. The last line is always printed.

const (
	progressTTYEvery = 250 * time.Millisecond
	progressLogEvery = 5 * time.Second
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// copyProgress reports the bytes of one copy: done, of total when known,
// with the rate and, with a total, the time left. Not safe for concurrent
// use (one copy, one goroutine).
type copyProgress struct {
	out   io.Writer
	what  string
	total int64 // <= 0: unknown
	tty   bool
	every time.Duration
	now   func() time.Time
	// quick: no final line if the copy ended before the first report (for
	// exports, usually small).
	quick bool

	n     int64
	lines int // lines printed
	start time.Time
	last  time.Time
}

// newCopyProgress reports on out (stderr) a copy of total bytes (<= 0:
// unknown) named what ("backup", "restore", …).
func newCopyProgress(out io.Writer, what string, total int64) *copyProgress {
	p := &copyProgress{out: out, what: what, total: total, tty: isTerminal(out), every: progressLogEvery, now: time.Now}
	if p.tty {
		p.every = progressTTYEvery
	}
	return p
}

// writer wraps w: every byte written through it counts.
func (p *copyProgress) writer(w io.Writer) io.Writer { return progressWriter{w: w, p: p} }

type progressWriter struct {
	w io.Writer
	p *copyProgress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(n)
	return n, err
}

func (p *copyProgress) add(n int) {
	now := p.now()
	if p.start.IsZero() {
		p.start, p.last = now, now
	}
	p.n += int64(n)
	if now.Sub(p.last) >= p.every {
		p.last = now
		p.print(now, false)
	}
}

// done prints the final line (always, also for an empty copy).
func (p *copyProgress) done() {
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	p.print(now, true)
}

func (p *copyProgress) print(now time.Time, final bool) {
	if final && p.quick && p.lines == 0 {
		return
	}
	p.lines++
	line := p.line(now, final)
	switch {
	case p.tty && final:
		fmt.Fprintf(p.out, "\r%s\x1b[K\n", line)
	case p.tty:
		fmt.Fprintf(p.out, "\r%s\x1b[K", line)
	default:
		fmt.Fprintln(p.out, line)
	}
}

// line is "backup: 12.0 MiB of 40.0 MiB (30%), 4.0 MiB/s, 7s left", or
// without a total "backup: 12.0 MiB, 4.0 MiB/s"; the final one says "done
// in".
func (p *copyProgress) line(now time.Time, final bool) string {
	el := now.Sub(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(p.n) / el.Seconds()
	}
	s := p.what + ": " + sizeString(p.n)
	if p.total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", sizeString(p.total), min(100, p.n*100/p.total))
	}
	if el > 0 {
		s += ", " + sizeString(int64(rate)) + "/s"
	}
	switch {
	case final:
		s += ", done in " + el.Round(10*time.Millisecond).String()
	case p.total > 0 && rate > 0 && p.n < p.total:
		left := time.Duration(float64(p.total-p.n) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	}
	return s
}

// sizeString formats n bytes with a binary unit.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// stageProgress prints the current stage of a long run (bench, chaos) with
// the time elapsed: every interval until stop is called. set is safe to call
// from any goroutine.
type stageProgress struct {
	mu    sync.Mutex // guards stage
	stage string
	stop  func()
}

// startStageProgress prints "what: 12s, <stage>" on out every interval
// (0: never) until the returned progress's stop is called. On a terminal
// the line is rewritten in place.
func startStageProgress(out io.Writer, what string, interval time.Duration) *stageProgress {
	sp := &stageProgress{stage: "starting", stop: func() {}}
	if interval <= 0 {
		return sp
	}
	tty := isTerminal(out)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if tty {
					fmt.Fprint(out, "\r\x1b[K")
				}
				return
			case now := <-t.C:
				line := fmt.Sprintf("%s: %s, %s", what, now.Sub(start).Round(time.Second), sp.get())
				if tty {
					fmt.Fprintf(out, "\r%s\x1b[K", line)
				} else {
					fmt.Fprintln(out, line)
				}
			}
		}
	}()
	sp.stop = func() {
		cancel()
		wg.Wait()
	}
	return sp
}

func (sp *stageProgress) set(stage string) {
	sp.mu.Lock()
	sp.stage = stage
	sp.mu.Unlock()
}

func (sp *stageProgress) get() string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.stage
}

// copyWithProgress copies the file src to dst, reporting on progress with
// src's size as the total.
func copyWithProgress(dst io.Writer, src *os.File, progress io.Writer, what string) error {
	total := int64(0)
	if fi, err := src.Stat(); err == nil {
		total = fi.Size()
	}
	pr := newCopyProgress(progress, what, total)
	_, err := io.Copy(pr.writer(dst), src)
	if err == nil {
		pr.done()
	}
	return err
}

// readWithProgress reads resp's body, reporting on progress (the total is
// the Content-Length, if any) unless it is read before the first report.
func readWithProgress(resp *http.Response, progress io.Writer, what string) ([]byte, error) {
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(min(resp.ContentLength, 64<<20)))
	}
	pr := newCopyProgress(progress, what, resp.ContentLength)
	pr.quick = true
	_, err := io.Copy(pr.writer(&buf), resp.Body)
	if err != nil {
		return nil, err
	}
	pr.done()
	return buf.Bytes(), nil
}
