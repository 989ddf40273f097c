package natsembed_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/collabd/collabd/internal/natsembed"
	"github.com/collabd/collabd/internal/natsembed/natstest"
)

// logSink keeps every log line and signals the lines that match a pattern.
type logSink struct {
	mu    sync.Mutex // guards buf and match
	buf   bytes.Buffer
	match *regexp.Regexp
	hit   chan string // one per matching write, dropped when full
}

func newLogSink() *logSink { return &logSink{hit: make(chan string, 64)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(p)
	m := s.match
	s.mu.Unlock()
	if m != nil && m.Match(p) {
		select {
		case s.hit <- string(p):
		default:
		}
	}
	return len(p), nil
}

// watch signals the lines matching re from now on (earlier signals are
// dropped).
func (s *logSink) watch(re string) {
	s.mu.Lock()
	s.match = regexp.MustCompile(re)
	s.mu.Unlock()
	for {
		select {
		case <-s.hit:
		default:
			return
		}
	}
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// clientTLS is a client's TLS configuration: it trusts ca and presents a
// certificate of it.
func clientTLS(ca *natstest.CA, name string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{ca.Issue(name)}, MinVersion: tls.VersionTLS12}
}

// TestSecureCluster: three nodes with TLS on their client and route ports
// (certificates of one CA, made here), a route secret and a client token
// form a JetStream cluster; clients without the token, the CA or a
// certificate are refused; a fourth node with the wrong secret, or with
// a certificate of another CA, cannot join and its clients cannot read
// the cluster's streams. No secret is ever logged.
func TestSecureCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and two rejected nodes")
	}
	const secret, token = "route-secret-b7f3e1c9a2d4", "client-token-5e8a0c1f"
	ca := natstest.NewCA(t, "collabd test CA")
	sink := newLogSink()
	log := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := natstest.StartWith(t, 3, func(i int, cfg *natsembed.Config) {
		name := fmt.Sprintf("n%d", i+1)
		cfg.TLS, cfg.ClusterTLS = ca.ServerTLS(name), ca.ServerTLS(name)
		cfg.ClusterSecret, cfg.Token = secret, token
		cfg.Logger = log.With("node", name)
	})
	nc := c.Connect(nats.Secure(clientTLS(ca, "client")), nats.Token(token))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for { // the meta group has no ready event to wait on
		tctx, tcancel := context.WithTimeout(ctx, time.Second)
		_, err = js.CreateStream(tctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
		tcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create an R3 stream over TLS routes: %v", err)
		}
	}
	if _, err := js.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Route connections per node: one pool per peer (nats-server pools
	// them), the same after the rejected nodes.
	routeCount := make([]int, len(c.Nodes))
	for i, n := range c.Nodes {
		if routeCount[i] = n.Routes(); routeCount[i] < 2 {
			t.Errorf("node %d has %d routes, want 2 or more", i+1, routeCount[i])
		}
	}

	// Clients without the right credentials.
	url := c.Nodes[0].ClientURL()
	for name, opts := range map[string][]nats.Option{
		"no token":          {nats.Secure(clientTLS(ca, "client"))},
		"wrong token":       {nats.Secure(clientTLS(ca, "client")), nats.Token("guess")},
		"no TLS":            {nats.Token(token)},
		"no client cert":    {nats.Secure(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}), nats.Token(token)},
		"another CA's cert": {nats.Secure(clientTLS(natstest.NewCA(t, "other"), "client")), nats.Token(token)},
		"untrusted server":  {nats.Secure(&tls.Config{Certificates: []tls.Certificate{ca.Issue("c")}, MinVersion: tls.VersionTLS12}), nats.Token(token)},
	} {
		bad, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			bad.Close()
			t.Errorf("a client with %s connected", name)
		}
	}

	// Nodes without the right credentials cannot join.
	routes := []string{c.Nodes[0].ClusterURL(), c.Nodes[1].ClusterURL(), c.Nodes[2].ClusterURL()}
	other := natstest.NewCA(t, "another CA")
	for _, tc := range []struct {
		name       string
		tls        *tls.Config
		secret     string
		clientTLS  *tls.Config
		rejections string // what the cluster's nodes log
	}{
		{"wrong secret", ca.ServerTLS("n4"), "wrong-secret-0123456789", clientTLS(ca, "c4"), `(?i)authori[sz]ation|authentication`},
		{"another CA", other.ServerTLS("n4"), secret, clientTLS(other, "c4"), `(?i)handshake error|certificate`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink.watch(tc.rejections)
			bad, err := natsembed.Start(natsembed.Config{Name: "n4", StoreDir: t.TempDir(), ClusterName: "test",
				ClusterListen: "127.0.0.1:0", Routes: routes, TLS: tc.tls, ClusterTLS: tc.tls, ClusterSecret: tc.secret,
				Token: token, Logger: log.With("node", "n4")})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer scancel()
				_ = bad.Shutdown(sctx)
			}()
			select {
			case line := <-sink.hit:
				t.Logf("refused: %s", strings.TrimSpace(line))
			case <-ctx.Done():
				t.Fatal("no route refusal logged")
			}
			// (The rejected node's own count may include a route being
			// refused; the cluster's nodes register one only once it is
			// authenticated.)
			for i, n := range c.Nodes {
				if n.Routes() != routeCount[i] {
					t.Errorf("node %d has %d routes, want %d as before", i+1, n.Routes(), routeCount[i])
				}
			}
			bnc, err := nats.Connect(bad.ClientURL(), nats.Secure(tc.clientTLS), nats.Token(token))
			if err != nil {
				t.Fatal(err)
			}
			defer bnc.Close()
			bjs, err := jetstream.New(bnc)
			if err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			defer rcancel()
			if _, err := bjs.Stream(rctx, "T"); err == nil {
				t.Error("the rejected node's client read the cluster's stream")
			}
		})
	}
	sink.watch(`^$`)
	for _, sec := range []string{secret, token} {
		if strings.Contains(sink.String(), sec) {
			t.Errorf("a secret is in the log: %q", sec)
		}
	}
}
