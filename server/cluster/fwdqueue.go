package cluster

import "sync"

// fwdQueue holds a forwarded subscriber's messages until its worker sends
// them to the owner: FIFO, at most limit of them. It costs nothing while
// empty (a channel of QueueLen slots cost 8 KiB per forwarded subscriber
// up front, idle or not; BENCHMARKS.md "cluster: found while measuring").
type fwdQueue struct {
	mu    sync.Mutex
	items []*fwd
	head  int
	limit int
	wake  chan struct{} // one token: something was pushed since the last wait
}

func newFwdQueue(limit int) fwdQueue {
	return fwdQueue{limit: max(limit, 1), wake: make(chan struct{}, 1)}
}

// push appends f; false when limit messages already wait.
func (q *fwdQueue) push(f *fwd) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, f)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest message; nil when none waits (then wait on wake).
func (q *fwdQueue) pop() *fwd {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil
	}
	f := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) { // drained: let the backing array go
		q.items, q.head = nil, 0
	}
	return f
}

// len is the number of messages waiting.
func (q *fwdQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
