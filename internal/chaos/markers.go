package chaos

// What the durability runs' writers share: their documents' names and the
// append of one marker.

import (
	"errors"
	"strconv"

	collab "github.com/collabd/collabd/clients/go"
	"github.com/collabd/collabd/crdt"
)

// runDocIDs names a run's n documents: prefix-run-i.
func runDocIDs(prefix, run string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + run + "-" + strconv.Itoa(i)
	}
	return ids
}

// appendMarker appends m at the end of d's text. A client closed under it
// (the run is ending) is not an error.
func appendMarker(d *collab.Document, m string) error {
	err := d.Edit(func(doc *crdt.Doc) error {
		t := doc.Text(Root)
		return t.Insert(t.Len(), m)
	})
	if errors.Is(err, collab.ErrClosed) {
		return errClosed
	}
	return err
}

// errClosed: the writer's client was closed (the run is ending).
var errClosed = errors.New("chaos: client closed")
