package store_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"rassylka/app/store"
)

// A lost connection is told from the caller's own end: a context's
// deadline satisfies net.Error too, and taken for a lost connection it
// sent the batch into a salvage that waited on a lock its live session
// still held.
func TestLostConnectionIsNotAContextsEnd(t *testing.T) {
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{net.ErrClosed, true},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "read", Err: fmt.Errorf("connection reset by peer")}, true},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("record chunk: %w", context.DeadlineExceeded), false},
		{context.Canceled, false},
		{fmt.Errorf("some other error"), false},
	} {
		if got := store.LostConnection(c.err); got != c.lost {
			t.Errorf("LostConnection(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
}
