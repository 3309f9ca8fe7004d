package testkit

import (
	"testing"

	"rassylka/app/mail/mailsink"
)

// SMTP starts an in-process SMTP server on a free port that records every
// message; it is closed when the test ends. See mailsink.Server for making
// it refuse connections, answer 4xx/5xx or stall.
func SMTP(t testing.TB) *mailsink.Server {
	t.Helper()
	s, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start SMTP server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
