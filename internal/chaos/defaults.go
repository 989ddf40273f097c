package chaos

import "time"

// orDefault sets *p to v when it is zero or negative (a scenario's unset
// field).
func orDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}
