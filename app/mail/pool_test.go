package mail_test

import (
	"context"
	"net/mail"
	"testing"
	"time"

	rmail "rassylka/app/mail"
	"rassylka/app/testkit"
)

// A pooled connection the server has closed since its last message is
// replaced, and the next message goes on a new one at once: no failure,
// nothing sent twice.
func TestPoolReplacesConnectionsTheServerClosed(t *testing.T) {
	// "dropped": the server went away and came back, the connection was
	// reset. "idle timeout": the server closed an idle connection, saying
	// so: the client reads "421 4.4.2 Idle timeout" in reply to its next
	// command.
	for _, name := range []string{"dropped", "idle timeout"} {
		t.Run(name, func(t *testing.T) {
			sink := testkit.SMTP(t)
			if name == "idle timeout" {
				if err := sink.Down(); err != nil {
					t.Fatal(err)
				}
				sink.IdleTimeout(200 * time.Millisecond)
				if err := sink.Up(); err != nil {
					t.Fatal(err)
				}
			}
			sender, err := rmail.NewSender(sink.URL(), "Shop <news@shop.example>", "shop.example")
			if err != nil {
				t.Fatal(err)
			}
			pool := rmail.NewPool(sender.WithTimeout(2*time.Second), 1, nil)
			defer pool.Close()
			send := func(to string) rmail.Result {
				return pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: to}, Subject: "Hi", Text: "Hello"})
			}
			if r := send("a@example.com"); r.Class != rmail.Delivered {
				t.Fatalf("first send: %+v", r)
			}
			if name == "dropped" {
				if err := sink.Down(); err != nil {
					t.Fatal(err)
				}
				if err := sink.Up(); err != nil {
					t.Fatal(err)
				}
			} else {
				time.Sleep(500 * time.Millisecond) // past the server's idle timeout
			}
			if r := send("b@example.com"); r.Class != rmail.Delivered || r.Code != 250 {
				t.Fatalf("send on a closed connection: %+v", r)
			}
			if got := sink.Messages(); len(got) != 2 || got[1].To[0] != "b@example.com" {
				t.Fatalf("the server received %+v", got)
			}
			if n := sink.Sessions(); n != 2 {
				t.Fatalf("%d connections, want 2 (one replaced)", n)
			}
			// The new connection is pooled and reused.
			if r := send("c@example.com"); r.Class != rmail.Delivered || sink.Sessions() != 2 {
				t.Fatalf("third send: %+v, %d connections", r, sink.Sessions())
			}
		})
	}
}
