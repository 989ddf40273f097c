package chaos

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/collabd/collabd/internal/natsembed"
)

// The NATS topologies of the cluster run.
const (
	// NATSEmbedded runs each collabd node with its own NATS node
	// (serve --nats-embedded): a SIGKILL of the process kills both.
	NATSEmbedded = "embedded"
	// NATSExternal runs a three-node NATS JetStream cluster in the chaos
	// process (internal/natsembed) and the collabd nodes on it (serve
	// --nats): a collabd SIGKILL leaves NATS intact.
	NATSExternal = "external"
)

// extNATS is the external NATS cluster of a run in NATSExternal mode:
// three natsembed servers on loopback, each with its own store directory
// under the run's data directory, routes to each other, a client token,
// SyncAlways (the embedded default, --nats-sync always). Its fields are
// owned by the run's goroutine.
type extNATS struct {
	cfgs    []natsembed.Config
	servers []*natsembed.Server // nil while shut down
	urls    []string            // client URLs, fixed
	// routes[i][j] is server i's way to server j's route port (nil for
	// i == j): every route goes through a proxy, so that isolate can cut a
	// server off the other two (an isolate-nats fault).
	routes [][]*tcpProxy
}

// newExtNATS lays out the servers (names nats1..nats3) under data on the
// reserved ports (three client ports, then three route ports); every route
// goes through a proxy of the run (routes); logs go to log (nil:
// discarded) at Warn and above, each line prefixed with the server's name.
func newExtNATS(data, token string, ports []int, log *lineWriterSet) (*extNATS, error) {
	x := &extNATS{servers: make([]*natsembed.Server, 3), routes: make([][]*tcpProxy, 3)}
	for i := range 3 {
		x.routes[i] = make([]*tcpProxy, 3)
		for j := range 3 {
			if i == j {
				continue
			}
			p, err := newTCPProxy(fmt.Sprintf("127.0.0.1:%d", ports[3+j]))
			if err != nil {
				x.closeProxies()
				return nil, err
			}
			x.routes[i][j] = p
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("nats%d", i+1)
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, "nats://"+x.routes[i][j].addr())
			}
		}
		cfg := natsembed.Config{
			Name:          name,
			StoreDir:      filepath.Join(data, name),
			Listen:        fmt.Sprintf("127.0.0.1:%d", ports[i]),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]),
			Routes:        routes,
			// What a server announces as its route address is where the
			// others go when they learn of it from a third (an implicit
			// route, made while the mesh forms): nowhere, or a route
			// could bypass the proxies and survive an isolation.
			ClusterAdvertise: refusingAddr,
			SyncAlways:       true,
			Token:            token,
			NoAdvertise:      true,             // the nodes reconnect only through their proxies (a partition cuts them)
			ReadyTimeout:     30 * time.Second, // a loaded machine: JetStream recovering its store
		}
		if w := log.writer(name); w != nil {
			cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		x.cfgs = append(x.cfgs, cfg)
		x.urls = append(x.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	return x, nil
}

// refusingAddr is a loopback address that refuses connections: port 1
// (tcpmux), below the range the kernel gives listeners on port 0, so none
// of the run's own listeners can get it, and nothing but a privileged
// service would listen there.
const refusingAddr = "127.0.0.1:1"

// isolate cuts server i off the other two servers (every route proxy to or
// from it), or heals it. Its clients stay connected to it.
func (x *extNATS) isolate(i int, on bool) {
	for j := range 3 {
		if j != i {
			x.routes[i][j].setCut(on)
			x.routes[j][i].setCut(on)
		}
	}
}

// closeProxies stops the route proxies.
func (x *extNATS) closeProxies() {
	for _, row := range x.routes {
		for _, p := range row {
			if p != nil {
				p.close()
			}
		}
	}
}

// names are the servers' names, as stream infos report leaders.
func (x *extNATS) names() []string {
	var out []string
	for _, c := range x.cfgs {
		out = append(out, c.Name)
	}
	return out
}

// start starts every server that is not running.
func (x *extNATS) start(ctx context.Context) error {
	for i := range x.cfgs {
		if x.servers[i] == nil {
			if err := x.restart(ctx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// restart starts server i again on its ports and store directory,
// retrying for up to 10 s while a port is not yet free.
func (x *extNATS) restart(ctx context.Context, i int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := natsembed.Start(x.cfgs[i])
		if err == nil {
			x.servers[i] = s
			return nil
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
			return fmt.Errorf("chaos: start NATS %s: %w", x.cfgs[i].Name, err)
		}
	}
}

// shutdown stops server i (nats-server's Shutdown: in-process, so not a
// crash; it closes its connections at once), bounded by 30 s.
func (x *extNATS) shutdown(i int) error {
	if x.servers[i] == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := x.servers[i].Shutdown(ctx)
	x.servers[i] = nil
	return err
}

// up reports whether server i is running.
func (x *extNATS) up(i int) bool { return x.servers[i] != nil }

// stop shuts every server down and stops the route proxies.
func (x *extNATS) stop() {
	for i := range x.servers {
		_ = x.shutdown(i)
	}
	x.closeProxies()
}

// lineWriterSet makes lineWriters over one log, sharing one lock so that
// every process's and server's lines stay whole.
type lineWriterSet struct {
	mu sync.Mutex
	w  io.Writer
}

// writer is a lineWriter prefixing lines with name; nil if there is no log.
func (s *lineWriterSet) writer(name string) *lineWriter {
	if s == nil || s.w == nil {
		return nil
	}
	return &lineWriter{mu: &s.mu, w: s.w, prefix: []byte(name + " ")}
}

// natsFlags are the serve flags of a node in mode: its own embedded NATS
// node, or the URLs it reaches the external cluster by (its proxies).
func natsFlags(mode string, i int, id, token string, clientPorts, routePorts []int, urls []string) []string {
	if mode == NATSExternal {
		return []string{"--nats", strings.Join(urls, ","), "--node-id", id, "--nats-token", token}
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return []string{"--nats-embedded", "--node-id", id,
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", clientPorts[i]), "--nats-token", token,
		"--nats-cluster-listen", fmt.Sprintf("127.0.0.1:%d", routePorts[i]),
		"--nats-routes", strings.Join(routes, ",")}
}
