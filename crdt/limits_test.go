package crdt_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/collabd/collabd/crdt"
)

func TestCheckRange(t *testing.T) {
	tests := []struct {
		pos, n, size int
		ok           bool
	}{
		{0, 0, 0, true},
		{0, 5, 5, true},
		{5, 0, 5, true},
		{2, 3, 5, true},
		{2, 4, 5, false},
		{6, 0, 5, false},
		{-1, 1, 5, false},
		{1, -1, 5, false},
		{0, 0, -1, false},
		{math.MaxInt64, 1, 5, false},
		{1, math.MaxInt64, 5, false},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, false},
		{math.MaxInt, 0, math.MaxInt, true},
		{1, math.MaxInt, math.MaxInt, false},
		{math.MinInt64, math.MaxInt64, 5, false},
		{math.MinInt64, 0, 5, false},
	}
	for _, tt := range tests {
		err := crdt.CheckRange(tt.pos, tt.n, tt.size)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, crdt.ErrPosition)) {
			t.Errorf("CheckRange(%d, %d, %d) = %v, want ok=%v", tt.pos, tt.n, tt.size, err, tt.ok)
		}
	}
}

// TestTextRangesNeverPanic is the regression test of issue 11 item 1:
// Text.Delete(math.MaxInt64, 1) passed the check pos+n > len (the sum wrapped)
// and panicked with "visible count out of step with runs".
func TestTextRangesNeverPanic(t *testing.T) {
	huge := []int{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt32, math.MaxUint32, math.MinInt64, -1, -math.MaxInt32}
	type call struct {
		pos, n int
	}
	var deletes []call
	for _, h := range huge {
		deletes = append(deletes, call{h, 1}, call{1, h}, call{h, h}, call{h, 0}, call{0, h}, call{h, -h})
	}
	deletes = append(deletes, call{12, 1}, call{11, 2}, call{0, 13}, call{-1, 0})
	for _, c := range deletes {
		d := crdt.NewDoc(crdt.Options{Agent: 1})
		x := d.Text("t")
		if err := x.Insert(0, "hello, world"); err != nil {
			t.Fatal(err)
		}
		err := x.Delete(c.pos, c.n)
		if !errors.Is(err, crdt.ErrPosition) {
			t.Errorf("Delete(%d, %d) = %v, want ErrPosition", c.pos, c.n, err)
		}
		if got := x.String(); got != "hello, world" {
			t.Errorf("Delete(%d, %d) changed the text to %q", c.pos, c.n, got)
		}
		if u := d.TakeUpdate(); len(u) == 0 {
			t.Fatal("the insert made no update")
		}
		if u := d.TakeUpdate(); u != nil {
			t.Errorf("Delete(%d, %d) made an update", c.pos, c.n)
		}
	}
	for _, h := range huge {
		d := crdt.NewDoc(crdt.Options{Agent: 1})
		x := d.Text("t")
		if err := x.Insert(h, "x"); !errors.Is(err, crdt.ErrPosition) {
			t.Errorf("Insert(%d) = %v, want ErrPosition", h, err)
		}
		if _, err := x.RelPos(h, crdt.AssocAfter); !errors.Is(err, crdt.ErrPosition) {
			t.Errorf("RelPos(%d) = %v, want ErrPosition", h, err)
		}
	}
	// Valid edges still work.
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	x := d.Text("t")
	for _, step := range []func() error{
		func() error { return x.Insert(0, "abc") },
		func() error { return x.Delete(3, 0) },
		func() error { return x.Delete(0, 3) },
		func() error { return x.Delete(0, 0) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if x.String() != "" {
		t.Fatalf("text = %q, want empty", x.String())
	}
}

func TestEncodeOpsRefusesWrappingSeqs(t *testing.T) {
	ops := []crdt.Op{
		{Kind: crdt.OpInsert, Root: "t", ID: crdt.ID{Agent: 1, Seq: math.MaxUint64 - 1}, Len: 3, Text: "abc"},
		{Kind: crdt.OpInsert, Root: "t", ID: crdt.ID{Agent: 1, Seq: math.MaxUint32 - 1}, Len: 3, Text: "abc"},
		{Kind: crdt.OpDelete, Root: "t", ID: crdt.ID{Agent: 1}, Len: 2, Target: crdt.ID{Agent: 2, Seq: math.MaxUint64}},
		{Kind: crdt.OpInsert, Root: "t", ID: crdt.ID{Agent: 1}, Len: 1, Text: "a", Left: crdt.ID{Agent: 2, Seq: math.MaxUint64}},
	}
	for _, o := range ops {
		if b, err := crdt.EncodeOps([]crdt.Op{o}); err == nil {
			t.Errorf("EncodeOps(%+v) = %x, want an error", o, b)
		}
	}
}

func TestCheckRootName(t *testing.T) {
	lim := crdt.Limits{MaxRootName: 8}
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"", true}, {"notes", true}, {"12345678", true}, {"123456789", false}, {"\xff", false}} {
		if err := crdt.CheckRootName(tt.name, lim); (err == nil) != tt.ok || (err != nil && !errors.Is(err, crdt.ErrRootName)) {
			t.Errorf("CheckRootName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestWritesKeepLoaderLimits is issue 11 item 2: every write path refuses an
// op that would make a document the loader refuses, with a typed error, and
// leaves the document unchanged.
func TestWritesKeepLoaderLimits(t *testing.T) {
	lim := crdt.Limits{MaxRoots: 3, MaxRootName: 8, MaxAgents: 3, MaxSnapshot: 4 << 10}
	reload := func(t *testing.T, d *crdt.Doc) {
		t.Helper()
		re, err := crdt.LoadSnapshot(d.EncodeSnapshot(), crdt.Options{Agent: 99, Limits: lim})
		if err != nil {
			t.Fatalf("the document does not reload: %v", err)
		}
		for _, name := range d.Roots() {
			if a, b := d.Text(name).String(), re.Text(name).String(); a != b {
				t.Fatalf("root %q reloads as %q, want %q", name, b, a)
			}
		}
	}
	t.Run("local long root name", func(t *testing.T) {
		d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
		if err := d.Text("123456789").Insert(0, "x"); !errors.Is(err, crdt.ErrRootName) {
			t.Fatalf("Insert into a long root = %v, want ErrRootName", err)
		}
		if err := d.Text("\xff").Insert(0, "x"); !errors.Is(err, crdt.ErrRootName) {
			t.Fatalf("Insert into a non-UTF-8 root = %v, want ErrRootName", err)
		}
		if d.TakeUpdate() != nil {
			t.Fatal("a refused insert made an update")
		}
		reload(t, d) // the roots were created (read) but hold nothing: not saved
	})
	t.Run("local roots", func(t *testing.T) {
		d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
		for i := range 10 {
			_ = d.Text(strings.Repeat("r", i)).Len() // reads do not count
		}
		for _, name := range []string{"a", "b", "c"} {
			if err := d.Text(name).Insert(0, name); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Text("d").Insert(0, "d"); !errors.Is(err, crdt.ErrTooLarge) {
			t.Fatalf("fourth root = %v, want ErrTooLarge", err)
		}
		if err := d.Text("a").Insert(1, "more"); err != nil {
			t.Fatalf("an existing root refused: %v", err)
		}
		reload(t, d)
	})
	t.Run("remote roots and agents", func(t *testing.T) {
		d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
		for i, name := range []string{"a", "b", "c", "d"} {
			p := crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(10 + i)})
			if err := p.Text(name).Insert(0, name); err != nil {
				t.Fatal(err)
			}
			err := d.ApplyUpdate(p.TakeUpdate())
			if i < 3 && err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			if i == 3 && !errors.Is(err, crdt.ErrTooLarge) {
				t.Fatalf("fourth agent and root = %v, want ErrTooLarge", err)
			}
		}
		// The own agent is the fourth: it may not edit either.
		if err := d.Text("a").Insert(0, "x"); !errors.Is(err, crdt.ErrTooLarge) {
			t.Fatalf("local edit by a fourth agent = %v, want ErrTooLarge", err)
		}
		reload(t, d)
	})
	t.Run("pending ops count", func(t *testing.T) {
		d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
		// Ops of three agents in three roots whose dependencies never
		// arrive: they wait, and they hold the budget.
		for i, name := range []string{"a", "b", "c", "d"} {
			p := crdt.NewDoc(crdt.Options{Agent: crdt.AgentID(10 + i)})
			_ = p.Text(name).Insert(0, "first")
			_ = p.TakeUpdate() // lost
			_ = p.Text(name).Insert(5, "second")
			err := d.ApplyUpdate(p.TakeUpdate())
			if i < 3 && err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			if i == 3 && !errors.Is(err, crdt.ErrTooLarge) {
				t.Fatalf("fourth pending root = %v, want ErrTooLarge", err)
			}
		}
		if d.Pending() != 3 {
			t.Fatalf("pending = %d, want 3", d.Pending())
		}
		reload(t, d)
	})
	t.Run("snapshot size", func(t *testing.T) {
		d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
		x := d.Text("t")
		var err error
		for i := 0; err == nil && i < 10000; i++ {
			err = x.Insert(x.Len()/2, "ab")
		}
		if !errors.Is(err, crdt.ErrTooLarge) {
			t.Fatalf("growing past MaxSnapshot = %v, want ErrTooLarge", err)
		}
		if d.SizeBound() > lim.MaxSnapshot {
			t.Fatalf("SizeBound %d > MaxSnapshot %d", d.SizeBound(), lim.MaxSnapshot)
		}
		reload(t, d)
		// Deletes are bounded too (each adds history).
		for err == nil {
			err = x.Delete(0, 1)
		}
		if !errors.Is(err, crdt.ErrTooLarge) && !errors.Is(err, crdt.ErrPosition) {
			t.Fatalf("delete = %v", err)
		}
		reload(t, d)
	})
}

// TestSizeBoundMeasuresBeforeRefusing: the estimate adds a worst case per
// op, but typing one character at a time grows a snapshot by about a byte;
// before refusing, the document measures itself, so MaxSnapshot (not the
// estimate) is what limits a document (BenchmarkTypeForward hit the
// estimate after a million keystrokes before this).
func TestSizeBoundMeasuresBeforeRefusing(t *testing.T) {
	const limit = 64 << 10
	lim := crdt.Limits{MaxSnapshot: limit}
	d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
	x := d.Text("t")
	var err error
	typed := 0
	for ; err == nil && typed < 1<<20; typed++ {
		err = x.Insert(x.Len(), "a")
	}
	if !errors.Is(err, crdt.ErrTooLarge) {
		t.Fatalf("typing = %v after %d characters, want ErrTooLarge", err, typed)
	}
	if typed < limit*3/4 {
		t.Fatalf("refused after %d characters; a %d-byte snapshot holds about that many", typed, limit)
	}
	snap := d.EncodeSnapshot()
	if d.SizeBound() > limit {
		t.Fatalf("SizeBound %d > MaxSnapshot %d", d.SizeBound(), limit)
	}
	re, err := crdt.LoadSnapshot(snap, crdt.Options{Agent: 2, Limits: lim})
	if err != nil {
		t.Fatalf("a document at its limit does not reload: %v", err)
	}
	if re.Text("t").Len() != x.Len() {
		t.Fatalf("reloaded %d characters, want %d", re.Text("t").Len(), x.Len())
	}
	// Refused ops do not measure again and again: the estimate is exact
	// until an op is admitted.
	for range 1000 {
		if err := x.Insert(0, "b"); !errors.Is(err, crdt.ErrTooLarge) {
			t.Fatalf("insert into a full document = %v", err)
		}
	}
}

// TestPendingInsertsHoldTheirRoom: a waiting insert counts against
// MaxItems when it is accepted, so it is never dropped for want of room when
// its dependencies arrive (it was acknowledged: dropping it would lose it,
// and split replicas).
func TestPendingInsertsHoldTheirRoom(t *testing.T) {
	lim := crdt.Limits{MaxItems: 12}
	d := crdt.NewDoc(crdt.Options{Agent: 1, Limits: lim})
	p := crdt.NewDoc(crdt.Options{Agent: 2})
	_ = p.Text("t").Insert(0, "aaaaa")
	first := p.TakeUpdate()
	_ = p.Text("t").Insert(5, "bbbbb")
	if err := d.ApplyUpdate(p.TakeUpdate()); err != nil {
		t.Fatal(err)
	}
	if d.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", d.Pending())
	}
	x := d.Text("u")
	if err := x.Insert(0, "cc"); err != nil {
		t.Fatal(err)
	}
	// 2 items, 5 held by the pending insert: 6 more do not fit in 12.
	if err := x.Insert(0, "dddddd"); !errors.Is(err, crdt.ErrTooLarge) {
		t.Fatalf("local insert into the room the pending insert holds = %v, want ErrTooLarge", err)
	}
	if err := d.ApplyUpdate(first); err != nil {
		t.Fatal(err)
	}
	if got := d.Text("t").String(); got != "aaaaabbbbb" || d.Pending() != 0 {
		t.Fatalf("text %q with %d pending, want aaaaabbbbb and none", got, d.Pending())
	}
}
