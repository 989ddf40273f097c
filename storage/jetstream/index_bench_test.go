package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed/natstest"
	"github.com/collabd/collabd/storage/jetstream"
)

// BenchmarkListPage: one page of 100 documents of the index (List) and,
// as the reference it replaces, the ops stream's subject list (stream info
// with a subject filter), on two stores of 500 and 5000 documents (one
// node each). The four are timed in turn in every iteration, so that the
// machine's load weighs on them alike, and reported as ms/op metrics. A
// page's cost should not grow with the documents; the subject list's
// does.
func BenchmarkListPage(b *testing.B) {
	type store struct {
		n   int
		s   *jetstream.Store
		str njs.Stream
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stores []store
	for _, n := range []int{500, 5000} {
		nc := natstest.Single(b).Connect()
		s, err := jetstream.New(ctx, nc, jetstream.Options{Replicas: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(context.Background()) })
		fill(b, ctx, s, n)
		js, err := njs.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		str, err := js.Stream(ctx, "collabd_ops")
		if err != nil {
			b.Fatal(err)
		}
		stores = append(stores, store{n, s, str})
	}
	spent := map[string]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for _, st := range stores {
			start := time.Now()
			page, err := st.s.List(ctx, "", 100)
			if err != nil || len(page.Docs) < 99 { // the index's own key takes a slot of the first page
				b.Fatalf("List = %d, %v", len(page.Docs), err)
			}
			spent[fmt.Sprintf("index-%d-ms/op", st.n)] += time.Since(start)
			start = time.Now()
			info, err := st.str.Info(ctx, njs.WithSubjectFilter("collabd.ops.>"))
			if err != nil || len(info.State.Subjects) != st.n {
				b.Fatalf("subjects = %d, %v", len(info.State.Subjects), err)
			}
			spent[fmt.Sprintf("subjects-%d-ms/op", st.n)] += time.Since(start)
		}
	}
	for name, d := range spent {
		b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), name)
	}
}

// fill writes n documents of one update each, 32 at a time.
func fill(b *testing.B, ctx context.Context, s *jetstream.Store, n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				doc := fmt.Sprintf("doc-%05d", i)
				if _, err := s.Open(ctx, doc, 1); !errors.Is(err, jetstream.ErrNotFound) {
					errs <- err
					return
				}
				p, err := s.Submit(doc, []byte("u"))
				if err == nil {
					_, err = p.Result()
				}
				if err != nil {
					errs <- err
					return
				}
				s.Release(doc)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
