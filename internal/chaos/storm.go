package chaos

import (
	"context"
	"time"

	"github.com/collabd/collabd/internal/loadgen"
)

// Storm is the reconnect storm.
type Storm struct {
	Serve    Serve
	Clients  int
	Docs     int
	Signal   string
	Converge time.Duration
}

// RunStorm is not written yet.
func RunStorm(ctx context.Context, p Storm) (*loadgen.Result, error) { return nil, nil }
