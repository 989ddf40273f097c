package cluster

import (
	"sync"
	"testing"
)

func TestFwdQueue(t *testing.T) {
	q := newFwdQueue(3)
	if q.pop() != nil {
		t.Fatal("pop of an empty queue")
	}
	a, b, c, d := &fwd{batch: 1}, &fwd{batch: 2}, &fwd{batch: 3}, &fwd{batch: 4}
	for _, f := range []*fwd{a, b, c} {
		if !q.push(f) {
			t.Fatalf("push %d refused below the limit", f.batch)
		}
	}
	if q.push(d) {
		t.Fatal("push past the limit accepted")
	}
	if q.pop() != a || !q.push(d) {
		t.Fatal("a pop did not make room")
	}
	for _, want := range []*fwd{b, c, d} {
		if got := q.pop(); got != want {
			t.Fatalf("pop = %v, want batch %d", got, want.batch)
		}
	}
	if q.pop() != nil || q.items != nil {
		t.Fatalf("drained queue keeps %d slots", cap(q.items))
	}
}

// TestFwdQueueWake: a consumer that waits on wake after an empty pop never
// misses a push (the token is buffered), and order is kept.
func TestFwdQueueWake(t *testing.T) {
	q := newFwdQueue(1 << 20)
	const n = 10000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			q.push(&fwd{batch: uint64(i)})
		}
	}()
	for next := uint64(0); next < n; {
		f := q.pop()
		if f == nil {
			<-q.wake
			continue
		}
		if f.batch != next {
			t.Fatalf("got %d, want %d", f.batch, next)
		}
		next++
	}
	wg.Wait()
}
