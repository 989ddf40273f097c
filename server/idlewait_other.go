//go:build !linux

package server

import (
	"net"
	"syscall"
)

// rawConnOf is nil off Linux: read loops wait inside gorilla's read, with
// the deeper stack that costs (see session.readWS).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func waitReadable(syscall.RawConn) {}
