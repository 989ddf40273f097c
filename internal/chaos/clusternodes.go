package chaos

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream names of a cluster with the default prefix "collabd"
// (docs/CLUSTER.md, "Layout in JetStream"). The run reads them through a
// node's NATS client port, as an operator would with the nats CLI.
const (
	opsStream    = "collabd_ops"
	leasesBucket = "collabd_leases"
	leaseStream  = "KV_collabd_leases"
	nodesStream  = "KV_collabd_nodes"
)

// nodeState is what the run did to a node last.
type nodeState int

const (
	nodeUp nodeState = iota + 1
	nodeKilled
	nodeStopped
)

// clusterNode is one `collabd serve --nats-embedded` (or `--nats`, on the
// external servers) process of the run.
// Its fields are owned by the run's goroutine.
type clusterNode struct {
	id    string // node id and NATS server name: n1, n2, n3
	serve Serve  // with its own Data and the cluster flags in Extra
	addr  string // HTTP host:port, fixed by the first start
	nats  string // nats://127.0.0.1:port, its client port
	token string // its client port's token (--nats-token): the lookups' credential
	p     *proc
	state nodeState
	// ext is the external NATS cluster (NATSExternal mode), nil in
	// NATSEmbedded mode; then nats is the URL of its server of the same
	// index, which the lookups use while it is up.
	ext *extNATS
	// proxies (NATSExternal mode) are the node's only way to the NATS
	// servers, one per server: a partition cuts them.
	proxies []*tcpProxy
	debug   string // --metrics-addr (with Go's profiles): its goroutines are dumped when a fault is not recovered
}

// dumpGoroutines writes every running node's goroutine dump to
// <dir>/goroutines-<cycle>-<node>.txt (a fault not recovered: where is
// who waiting) and returns what it wrote, or why not.
func dumpGoroutines(ctx context.Context, nodes []*clusterNode, dir string, cycle int) string {
	hc := &http.Client{Timeout: 5 * time.Second}
	var out []string
	for _, n := range nodes {
		if n.state != nodeUp || n.p == nil || !n.p.alive() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.debug+"/debug/pprof/goroutine?debug=2", nil)
		if err != nil {
			return err.Error()
		}
		resp, err := hc.Do(req)
		if err != nil {
			out = append(out, n.id+": "+err.Error())
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		_ = resp.Body.Close()
		if err != nil {
			out = append(out, n.id+": "+err.Error())
			continue
		}
		name := filepath.Join(dir, fmt.Sprintf("goroutines-%d-%s.txt", cycle, n.id))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			out = append(out, n.id+": "+err.Error())
			continue
		}
		out = append(out, name)
	}
	return strings.Join(out, ", ")
}

// cut cuts the node off NATS (or heals it): every proxy of the node.
func (n *clusterNode) cut(on bool) {
	for _, p := range n.proxies {
		p.setCut(on)
	}
}

// closeProxies stops every node's proxies.
func closeProxies(nodes []*clusterNode) {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, p := range n.proxies {
			p.close()
		}
		n.proxies = nil
	}
}

// natsUp reports whether the lookups may use n.nats: the node is up
// (its embedded NATS node runs and answers), or its external server runs.
func (n *clusterNode) natsUp(i int) bool {
	if n.ext != nil {
		return n.ext.up(i)
	}
	return n.state == nodeUp
}

func (n *clusterNode) httpURL() string { return "http://" + n.addr }

// newClusterNodes lays out three nodes under base.Data: data directories
// n1..n3, loopback ports reserved now (listen on port 0 and close). In
// NATSEmbedded mode each node runs its own NATS node (client and route
// ports, routes to each other); in NATSExternal mode the nodes connect to
// an external NATS cluster, laid out here (not started) and returned.
func newClusterNodes(base Serve, ttl time.Duration, mode string) ([]*clusterNode, *extNATS, error) {
	ports, release, err := reservePorts(9) // NATS client and route ports, debug ports
	if err != nil {
		return nil, nil, err
	}
	// Held until the proxies below have their own ports: a proxy's
	// listener on port 0 could otherwise be given a reserved port, which
	// its node or NATS server then finds taken.
	defer release()
	var tok [16]byte
	_, _ = crand.Read(tok[:])
	token := hex.EncodeToString(tok[:]) // the NATS client ports ask for credentials
	logs := &lineWriterSet{w: base.Log} // one lock for every node's and server's log lines
	var x *extNATS
	if mode == NATSExternal {
		if x, err = newExtNATS(base.Data, token, ports, logs); err != nil { // the nodes need no NATS ports of their own
			return nil, nil, err
		}
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		s := base
		s.Data = filepath.Join(base.Data, id)
		if w := logs.writer(id); w != nil {
			s.Log = w
		}
		n := &clusterNode{id: id, addr: "127.0.0.1:0", nats: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), token: token,
			debug: fmt.Sprintf("127.0.0.1:%d", ports[6+i])}
		nodes[i] = n
		var urls []string // the node's way to the external servers: its proxies
		if x != nil {
			n.ext, n.nats = x, x.urls[i] // the lookups go to the external servers directly
			for _, u := range x.urls {
				p, err := newTCPProxy(strings.TrimPrefix(u, "nats://"))
				if err != nil {
					closeProxies(nodes[:i+1])
					x.closeProxies()
					return nil, nil, err
				}
				n.proxies = append(n.proxies, p)
				urls = append(urls, "nats://"+p.addr())
			}
		}
		s.Extra = append(append(append([]string{}, base.Extra...), natsFlags(mode, i, id, token, ports[:3], ports[3:6], urls)...),
			"--lease-ttl", ttl.String(), "--metrics-addr", n.debug)
		n.serve = s
	}
	return nodes, x, nil
}

// reservePorts finds n free loopback ports and holds them (listening)
// until release, so that this process's own listeners on port 0 meanwhile
// (the run's proxies) cannot be given one. Another process may still take
// one between release and the bind of the node or server it is for; the
// start then fails and says so.
func reservePorts(n int) (ports []int, release func(), err error) {
	var ls []net.Listener
	release = func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			release()
			return nil, nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, release, nil
}

// startNodes starts the nodes at once (the first nodes of a new cluster
// wait for a quorum before they listen).
func startNodes(ctx context.Context, nodes []*clusterNode) error {
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { // ends within startServe's bound
			p, err := startServe(ctx, n.serve, n.addr)
			if err == nil {
				n.p, n.addr, n.state = p, p.addr, nodeUp
			}
			errs <- err
		}()
	}
	var first error
	for range nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// restartNode starts a killed node again on its ports and data directory.
func restartNode(ctx context.Context, n *clusterNode) error {
	p, err := restart(ctx, n.serve, n.addr)
	if err != nil {
		return fmt.Errorf("chaos: restart %s: %w", n.id, err)
	}
	n.p, n.state = p, nodeUp
	return nil
}

// stopNodes ends every node: a stopped one is continued first, each gets
// SIGTERM (graceful, bounded) and is SIGKILLed past the bound.
func stopNodes(nodes []*clusterNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.p == nil || !n.p.alive() {
			continue
		}
		if n.state == nodeStopped {
			_ = n.p.cmd.Process.Signal(syscall.SIGCONT)
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.p.term(15 * time.Second) }()
	}
	wg.Wait()
}

// natsConnect connects to the NATS client ports of the nodes that are up,
// for one query (a paused node's port would hang a long-lived connection).
func natsConnect(nodes []*clusterNode) (*nats.Conn, error) {
	var urls []string
	token := ""
	for i, n := range nodes {
		if n.natsUp(i) {
			urls = append(urls, n.nats)
			token = n.token
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("chaos: no node is up")
	}
	return nats.Connect(strings.Join(urls, ","), nats.Name("collabd chaos cluster"), nats.Token(token), nats.Timeout(2*time.Second),
		nats.NoReconnect())
}

// streamLeader names the node leading a stream, "" while it has none.
func streamLeader(ctx context.Context, nodes []*clusterNode, stream string) (string, error) {
	info, err := streamInfo(ctx, nodes, stream)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

func streamInfo(ctx context.Context, nodes []*clusterNode, stream string) (*jetstream.StreamInfo, error) {
	nc, err := natsConnect(nodes)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// streamsUnhealthy says which stream of the cluster has no leader or a
// replica behind ("" if none, every stream is healthy).
func streamsUnhealthy(ctx context.Context, nodes []*clusterNode) string {
	nc, err := natsConnect(nodes)
	if err != nil {
		return "no NATS connection: " + err.Error()
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err.Error()
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	names := js.StreamNames(lctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if err := names.Err(); err != nil {
		return "listing the streams: " + err.Error()
	}
	if len(all) == 0 {
		return "no streams listed"
	}
	for _, s := range all {
		if !streamHealthy(ctx, nodes, s) {
			return s + " has no leader or a replica behind"
		}
	}
	return ""
}

// streamHealthy reports whether stream has a leader and every replica is
// online and current.
func streamHealthy(ctx context.Context, nodes []*clusterNode, stream string) bool {
	info, err := streamInfo(ctx, nodes, stream)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != len(nodes)-1 {
		return false
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return false
		}
	}
	return true
}

// leaseHolder reads a document's lease: the id of the node holding it
// (the bucket's value), "" if nobody does.
func leaseHolder(ctx context.Context, nodes []*clusterNode, doc string) (string, error) {
	nc, err := natsConnect(nodes)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, leasesBucket)
	if err != nil {
		return "", err
	}
	e, err := kv.Get(ctx, base64.RawURLEncoding.EncodeToString([]byte(doc)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// nodeIndex is the index of id in names, -1 if none.
func nodeIndex(names []string, id string) int {
	return slices.Index(names, id)
}

// balancer plays the load balancer in front of the three HTTP ports that
// docs/CLUSTER.md asks for: it checks GET /readyz of every node every
// 100 ms (500 ms timeout) and sends a new connection to the client's home
// node if it is healthy, else to the next healthy one.
type balancer struct {
	addrs   []string      // HTTP host:port per node, fixed
	healthy []atomic.Bool // per node, from the last check
}

func newBalancer(nodes []*clusterNode) *balancer {
	b := &balancer{healthy: make([]atomic.Bool, len(nodes))}
	for i, n := range nodes {
		b.addrs = append(b.addrs, n.addr)
		b.healthy[i].Store(true)
	}
	return b
}

// run checks the nodes until ctx ends.
func (b *balancer) run(ctx context.Context) {
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		for i, a := range b.addrs {
			b.healthy[i].Store(ready(ctx, hc, "http://"+a))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// order lists the nodes to try for a client at home: healthy ones from
// home on, then the others (the view may be stale).
func (b *balancer) order(home int) []int {
	var good, bad []int
	for k := range b.addrs {
		i := (home + k) % len(b.addrs)
		if b.healthy[i].Load() {
			good = append(good, i)
		} else {
			bad = append(bad, i)
		}
	}
	return append(good, bad...)
}

// dialer is a WebSocket dialer whose connections go where the balancer
// says, whatever the URL's host; cur is set to the node of each new
// connection. A paused node accepts TCP but never answers: the handshake
// times out after 2 s and the client's next attempt goes elsewhere.
func (b *balancer) dialer(home int, cur *atomic.Int32) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 2 * time.Second,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var last error
			for _, i := range b.order(home) {
				d := net.Dialer{Timeout: time.Second}
				c, err := d.DialContext(ctx, network, b.addrs[i])
				if err == nil {
					cur.Store(int32(i))
					return c, nil
				}
				last = err
			}
			return nil, last
		},
	}
}

// lineWriter writes whole lines, each with a prefix, to a writer shared
// with other lineWriters (the same mu). The lock is held across the write
// on purpose: it keeps the nodes' lines whole in the shared log (a log
// handler's lock); only the copying goroutines of os/exec wait on it.
type lineWriter struct {
	mu     *sync.Mutex // guards w and every buf of the writers sharing it
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, l.prefix...), l.buf[:i+1]...)
		l.buf = l.buf[i+1:]
		if _, err := l.w.Write(line); err != nil {
			return len(p), nil // the log is best effort; the process must not block on it
		}
	}
	if len(l.buf) > 64<<10 { // a line that never ends: write what is there
		_, _ = l.w.Write(append(append([]byte{}, l.prefix...), l.buf...))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}
