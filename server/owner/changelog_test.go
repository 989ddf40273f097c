package owner

import "testing"

func TestChangeLogSince(t *testing.T) {
	l := newChangeLog(3, 1<<20)
	for v := uint64(0); v < 5; v++ {
		l.add(Step{From: v * 10, To: v*10 + 10})
	}
	if _, ok := l.since(10, 50); ok {
		t.Fatal("version 10 was evicted (3 entries kept)")
	}
	if c, ok := l.since(20, 50); !ok || len(c) != 3 || c[0].From != 20 {
		t.Fatalf("since 20: %v %v", c, ok)
	}
	if c, ok := l.since(50, 50); !ok || len(c) != 0 {
		t.Fatal("since now")
	}
	for _, v := range []uint64{25, 60, 1 << 63} {
		if _, ok := l.since(v, 50); ok {
			t.Fatalf("since %d accepted", v)
		}
	}
}
