package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/collabd/collabd/internal/natsembed/natstest"
)

// snapOnLeader finds a snapshot the leader has, and not one never written
// or deleted (it asks the stream API with the object store's metadata
// subject: the encoding must match nats.go's).
func TestSnapOnLeader(t *testing.T) {
	c := natstest.Single(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, c.Connect(), Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(ctx) }()
	const name = "ZG9j.7.42" // as snapshot names are: the document's subject token, sequences
	if _, err := s.snaps.PutBytes(ctx, name, []byte("snapshot")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{name, true}, {"never-written", false}} {
		got, err := s.snapOnLeader(ctx, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("snapOnLeader(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := s.snaps.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got, err := s.snapOnLeader(ctx, name); err != nil || got {
		t.Errorf("snapOnLeader of a deleted snapshot = %v, %v; want false", got, err)
	}
}
