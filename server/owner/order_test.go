package owner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// orderLog records which subscriber was handed each update, in order.
type orderLog struct {
	mu  sync.Mutex // guards ids
	ids []string
}

func (l *orderLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := l.ids
	l.ids = nil
	return ids
}

// orderSub is a fakeSub that also notes its id in a shared log for every
// update it takes; fail makes its next update delivery fail.
type orderSub struct {
	fakeSub
	log  *orderLog
	fail bool // guarded by fakeSub.mu
}

func (s *orderSub) Deliver(ev Event) bool {
	if _, ok := ev.(*UpdateEvent); ok {
		s.mu.Lock()
		fail := s.fail
		s.mu.Unlock()
		if fail {
			return false
		}
		s.log.mu.Lock()
		s.log.ids = append(s.log.ids, s.id)
		s.log.mu.Unlock()
	}
	return s.fakeSub.Deliver(ev)
}

// Updates fan out in join order (as Hocuspocus and y-websocket do), never
// in a map's random order: the author is skipped, a subscriber that left is
// gone, one whose delivery fails is dropped without disturbing the others,
// and a rejoin keeps its place.
func TestFanOutInJoinOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRegistry(t, &fakeStore{auto: true}, nil)
		log := &orderLog{}
		var subs []*orderSub
		var o *Owner
		for i := range 20 {
			s := &orderSub{fakeSub: fakeSub{id: fmt.Sprintf("s%02d", i)}, log: log}
			subs = append(subs, s)
			o = send(t, r, "d", Join{Sub: s})
		}
		ctx := context.Background()
		o.Send(ctx, Leave{Sub: subs[3]})
		o.Send(ctx, Join{Sub: subs[7]}) // a rejoin: same place
		subs[11].mu.Lock()
		subs[11].fail = true
		subs[11].mu.Unlock()
		synctest.Wait()
		log.take()

		want := func(skip ...int) []string {
			var ids []string
			for i, s := range subs {
				if !slices.Contains(skip, i) {
					ids = append(ids, s.id)
				}
			}
			return ids
		}
		o.Send(ctx, Update{Sub: subs[0], Batch: 1, Update: []byte("a")})
		synctest.Wait()
		if got, w := log.take(), want(0, 3, 11); !slices.Equal(got, w) {
			t.Fatalf("first update handed to\n %v\nwant (join order, without the author, the one that left and the failing one)\n %v", got, w)
		}
		o.Send(ctx, Join{Sub: subs[3]}) // joins again: now last
		o.Send(ctx, Update{Sub: subs[19], Batch: 1, Update: []byte("b")})
		synctest.Wait()
		w := append(want(3, 11, 19), subs[3].id)
		if got := log.take(); !slices.Equal(got, w) {
			t.Fatalf("second update handed to\n %v\nwant\n %v", got, w)
		}
	})
}
