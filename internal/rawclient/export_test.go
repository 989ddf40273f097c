package rawclient

import (
	"fmt"
	"net"
	"syscall"
)

// SyscallConn exposes the Conn's socket to the tests (TestNarrowSocket).
func SyscallConn(c *Conn) (syscall.RawConn, error) {
	tc, ok := c.ws.NetConn().(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("not a TCP connection: %T", c.ws.NetConn())
	}
	return tc.SyscallConn()
}
