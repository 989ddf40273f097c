package natsembed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/internal/natsembed/natstest"
)

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []natsembed.Config{
		{}, // no store dir
		{StoreDir: "x", Routes: []string{"nats://a:1"}}, // routes without cluster listen
		{StoreDir: "x", ClusterListen: "127.0.0.1:0"},   // clustered without a name
		{StoreDir: "x", Name: "n", ClusterListen: "127.0.0.1:0", Routes: []string{"::"}},
		{StoreDir: "x", Listen: "nope"},
		{StoreDir: "x", Name: "n", ClusterListen: "127.0.0.1:0", ClusterAdvertise: "no-port"},
	} {
		if _, err := natsembed.Start(cfg); !errors.Is(err, natsembed.ErrConfig) {
			t.Errorf("Start(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

// TestCluster: three nodes form a JetStream cluster that stores an R3
// stream, and survive one node's loss.
func TestCluster(t *testing.T) {
	c := natstest.Start(t, 3)
	nc := c.Connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var s jetstream.Stream
	for {
		tctx, tcancel := context.WithTimeout(ctx, time.Second)
		s, err = js.CreateStream(tctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
		tcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create stream: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // the meta group has no ready event to wait on
		}
	}
	t.Logf("R3 stream after %v", time.Since(start))
	if _, err := js.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	if _, err := js.Publish(ctx, "t.a", []byte("y")); err != nil {
		t.Fatalf("publish with a node down: %v", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "t.a")
	if err != nil || string(m.Data) != "y" {
		t.Fatalf("last = %v, %v; want y", m, err)
	}
}
