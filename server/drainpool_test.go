package server

import (
	"context"
	"sync"
	"testing"
)

// The drain pool runs a burst on a worker and returns its result; a panic
// comes back to the caller as offload's does; a stopped pool, or one whose
// workers are all busy, runs the burst on a goroutine of its own.
func TestDrainPool(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p := newDrainPool(ctx, &wg)
	if !p.run(func() bool { return true }) || p.run(func() bool { return false }) {
		t.Fatal("run did not return the burst's result")
	}
	func() {
		defer func() {
			v := recover()
			if op, ok := v.(offloadedPanic); !ok || op.v != "boom" || len(op.stack) == 0 {
				t.Fatalf("recovered %#v, want the burst's panic with its stack", v)
			}
		}()
		p.run(func() bool { panic("boom") })
	}()

	// Every worker busy: the next burst still runs (on its own goroutine).
	release := make(chan struct{})
	started := make(chan struct{}, drainWorkers)
	var busy sync.WaitGroup
	for range drainWorkers {
		busy.Add(1)
		go func() {
			defer busy.Done()
			p.run(func() bool { started <- struct{}{}; <-release; return true })
		}()
	}
	for range drainWorkers {
		<-started
	}
	if !p.run(func() bool { return true }) {
		t.Fatal("a burst with every worker busy did not run")
	}
	close(release)
	busy.Wait()

	cancel()
	wg.Wait()
	if !p.run(func() bool { return true }) {
		t.Fatal("a stopped pool did not run the burst")
	}
}
