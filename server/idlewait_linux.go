package server

import (
	"net"
	"syscall"
	"unsafe"
)

// rawConnOf is c's raw socket if the read loop can wait for it shallowly
// (waitReadable): a plain TCP connection, not TLS (whose reader buffers
// decrypted bytes the socket no longer shows). nil otherwise.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable returns once the socket has a byte to read, has ended, or
// its read deadline has passed or the connection was closed (the read that
// follows reports those). It parks in the runtime's poller a few small
// frames deep, so a read loop waiting here fits the 2 KiB stack a
// goroutine starts with (see session.readWS). A peek, not the poller's
// readiness alone, decides: the poller is edge-triggered, and bytes left
// in the socket by an earlier short read raise no new edge.
func waitReadable(rc syscall.RawConn) {
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return errno != syscall.EAGAIN // EINTR too: the read that follows retries
	}) // an error (deadline, closed) is the next read's to report
}
