package yjs_test

import (
	"fmt"

	"github.com/collabd/collabd/crdt/yjs"
)

// A server document edits a Y.Text as its own client; the returned update
// is what every Yjs peer (and a second document here) applies.
func Example() {
	server := yjs.New(yjs.Limits{})
	u1, _ := server.InsertText(1, "t", 0, "hello world")
	u2, _ := server.DeleteText(1, "t", 5, 6)
	u3, _ := server.SetMap(1, "meta", "title", yjs.Any{Kind: yjs.AnyString, Str: "Greeting"})

	peer := yjs.New(yjs.Limits{})
	for _, u := range [][]byte{u3, u2, u1} { // any order: missing dependencies wait
		if _, err := peer.Apply(u); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(peer.Text("t"))
	fmt.Println(string(peer.JSON("meta", yjs.TypeMap)))
	fmt.Println(string(peer.TextDelta("t")))
	// Output:
	// hello
	// {"title":"Greeting"}
	// [{"insert":"hello"}]
}
