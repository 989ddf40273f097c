package server

import (
	"context"
	"runtime/debug"
	"sync"
)

// A read loop on a plain TCP connection waits for its socket shallowly and
// hands each burst of frames to another goroutine (readWS), so that its own
// stack stays at 2 KiB while the connection idles. A goroutine started per
// burst pays its start and, every time, the growth of a 2 KiB stack to what
// decoding and routing a frame takes (newstack and copystack were 7.5 % of
// the server's CPU under 1,000 busy Yjs connections, and the presence storm
// cost a point of a core more than with a deep read loop). The drain pool
// keeps a few goroutines whose stacks stay grown: a burst goes to an idle
// one, or, when every one is busy, to a goroutine of its own (offload), as
// before.

// drainWorkers is the pool's size: bursts are short (tens of µs), so a few
// workers serve thousands of connections; past them bursts get goroutines
// of their own.
const drainWorkers = 16

// drainPool runs bursts on its workers, which the Server owns: they stop
// with its context.
type drainPool struct {
	work chan drainJob // unbuffered: a send succeeds only to an idle worker
}

type drainJob struct {
	f    func() bool
	done chan<- drainResult
}

type drainResult struct {
	ok    bool
	panic any
	stack []byte
}

// newDrainPool starts the workers; wg counts them.
func newDrainPool(ctx context.Context, wg *sync.WaitGroup) *drainPool {
	p := &drainPool{work: make(chan drainJob)}
	for range drainWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.worker(ctx)
		}()
	}
	return p
}

func (p *drainPool) worker(ctx context.Context) {
	for {
		select {
		case j := <-p.work:
			j.done <- runRecovered(j.f)
		case <-ctx.Done():
			return
		}
	}
}

// runRecovered runs f, carrying a panic back as a value.
func runRecovered(f func() bool) (r drainResult) {
	defer func() {
		if v := recover(); v != nil {
			r.panic, r.stack = v, debug.Stack()
		}
	}()
	r.ok = f()
	return r
}

// run runs f on an idle worker, or on a goroutine of its own if none is
// idle (or the pool has stopped), and waits for it; a panic in f is raised
// again here, as offload does.
func (p *drainPool) run(f func() bool) bool {
	if p == nil {
		return offload(f)
	}
	done := make(chan drainResult, 1)
	select {
	case p.work <- drainJob{f, done}:
	default:
		return offload(f)
	}
	r := <-done
	if r.panic != nil {
		panic(offloadedPanic{r.panic, r.stack})
	}
	return r.ok
}
