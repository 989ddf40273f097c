package jetstream

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A JetStream API call that gets no answer is tried again after
// WriteTimeout while the caller's deadline allows, not left to wait for
// all of it; an error that is an answer is returned at once.
func TestUntilAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Store{opts: Options{WriteTimeout: 5 * time.Second}}
		tries := 0
		unansweredTwice := func(ctx context.Context) error {
			tries++
			if tries <= 2 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.untilAnswered(ctx, unansweredTwice); err != nil || tries != 3 || time.Since(start) != 10*time.Second {
			t.Errorf("= %v after %d tries and %v, want nil after 3 and 10s", err, tries, time.Since(start))
		}

		answer := errors.New("stream not found")
		tries = 0
		if err := s.untilAnswered(ctx, func(context.Context) error { tries++; return answer }); err != answer || tries != 1 {
			t.Errorf("an answered error: %v after %d tries", err, tries)
		}

		tries = 0
		short, cancel2 := context.WithTimeout(context.Background(), 12*time.Second)
		defer cancel2()
		start = time.Now()
		never := func(ctx context.Context) error { tries++; <-ctx.Done(); return ctx.Err() }
		if err := s.untilAnswered(short, never); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 12*time.Second || tries != 3 {
			t.Errorf("past the caller's deadline: %v after %v and %d tries", err, time.Since(start), tries)
		}

		tries = 0
		if err := s.untilAnswered(context.Background(), never); !errors.Is(err, context.DeadlineExceeded) || tries != 1 {
			t.Errorf("without a deadline: %v after %d tries, want one", err, tries)
		}
	})
}
