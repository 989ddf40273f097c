package chaos

import (
	"context"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
)

// Slow is the slow-consumer run.
type Slow struct {
	Serve       Serve
	Subscribers int
	Rate        int
	Payload     int
	QueueBytes  int
	RcvBuf      int
	Duration    time.Duration
	Within      time.Duration
	Factor      float64
}

// RunSlow is not written yet.
func RunSlow(ctx context.Context, p Slow) (*loadgen.Result, error) { return nil, nil }
