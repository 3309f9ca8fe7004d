package mail_test

import (
	"bufio"
	"context"
	"net"
	"net/mail"
	"strings"
	"sync"
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

// A delivered message is never reported as a failure to retry: the pool
// sends no RSET after the data (a server answering it with 421 made the
// message look undelivered), and the next message starts its own
// transaction on the same connection.
func TestPoolSendsNoResetAfterDelivery(t *testing.T) {
	srv := fakeSMTP(t)
	sender, err := rmail.NewSender("smtp://"+srv.addr, "Shop <news@shop.example>", "shop.example")
	if err != nil {
		t.Fatal(err)
	}
	pool := rmail.NewPool(sender.WithTimeout(2*time.Second), 1, nil)
	defer pool.Close()
	for _, to := range []string{"a@example.com", "b@example.com"} {
		r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: to}, Subject: "Hi", Text: "Hello"})
		if r.Class != rmail.Delivered || r.Code != 250 {
			t.Fatalf("send to %s: %+v", to, r)
		}
	}
	if got := srv.count("DATA"); got != 2 {
		t.Fatalf("%d messages delivered, want 2", got)
	}
	if got := srv.count("RSET"); got != 0 {
		t.Fatalf("%d RSET sent, want none", got)
	}
	if got := srv.count("EHLO"); got != 1 {
		t.Fatalf("%d connections, want 1", got)
	}
}

// fakeSMTPServer accepts every message, answers RSET with "421 closing"
// and then hangs up, and counts the commands it got.
type fakeSMTPServer struct {
	addr string
	mu   sync.Mutex
	cmds map[string]int
}

func (s *fakeSMTPServer) count(cmd string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmds[cmd]
}

func fakeSMTP(t *testing.T) *fakeSMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &fakeSMTPServer{addr: ln.Addr().String(), cmds: map[string]int{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *fakeSMTPServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	say("220 fake")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
		s.mu.Lock()
		s.cmds[cmd]++
		s.mu.Unlock()
		switch cmd {
		case "EHLO":
			say("250-fake")
			say("250 8BITMIME")
		case "DATA":
			say("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			say("250 2.0.0 queued")
		case "RSET":
			say("421 4.3.2 closing")
			return
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

// A transactional mail the server accepted is sent, whatever the server
// says after its data: no RSET follows it (answered with 421 here, it made
// the mail a failure to send again).
func TestSenderSendsNoResetAfterDelivery(t *testing.T) {
	srv := fakeSMTP(t)
	sender, err := rmail.NewSender("smtp://"+srv.addr, "Shop <news@shop.example>", "shop.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Confirm", Text: "Hello"}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := srv.count("DATA"); got != 1 {
		t.Fatalf("%d messages delivered, want 1", got)
	}
}
