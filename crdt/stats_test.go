package crdt

import "testing"

func (t *tree) stats() (leaves, runs, depth int) {
	for l := t.first; l != nil; l = l.next {
		leaves++
		runs += l.n
	}
	for x := t.root; x != nil && !x.leaf; x = x.kids[0] {
		depth++
	}
	return
}

func TestStatsSmoke(t *testing.T) {
	d := NewDoc(Options{Agent: 1})
	x := d.Text("t")
	for i := 0; i < 10000; i++ {
		_ = x.Insert(x.Len(), "a")
		_ = x.Insert(x.Len()/2, "b")
	}
	l, r, dep := x.t.stats()
	t.Logf("leaves %d runs %d depth %d", l, r, dep)
}
