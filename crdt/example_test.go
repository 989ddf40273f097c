package crdt_test

import (
	"fmt"

	"github.com/collabd/collabd/crdt"
)

// Two replicas edit the same text offline, then exchange what the other lacks.
func Example() {
	alice := crdt.NewDoc(crdt.Options{Agent: 1})
	bob := crdt.NewDoc(crdt.Options{Agent: 2})

	_ = alice.Text("body").Insert(0, "Hello world")
	_ = bob.ApplyUpdate(alice.TakeUpdate())

	// Concurrent, offline edits.
	_ = alice.Text("body").Insert(5, ",")
	_ = bob.Text("body").Insert(11, "!")
	_ = bob.Text("body").Delete(0, 1)
	_ = bob.Text("body").Insert(0, "J")

	// Sync by state vector: each side sends exactly what the other lacks.
	_ = bob.ApplyUpdate(alice.EncodeDiff(bob.StateVector()))
	_ = alice.ApplyUpdate(bob.EncodeDiff(alice.StateVector()))

	fmt.Println(alice.Text("body").String())
	fmt.Println(bob.Text("body").String())
	fmt.Println(alice.StateVector().Equal(bob.StateVector()))
	// Output:
	// Jello, world!
	// Jello, world!
	// true
}

// A document is stored as a snapshot and loaded without replaying its ops.
func ExampleLoadSnapshot() {
	d := crdt.NewDoc(crdt.Options{Agent: 1})
	_ = d.Text("body").Insert(0, "draft")
	_ = d.Text("body").Delete(0, 1)
	_ = d.Text("body").Insert(0, "D")

	loaded, err := crdt.LoadSnapshot(d.EncodeSnapshot(), crdt.Options{Agent: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(loaded.Text("body").String(), loaded.Version())
	// Output: Draft 7
}
