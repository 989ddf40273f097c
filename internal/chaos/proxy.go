package chaos

import (
	"errors"
	"io"
	"net"
	"sync"
)

// tcpProxy forwards the connections made to a loopback port to a target
// address. cut closes every connection it forwards and refuses new ones
// until heal: a network partition between the proxy's clients and the
// target, for processes that reach the target only through it. Its accept
// loop and copy goroutines are owned by the proxy: close stops them and
// waits.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards conns, cut, done
	conns map[net.Conn]struct{}
	cut   bool
	done  bool
	wg    sync.WaitGroup
}

// newTCPProxy listens on a free loopback port and forwards to target.
func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// addr is the proxy's host:port.
func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		refused := p.cut || p.done
		if !refused {
			p.wg.Add(1)
		}
		p.mu.Unlock()
		if refused {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

// forward dials the target for c and copies both ways until either side
// ends or the proxy is cut.
func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, u) {
		_ = c.Close()
		_ = u.Close()
		return
	}
	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn) {
		defer copies.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close() // the other direction ends too
		_ = src.Close()
	}
	go pipe(u, c)
	go pipe(c, u)
	copies.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// track registers a forwarded pair unless the proxy was cut meanwhile.
func (p *tcpProxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.done {
		return false
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	return true
}

// setCut cuts (closes every forwarded connection, refuses new ones) or
// heals the proxy.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var open []net.Conn
	if cut {
		for c := range p.conns {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// close stops the proxy and waits for its goroutines.
func (p *tcpProxy) close() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}
