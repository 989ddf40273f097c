package server

import (
	"strings"
	"testing"
)

// A frame handled off the read loop answers as if handled on it, and a
// panic there is raised again on the read loop (whose recovery closes the
// session), with the stack where it happened.
func TestOffload(t *testing.T) {
	if !offload(func() bool { return true }) || offload(func() bool { return false }) {
		t.Fatal("offload changed f's result")
	}
	defer func() {
		p, ok := recover().(offloadedPanic)
		if !ok {
			t.Fatalf("recovered %T, want offloadedPanic", p)
		}
		if got := p.String(); !strings.HasPrefix(got, "boom\n") || !strings.Contains(got, "TestOffload") {
			t.Fatalf("panic %q: want the value, then the stack of f", got)
		}
	}()
	offload(func() bool { panic("boom") })
	t.Fatal("no panic on the caller")
}
