package storage_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
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

	"github.com/collabd/collabd/storage"
)

// The crash tests run this test binary again as a child process that appends
// from many goroutines and prints one line per acknowledged append. The
// parent SIGKILLs it at a random point, reopens the file and checks, Jepsen
// "set" style, that every acknowledged entry is present exactly once with its
// sequence and bytes, and that the file verifies clean.
//
// COLLABD_CRASH_CYCLES sets the number of cycles (default 20; run 200 for a
// longer soak), COLLABD_CRASH_SEED replays a run.
const (
	envChild   = "COLLABD_STORAGE_CRASH_CHILD" // "append" or "compact"; set only in the child
	envPath    = "COLLABD_STORAGE_CRASH_PATH"
	envCycle   = "COLLABD_STORAGE_CRASH_CYCLE"
	envJournal = "COLLABD_STORAGE_CRASH_JOURNAL"
	envCycles  = "COLLABD_CRASH_CYCLES"
	envSeed    = "COLLABD_CRASH_SEED"

	crashWriters = 8
	crashDocs    = 20
	crashTimeout = 60 * time.Second // ceiling for one cycle; a hung child fails the test
)

func TestCrashAckedAppendsSurviveKill(t *testing.T) { crashLoop(t, "append") }

func TestCrashDuringCompaction(t *testing.T) { crashLoop(t, "compact") }

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envChild)
	if mode == "" {
		t.Skip("helper process for the crash tests")
	}
	cycle, _ := strconv.Atoi(os.Getenv(envCycle))
	journal, _ := strconv.Atoi(os.Getenv(envJournal))
	if err := crashChild(os.Getenv(envPath), mode, cycle, journal); err != nil {
		fmt.Printf("FAIL %v\n", err)
		os.Exit(3)
	}
}

func crashChild(path, mode string, cycle, journal int) error {
	s, err := storage.Open(path, storage.Options{JournalEntries: journal})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var out sync.Mutex // one write(2) per line keeps lines whole in the pipe
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		out.Lock()
		defer out.Unlock()
		_, _ = os.Stdout.WriteString(line) // the parent reading stdout is the only consumer
	}
	say("READY\n")
	errc := make(chan error, crashWriters+1)
	// The compactor runs once per compactEvery acks instead of spinning.
	const compactEvery = 25
	kick := make(chan struct{}, 1)
	var acks atomic.Int64
	for w := range crashWriters {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
			for i := 0; ; i++ {
				doc := fmt.Sprintf("doc-%02d", rng.IntN(crashDocs))
				payload := crashPayload(rng, cycle, w, i)
				seq, err := s.Append(ctx, doc, payload)
				if err != nil {
					errc <- fmt.Errorf("append: %w", err)
					return
				}
				sum := sha256.Sum256(payload)
				say("ACK %s %d %s\n", doc, seq, hex.EncodeToString(sum[:]))
				if acks.Add(1)%compactEvery == 0 {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	if mode == "compact" {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), 999))
			for range kick {
				doc := fmt.Sprintf("doc-%02d", rng.IntN(crashDocs))
				if err := compactOnce(ctx, s, doc, rng); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	return <-errc // runs until killed
}

// crashPayload is unique per (cycle, writer, index), with a random tail of
// 0–512 bytes so that commits span pages.
func crashPayload(rng *rand.Rand, cycle, w, i int) []byte {
	p := fmt.Appendf(nil, "c%d-w%d-%d|", cycle, w, i)
	for range rng.IntN(512) {
		p = append(p, byte(rng.Uint32()))
	}
	return p
}

// compactOnce folds a random prefix of doc's tail into its test snapshot.
func compactOnce(ctx context.Context, s *storage.Store, doc string, rng *rand.Rand) error {
	d, err := s.Load(ctx, doc)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if len(d.Tail) == 0 {
		return nil
	}
	through := d.Tail[rng.IntN(len(d.Tail))].Seq
	snap, err := compactionSnapshot(d, through)
	if err != nil {
		return err
	}
	if err := s.Compact(ctx, doc, snap, through); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

type ack struct {
	doc string
	seq uint64
}

func crashLoop(t *testing.T, mode string) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	t.Parallel() // mostly waiting on fsync; the two loops overlap well
	cycles := 20
	if v, err := strconv.Atoi(os.Getenv(envCycles)); err == nil && v > 0 {
		cycles = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv(envSeed), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d), %d cycles", seed, envSeed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "crash.db")
	acked := make(map[string]ack) // payload hash -> where it was acknowledged
	total := 0
	for cycle := range cycles {
		// Kill right after start, or after a random number of acks.
		killAfter := 0
		if rng.IntN(8) != 0 {
			killAfter = 1 + rng.IntN(1200)
		}
		journal := []int{8, 64, 0}[rng.IntN(3)] // 0: the default
		// A small journal keeps the committer migrating entries into the
		// per-document logs, so kills land in the middle of that too.
		total += runCrashChild(t, path, mode, cycle, journal, killAfter, acked)
		checkCrashFile(t, path, acked, cycle)
	}
	t.Logf("%d cycles, %d acknowledged appends, all present exactly once", cycles, total)
}

// runCrashChild starts a child, reads its acks into acked, and SIGKILLs it
// once killAfter acks arrived. It returns the number of acks read.
func runCrashChild(t *testing.T, path, mode string, cycle, journal, killAfter int, acked map[string]ack) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envPath+"="+path, envCycle+"="+strconv.Itoa(cycle), envJournal+"="+strconv.Itoa(journal))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill() // SIGKILL; an error means it already exited, which Wait reports
		}
	}
	hung := time.AfterFunc(crashTimeout, func() { _ = cmd.Process.Kill() }) // ceiling only
	defer hung.Stop()

	n := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "READY":
			if killAfter == 0 {
				kill()
			}
		case len(f) == 4 && f[0] == "ACK":
			seq, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Fatalf("cycle %d: bad line %q", cycle, sc.Text())
			}
			if prev, dup := acked[f[3]]; dup {
				t.Fatalf("cycle %d: payload acknowledged twice: %v and %s/%d", cycle, prev, f[1], seq)
			}
			acked[f[3]] = ack{doc: f[1], seq: seq}
			if n++; n == killAfter {
				kill()
			}
		case len(f) > 0 && f[0] == "FAIL":
			kill()
			t.Fatalf("cycle %d: child: %s", cycle, sc.Text())
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("cycle %d: child exited on its own (or hung past %v): %v", cycle, crashTimeout, err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("cycle %d: child did not die of SIGKILL: %v", cycle, err)
	}
	return n
}

// checkCrashFile verifies the file and checks the set: every acknowledged
// payload is stored exactly once, under its document and sequence.
func checkCrashFile(t *testing.T, path string, acked map[string]ack, cycle int) {
	t.Helper()
	ctx := context.Background()
	if rep, err := storage.Verify(ctx, path, storage.Options{}); err != nil {
		t.Fatalf("cycle %d: Verify() = %v %q", cycle, err, rep.Problems)
	}
	s, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer s.Close()
	docs, err := s.List(ctx, storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]ack)
	for _, info := range docs {
		d, err := s.Load(ctx, info.ID)
		if err != nil {
			t.Fatalf("cycle %d: Load(%s) = %v", cycle, info.ID, err)
		}
		es, err := allEntries(d)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		for _, e := range es {
			sum := sha256.Sum256(e.Data)
			h := hex.EncodeToString(sum[:])
			if prev, dup := stored[h]; dup {
				t.Fatalf("cycle %d: payload stored twice: %v and %s/%d", cycle, prev, info.ID, e.Seq)
			}
			stored[h] = ack{doc: info.ID, seq: e.Seq}
		}
	}
	lost := 0
	for h, a := range acked {
		got, ok := stored[h]
		if !ok {
			lost++
			t.Errorf("cycle %d: LOST acknowledged append %s/%d (%s)", cycle, a.doc, a.seq, h[:12])
			continue
		}
		if got != a {
			t.Errorf("cycle %d: append acknowledged as %v is stored as %v", cycle, a, got)
		}
	}
	if lost > 0 || t.Failed() {
		t.Fatalf("cycle %d: %d of %d acknowledged appends lost", cycle, lost, len(acked))
	}
}
