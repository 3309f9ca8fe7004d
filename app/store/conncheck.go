//go:build unix

package store

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"syscall"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// checkConn refuses a pooled connection that the server has ended since
// its last use, before a query is sent on it: a restart of PostgreSQL ends
// every connection, and each idle one would otherwise fail one more query
// once the server is back (the query is written, the answer is EOF).
// database/sql then takes another connection or dials a new one. The check
// is one read that does not wait: an idle live connection has nothing to
// read; the end of the stream, an error or an unasked-for message (the
// server's "terminating connection") means it is done.
func checkConn(_ context.Context, cn *pgdriver.Conn) error {
	nc := cn.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return driver.ErrBadConn
	}
	// The driver's read deadline of the last query has passed on a
	// connection idle since (the read would fail at once, and every
	// connection idle for longer than the timeout be dropped); it sets a
	// new one before its next read.
	_ = nc.SetReadDeadline(time.Time{})
	alive := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, rerr := syscall.Read(int(fd), b[:])
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for the socket
	})
	if err != nil || !alive {
		return driver.ErrBadConn
	}
	return nil
}
