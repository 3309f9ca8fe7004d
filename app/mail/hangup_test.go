package mail_test

import (
	"bufio"
	"context"
	"net"
	"net/mail"
	"strings"
	"testing"

	rmail "rassylka/app/mail"
)

// hangUpServer speaks just enough SMTP to take a message and hangs up at
// the step named: after "DATA" (before its 354), or after the message's
// final dot (before its answer).
func hangUpServer(t *testing.T, at string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
				say("220 hangup.test ESMTP")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					if inData {
						if line == "." {
							return // the message is in; no answer
						}
						continue
					}
					switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
					case "EHLO", "HELO":
						say("250 hangup.test")
					case "DATA":
						if at == "DATA" {
							return
						}
						say("354 go on")
						inData = true
					case "QUIT":
						say("221 bye")
						return
					default:
						say("250 ok")
					}
				}
			}()
		}
	}()
	return "smtp://" + ln.Addr().String()
}

// A server that hangs up without a reply leaves words in the attempt log:
// where the conversation broke, and that the server closed it. Before the
// message's text went, the send may go again; after it, the outcome is
// unknown.
func TestPoolHangUpInWords(t *testing.T) {
	for _, c := range []struct {
		at    string
		class rmail.Class
		want  string
	}{
		{"DATA", rmail.Unreachable, "no answer to DATA: the server closed the connection (EOF)"},
		{"dot", rmail.Unknown, "no answer after the message was sent: the server closed the connection (EOF)"},
	} {
		sender, err := rmail.NewSender(hangUpServer(t, c.at), "Shop <news@shop.example>", "shop.example")
		if err != nil {
			t.Fatal(err)
		}
		pool := rmail.NewPool(sender, 1, nil)
		r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"})
		pool.Close()
		if r.Class != c.class || r.Code != 0 || r.Reply != c.want {
			t.Errorf("hang-up at %s: %v %d %q, want %v 0 %q", c.at, r.Class, r.Code, r.Reply, c.class, c.want)
		}
	}
}
