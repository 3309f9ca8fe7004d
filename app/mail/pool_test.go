package mail_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	rmail "rassylka/app/mail"
	"rassylka/app/mail/mailsink"
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
			pool := onePool(t, sink, 2*time.Second)
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
	srv := fakeSMTP(t, "")
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
// and then hangs up, and counts the commands it got. With hangUp set it
// hangs up without a reply instead: at "DATA" (before its 354), or at
// "dot" (once the message's final dot came).
type fakeSMTPServer struct {
	addr   string
	hangUp string
	mu     sync.Mutex
	cmds   map[string]int
}

func (s *fakeSMTPServer) count(cmd string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmds[cmd]
}

func fakeSMTP(t *testing.T, hangUp string) *fakeSMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &fakeSMTPServer{addr: ln.Addr().String(), hangUp: hangUp, cmds: map[string]int{}}
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
			if s.hangUp == "DATA" {
				return
			}
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
			if s.hangUp == "dot" {
				return
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
	srv := fakeSMTP(t, "")
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

// A recipient's name goes in the To header as typed, whatever it holds:
// quotes, a backslash, a comma and angle brackets, non-ASCII, a DEL. It
// was pasted between quotes unescaped, so these came out changed or made
// the mail fail for good.
func TestSenderQuotesRecipientNames(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example")
	names := []string{`Ann "Nan" Lee`, `O"Brien`, `Ann\`, `Doe, John <john@example.org>`, `Ёжик, "Колючий"`, "A\x7fB", "Ann"}
	for _, name := range names {
		if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Name: name, Address: "ann@example.com"}, Subject: "Hi", Text: "Hello"}); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
	msgs := sink.Messages()
	if len(msgs) != len(names) {
		t.Fatalf("%d messages received, want %d", len(msgs), len(names))
	}
	for i, m := range msgs {
		if len(m.To) != 1 || m.To[0] != "ann@example.com" {
			t.Errorf("envelope to %v", m.To)
		}
		to, err := m.Header().AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != names[i] || to[0].Address != "ann@example.com" {
			t.Errorf("name %q: To %q reads %v, %v", names[i], m.Header().Get("To"), to, err)
		}
	}
}

// A sender's own name goes in From with MAIL_FROM's address, starting on
// the header's line and folded at spaces, beyond ASCII as encoded words
// that read as typed (go-mail split such a name within its words, and
// from about ten letters folded the header before its value); the server
// is given MAIL_FROM's address. Without one, From is MAIL_FROM.
func TestSenderWritesTheSendersName(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example").WithTimeout(2 * time.Second)
	pool := rmail.NewPool(sender, 1, nil)
	t.Cleanup(pool.Close)
	names := []string{
		"Ann's Bakery",
		`Ann "the baker" \ Lee`,
		"Пекарня Анны у Невского проспекта, лучшая в городе",
		"=?utf-8?q?Admin?=",
		"Ann, Bob <x@y.z>",
		"",
	}
	for _, name := range names {
		m := rmail.Message{To: mail.Address{Name: "Ann", Address: "ann@example.com"}, FromName: name, Subject: "Hi", Text: "Hello"}
		if _, err := sender.Send(context.Background(), m); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if r := pool.Send(context.Background(), m); r.Class != rmail.Delivered {
			t.Fatalf("%q pooled: %+v", name, r)
		}
	}
	msgs := sink.Messages()
	if len(msgs) != 2*len(names) {
		t.Fatalf("%d messages received, want %d", len(msgs), 2*len(names))
	}
	for i, m := range msgs {
		name := names[i/2]
		want := name
		if name == "" {
			want = "Shop"
		}
		from, err := m.Header().AddressList("From")
		if err != nil || len(from) != 1 || from[0].Name != want || from[0].Address != "news@shop.example" || m.From != "news@shop.example" {
			t.Errorf("name %q: From %q reads %v, %v; MAIL FROM %q", name, m.Header().Get("From"), from, err, m.From)
		}
		if n := bytes.Count(m.Data, []byte("\nFrom:")) + bytes.Count(m.Data[:5], []byte("From:")); n != 1 {
			t.Errorf("name %q: %d From headers\n%s", name, n, m.Data)
		}
		if i := bytes.Index(m.Data, []byte("From:")); i < 0 || bytes.HasPrefix(m.Data[i:], []byte("From:\r\n")) {
			t.Errorf("name %q: From is not on its header's line\n%s", name, m.Data)
		}
		if m.Header().Get("To") == "" || m.Body() == "" {
			t.Errorf("name %q: the mail lost its To or body\n%s", name, m.Data)
		}
		// Encoded words end after a space of the name, not within a word
		// (which a reader keeping the fold between them showed split).
		words := strings.Fields(m.Header().Get("From"))
		for j, w := range words[:len(words)-2] { // the last word and the address apart
			if !strings.HasPrefix(w, "=?") {
				break
			}
			if d, err := new(mime.WordDecoder).Decode(w); err != nil || !strings.HasSuffix(d, " ") {
				t.Errorf("name %q: encoded word %d of %q reads %q, %v: not ending after a space", name, j, m.Header().Get("From"), d, err)
			}
		}
	}
}

// A mail's reply address is its Reply-To, the domain in its ASCII form,
// pooled or not; none without one. One with more than ASCII before the @
// (which the account page refuses) is left out rather than fail the mail
// or ask for SMTPUTF8.
func TestSenderWritesReplyTo(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example").WithTimeout(2 * time.Second)
	pool := rmail.NewPool(sender, 1, nil)
	t.Cleanup(pool.Close)
	cases := []struct{ replyTo, header string }{
		{"desk@example.org", "<desk@example.org>"},
		{" Desk@Пример.рф ", "<Desk@xn--e1afmkfd.xn--p1ai>"},
		{"", ""},
		{"юзер@example.org", ""},
	}
	for _, c := range cases {
		m := rmail.Message{To: mail.Address{Name: "Ann", Address: "ann@example.com"}, Subject: "Hi", Text: "Hello", ReplyTo: c.replyTo}
		if _, err := sender.Send(context.Background(), m); err != nil {
			t.Fatalf("%q: %v", c.replyTo, err)
		}
		if r := pool.Send(context.Background(), m); r.Class != rmail.Delivered {
			t.Fatalf("%q pooled: %+v", c.replyTo, r)
		}
	}
	msgs := sink.Messages()
	if len(msgs) != 2*len(cases) {
		t.Fatalf("%d messages received, want %d", len(msgs), 2*len(cases))
	}
	for i, m := range msgs {
		c := cases[i/2]
		if got := m.Header().Get("Reply-To"); got != c.header || m.UTF8 {
			t.Errorf("reply address %q: Reply-To %q (SMTPUTF8 %v), want %q", c.replyTo, got, m.UTF8, c.header)
		}
		if c.header != "" && !bytes.Contains(m.Data, []byte("\r\nReply-To: "+c.header+"\r\n")) {
			t.Errorf("Reply-To is not one line of its own:\n%s", m.Data)
		}
	}
}

// A recipient at an internationalized domain is mailed at its ASCII form,
// envelope and To header alike, which every server takes; an ASCII
// address goes as it is.
func TestSenderWritesInternationalDomainsInASCII(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example")
	for addr, want := range map[string]string{
		"ann@пример.рф":     "ann@xn--e1afmkfd.xn--p1ai",
		"ann@bücher.de":     "ann@xn--bcher-kva.de",
		"ann@example.com":   "ann@example.com",
		"ann@my_host.local": "ann@my_host.local",
	} {
		sink.Reset()
		if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Name: "Ann", Address: addr}, Subject: "Hi", Text: "Hello"}); err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		msgs := sink.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages received", addr, len(msgs))
		}
		if to := msgs[0].To; len(to) != 1 || to[0] != want {
			t.Errorf("%s: envelope to %v, want %s", addr, to, want)
		}
		if to, err := msgs[0].Header().AddressList("To"); err != nil || len(to) != 1 || to[0].Address != want {
			t.Errorf("%s: To %q reads %v, %v", addr, msgs[0].Header().Get("To"), to, err)
		}
	}
}

// No line of a mail is over 998 octets (RFC 5322, 2.1.1), even a subject
// with a word longer than that (placeholders filled with long names and
// addresses, side by side), and the subject reads back as sent, even one
// with text that looks like an encoded word (RFC 2047).
func TestSenderFoldsLongSubjectWords(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example")
	subjects := []string{strings.Repeat("a", 1100), "News for " + strings.Repeat("ann.lee-", 130) + " today", "Новости " + strings.Repeat("я", 600),
		// what reads as an encoded word goes encoded, to be read as typed
		"=?utf-8?q?Hi?=", "About =?UTF-8?B?SGk=?= headers"}
	for _, subject := range subjects {
		if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Address: "ann@example.com"}, Subject: subject, Text: "Hello"}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := sink.Messages()
	if len(msgs) != len(subjects) {
		t.Fatalf("%d messages received, want %d", len(msgs), len(subjects))
	}
	for i, m := range msgs {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if len(line) > 998 {
				t.Errorf("a line of %d octets: %.60q…", len(line), line)
			}
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(m.Header().Get("Subject")); err != nil || got != subjects[i] {
			t.Errorf("subject reads %q, %v", got, err)
		}
	}
}

// A subject and a recipient's name start on their header's own line,
// whatever their length or letters: one folded before its first word
// ("Subject:" alone on a line, as go-mail wrote a subject beyond ASCII from
// 17 characters on) read with a leading space in readers that keep the
// fold's. Lines stay within 78 characters, and every value reads back as
// typed, a name that looks like an encoded word too (it was sent as it
// is, and mail programs showed "Admin").
func TestSenderStartsHeadersOnTheirOwnLine(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example")
	cases := []struct{ name, subject string }{
		{"Иван Петров", "Hello Иван Петров"},
		{"Ann Lee", "Привет, " + strings.Repeat("Иван ", 40) + "😀"},
		{"=?utf-8?q?Admin?=", strings.Repeat("x", 66)},
		{strings.Repeat("Ann Lee-Smith ", 12), strings.TrimSpace(strings.Repeat("News for you ", 12))},
		{"李小龍 (Bruce) \"Lee\"", "李小龍"},
	}
	for _, c := range cases {
		msg := rmail.Message{To: mail.Address{Name: c.name, Address: "ann@example.com"}, Subject: c.subject, Text: "Hello"}
		if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	msgs := sink.Messages()
	if len(msgs) != len(cases) {
		t.Fatalf("%d messages received, want %d", len(msgs), len(cases))
	}
	for i, m := range msgs {
		c := cases[i]
		head, _, _ := strings.Cut(string(m.Data), "\r\n\r\n")
		for _, line := range strings.Split(head, "\r\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && (name == "Subject" || name == "To") && strings.TrimSpace(value) == "" {
				t.Errorf("%s folded before its value:\n%s", name, head)
			}
			if len(line) > 78 && !strings.HasPrefix(line, "List-Unsubscribe:") {
				t.Errorf("a line of %d characters: %q", len(line), line)
			}
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(m.Header().Get("Subject")); err != nil || got != c.subject {
			t.Errorf("subject reads %q, %v; want %q", got, err, c.subject)
		}
		to, err := m.Header().AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != strings.TrimSpace(c.name) || to[0].Address != "ann@example.com" {
			t.Errorf("To %q reads %v, %v; want %q", m.Header().Get("To"), to, err, c.name)
		}
		if len(m.To) != 1 || m.To[0] != "ann@example.com" {
			t.Errorf("envelope to %v", m.To)
		}
	}
	if raw := string(msgs[2].Data); strings.Contains(raw, "=?utf-8?q?Admin?=") {
		t.Errorf("a name that reads as an encoded word went as it is:\n%s", raw)
	}
}

// The Message-ID is on the BASE_URL host, an IPv6 address in brackets: the
// part after "@" is a domain or a domain literal (RFC 5322, 3.6.4).
func TestSenderMessageIDOnAnIPv6Host(t *testing.T) {
	sink := testkit.SMTP(t)
	for _, host := range []string{"shop.example", "192.0.2.7", "::1"} {
		sender := shopSender(t, sink, host)
		if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Address: "ann@example.com"}, Subject: "Hi", Text: "Hello"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"@shop.example>", "@192.0.2.7>", "@[::1]>"}
	helo := []string{"shop.example", "[192.0.2.7]", "[IPv6:::1]"} // RFC 5321, 4.1.3
	msgs := sink.Messages()
	if len(msgs) != len(want) {
		t.Fatalf("%d messages received, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if id := m.Header().Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, want[i]) {
			t.Errorf("Message-ID %q, want one ending %q", id, want[i])
		}
		if m.Helo != helo[i] {
			t.Errorf("EHLO %q, want %q (the site's host, not the machine's name)", m.Helo, helo[i])
		}
	}
}

// A site on an internationalized domain names itself in ASCII: in the
// envelope's and the header's From, the Message-ID and EHLO. In UTF-8
// they would need a server that announces SMTPUTF8 (the envelope), or be
// no valid header at all (the Message-ID, encoded as a word).
func TestSenderNamesAnInternationalSiteInASCII(t *testing.T) {
	sink := testkit.SMTP(t)
	noSMTPUTF8(t, sink)
	sender, err := rmail.NewSender(sink.URL(), "Рассылка <no-reply@рассылка.рф>", "рассылка.рф")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Address: "ann@example.com"}, Subject: "Hi", Text: "Hello"}); err != nil {
		t.Fatal(err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received", len(msgs))
	}
	const host = "xn--80aa3adxha4f.xn--p1ai"
	m := msgs[0]
	from, err := m.Header().AddressList("From")
	if m.From != "no-reply@"+host || err != nil || len(from) != 1 || from[0].Address != "no-reply@"+host || from[0].Name != "Рассылка" {
		t.Errorf("envelope from %q, From %q reads %v, %v", m.From, m.Header().Get("From"), from, err)
	}
	if id := m.Header().Get("Message-ID"); !strings.HasSuffix(id, "@"+host+">") || m.Helo != host {
		t.Errorf("Message-ID %q, EHLO %q", id, m.Helo)
	}
}

// A name or a subject with a run of spaces longer than a header line is
// written with one space: go-mail folds at spaces, and left lines of
// spaces alone (which RFC 5322 does not allow).
func TestSenderWritesNoLineOfSpacesAlone(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example")
	gap := strings.Repeat(" ", 150)
	if _, err := sender.WithTimeout(2*time.Second).Send(context.Background(), rmail.Message{To: mail.Address{Name: "Ann" + gap + "Lee", Address: "ann@example.com"},
		Subject: "News" + gap + "for\tAnn\u00a0Lee", Text: "Hello"}); err != nil {
		t.Fatal(err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received", len(msgs))
	}
	head, _, _ := strings.Cut(string(msgs[0].Data), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if strings.TrimSpace(line) == "" {
			t.Errorf("a header line of spaces alone:\n%s", head)
			break
		}
	}
	to, err := msgs[0].Header().AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Ann Lee" {
		t.Errorf("To %q reads %v, %v", msgs[0].Header().Get("To"), to, err)
	}
	// A no-break space is the text's own.
	if got, err := new(mime.WordDecoder).DecodeHeader(msgs[0].Header().Get("Subject")); err != nil || got != "News for Ann\u00a0Lee" {
		t.Errorf("subject reads %q, %v", got, err)
	}
}

// A connection the pool gives up on (the server stalled past the timeout)
// is closed, not only forgotten: the server never holds more connections
// than the pool's size. go-mail's Close sends QUIT and leaves the
// connection open when that fails, as it does once the deadline passed.
func TestPoolClosesConnectionsItDrops(t *testing.T) {
	sink := testkit.SMTP(t)
	sink.Stall(700 * time.Millisecond)
	pool := onePool(t, sink, 200*time.Millisecond)
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: to}, Subject: "Hi", Text: "Hello"})
		if r.Class != rmail.Unknown {
			t.Fatalf("send to %s past the timeout: %+v", to, r)
		}
	}
	deadline := time.Now().Add(3 * time.Second) // the server's last stall ends
	for sink.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := sink.Open(); n != 0 {
		t.Fatalf("%d connections left open of %d, want none (pool of 1, each dropped)", n, sink.Sessions())
	}
}

// An attempt records what the server said: its code and words, not go-mail's
// account of the command, the recipient and the message id, and no more
// than a bounded length of it.
func TestPoolReplyIsTheServersWords(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, c := range []struct {
		name  string
		set   func(*mailsink.Server)
		class rmail.Class
		code  int
		want  string
	}{
		{"rcpt 452", func(s *mailsink.Server) {
			s.RejectRcpt(func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients, try later"}
			})
		}, rmail.Temporary, 452, "452 4.5.3 Too many recipients, try later"},
		{"mail 421", func(s *mailsink.Server) {
			s.RejectMail(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Service not available"})
		}, rmail.Temporary, 421, "421 4.3.0 Service not available"},
		{"final dot 554", func(s *mailsink.Server) {
			s.RejectData(&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"})
		}, rmail.Permanent, 554, "554 5.7.1 Message rejected as spam"},
		{"multi-line", func(s *mailsink.Server) {
			s.RejectRcpt(func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user\nSee the postmaster"}
			})
		}, rmail.NoSuchUser, 550, "550 No such user\n5.1.1 See the postmaster"},
		{"latin-1", func(s *mailsink.Server) {
			s.RejectRcpt(func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Empf\xe4nger abgelehnt"}
			})
		}, rmail.Permanent, 550, "550 5.7.1 Empf\uFFFDnger abgelehnt"},
		{"long", func(s *mailsink.Server) {
			s.RejectData(&smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: long})
		}, rmail.Permanent, 552, ("552 5.3.4 " + long)[:rmail.MaxReply-len("…")] + "…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := testkit.SMTP(t)
			c.set(sink)
			pool := onePool(t, sink, 2*time.Second)
			r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"})
			if r.Class != c.class || r.Code != c.code || r.Reply != c.want {
				t.Fatalf("got %v %d %q\nwant %v %d %q", r.Class, r.Code, r.Reply, c.class, c.code, c.want)
			}
		})
	}
}

// A refusal of the sender, not of the recipient, is the same for every
// recipient and comes of settings (SMTP_URL's sign-in, MAIL_FROM, a server
// that does not relay for us): it fails no one for good and marks no one
// bounced, but is not sent, like a server that cannot be reached, and the
// pool's health says why. Any 5xx to MAIL FROM is one; at RCPT, a sign-in
// asked for (530), or a sender's address refused (5.1.7, 5.1.8, Postfix's
// "Sender address rejected", whose 5.1.0 or 5.1.1 alone would say the
// recipient does not exist). Words of a sign-in or of relaying, which a
// server may say of one recipient, are not sent either, but only tried
// again at the usual delays, not waited for.
func TestPoolSenderRefusalIsNoFailureOfTheRecipient(t *testing.T) {
	sink := testkit.SMTP(t)
	pool := onePool(t, sink, 2*time.Second)
	send := func() rmail.Result {
		return pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"})
	}
	held := func(what string, r rmail.Result, reply string) {
		t.Helper()
		if r.Class != rmail.Unreachable || !r.NoServer || r.Code != 0 || r.Reply != "not sent, the server refuses mail from us: "+reply {
			t.Errorf("%s: %+v, want it not sent, waiting for the server, with %q", what, r, reply)
		}
	}
	for _, refusal := range []*smtp.SMTPError{
		{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 8}, Message: "Sender address rejected: Domain not found"},
		{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed"},
	} {
		sink.RejectMail(refusal)
		held(fmt.Sprintf("MAIL FROM answered %d %v", refusal.Code, refusal.EnhancedCode), send(),
			fmt.Sprintf("%d %d.%d.%d %s", refusal.Code, refusal.EnhancedCode[0], refusal.EnhancedCode[1], refusal.EnhancedCode[2], refusal.Message))
	}
	sink.RejectMail(nil)
	for _, refusal := range []*smtp.SMTPError{
		{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 0}, Message: "<no-reply@localhost>: Sender address rejected: User unknown in local recipient table"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<news@shop.example>: Sender address rejected: undeliverable address: host shop.example said: 550 5.1.1 unknown user"},
	} {
		sink.RejectRcpt(func(string) *smtp.SMTPError { return refusal })
		held(fmt.Sprintf("RCPT TO answered %d %v %s", refusal.Code, refusal.EnhancedCode, refusal.Message), send(),
			fmt.Sprintf("%d %d.%d.%d %s", refusal.Code, refusal.EnhancedCode[0], refusal.EnhancedCode[1], refusal.EnhancedCode[2], refusal.Message))
	}
	for _, refusal := range []*smtp.SMTPError{
		{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "<a@example.com>: Relay access denied"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Unable to relay"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "RESOLVER.RST.AuthRequired; authentication required"},
	} {
		sink.RejectRcpt(func(string) *smtp.SMTPError { return refusal })
		want := fmt.Sprintf("not sent, the server refuses mail from us: %d %d.%d.%d %s", refusal.Code, refusal.EnhancedCode[0], refusal.EnhancedCode[1], refusal.EnhancedCode[2], refusal.Message)
		if r := send(); r.Class != rmail.Unreachable || r.NoServer || r.Code != 0 || r.Reply != want {
			t.Errorf("RCPT TO answered %d %v %s: %+v, want it not sent and tried again at the usual delays", refusal.Code, refusal.EnhancedCode, refusal.Message, r)
		}
	}
	// A code of no address (5.1.0) says nothing of the recipient, nor of
	// the sender: a permanent failure, no bounce.
	for _, refusal := range []*smtp.SMTPError{
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 0}, Message: "Address rejected"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 4}, Message: "Ambiguous address"},
		{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused by policy"},
	} {
		sink.RejectRcpt(func(string) *smtp.SMTPError { return refusal })
		if r := send(); r.Class != rmail.Permanent {
			t.Errorf("RCPT TO answered %d %v %s: %+v, want a permanent failure that is no bounce", refusal.Code, refusal.EnhancedCode, refusal.Message, r)
		}
	}
	// What says the recipient's address does not exist is a bounce.
	for _, ec := range []smtp.EnhancedCode{{5, 1, 1}, {5, 1, 2}, {5, 1, 3}, {5, 1, 6}, {5, 1, 10}} {
		sink.RejectRcpt(func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 550, EnhancedCode: ec, Message: "<a@example.com>: Recipient address rejected"}
		})
		if r := send(); r.Class != rmail.NoSuchUser {
			t.Errorf("RCPT TO answered 550 %v: %+v, want the address marked as not existing", ec, r)
		}
	}
}

// A server that refuses the connection in its greeting (421: too many
// connections) is recorded in its words too, after where it was.
func TestPoolGreetingRefusalIsTheServersWords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("421 4.3.2 Too many connections, try later\r\n"))
			c.Close()
		}
	}()
	sender, err := rmail.NewSender("smtp://"+ln.Addr().String(), "Shop <news@shop.example>", "shop.example")
	if err != nil {
		t.Fatal(err)
	}
	pool := rmail.NewPool(sender.WithTimeout(2*time.Second), 1, nil)
	defer pool.Close()
	r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"})
	if want := "connect to " + ln.Addr().String() + ": 421 4.3.2 Too many connections, try later"; r.Class != rmail.Unreachable || r.Reply != want {
		t.Fatalf("got %v %q, want %v %q", r.Class, r.Reply, rmail.Unreachable, want)
	}
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
		sender, err := rmail.NewSender("smtp://"+fakeSMTP(t, c.at).addr, "Shop <news@shop.example>", "shop.example")
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

// An address with more than ASCII before the @ goes to a server that
// announces SMTPUTF8, asking for it; to one that does not, it is not sent
// (a permanent failure that says why, not a bounce: the address may
// exist), where it went in breach of the protocol and a server refused it
// as a bad address (553), marking the client bounced. ASCII addresses go
// on the same connection as ever.
func TestPoolNonASCIIAddressNeedsSMTPUTF8(t *testing.T) {
	sink := testkit.SMTP(t)
	pool := onePool(t, sink, 2*time.Second)
	send := func(to string) rmail.Result {
		return pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: to}, Subject: "Hi", Text: "Hello"})
	}
	if r := send("ünï@пример.рф"); r.Class != rmail.Delivered {
		t.Fatalf("to a server with SMTPUTF8: %+v", r)
	}
	// Asked for by the mail that needs it only: a relay that took it could
	// not pass the mail on to a server without it.
	if r := send("plain@example.com"); r.Class != rmail.Delivered {
		t.Fatalf("an ASCII address to a server with SMTPUTF8: %+v", r)
	}
	if got := sink.Messages(); len(got) != 2 || got[0].To[0] != "ünï@xn--e1afmkfd.xn--p1ai" || !got[0].UTF8 || got[1].UTF8 {
		t.Fatalf("received %+v", got)
	}
	sink.Reset()

	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	sink.OfferSMTPUTF8(false)
	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
	r := send("ünï@пример.рф")
	if r.Class != rmail.Permanent || r.Code != 0 || !strings.Contains(r.Reply, "does not announce SMTPUTF8") {
		t.Errorf("to a server without SMTPUTF8: %+v", r)
	}
	if r := send("plain@example.com"); r.Class != rmail.Delivered {
		t.Errorf("an ASCII address after it: %+v", r)
	}
	if r := send("ünï@пример.рф"); r.Class != rmail.Permanent {
		t.Errorf("again, on a connection open: %+v", r)
	}
	if got := sink.Messages(); len(got) != 1 || got[0].To[0] != "plain@example.com" {
		t.Errorf("received %+v", got)
	}
}

// The account mails (Sender.Send) too: an address with more than ASCII
// before the @ goes only to a server that announces SMTPUTF8. Without it
// the send fails for good, saying why, and nothing is said on the
// connection beyond the greeting (it broke the protocol, and the server
// refused it as a bad address).
func TestSenderNonASCIIAddressNeedsSMTPUTF8(t *testing.T) {
	sink := testkit.SMTP(t)
	sender := shopSender(t, sink, "shop.example").WithTimeout(2 * time.Second)
	msg := rmail.Message{To: mail.Address{Address: "юзер@пример.рф"}, Subject: "Confirm", Text: "Hello"}
	if _, err := sender.Send(context.Background(), msg); err != nil {
		t.Fatalf("to a server with SMTPUTF8: %v", err)
	}
	if _, err := sender.Send(context.Background(), rmail.Message{To: mail.Address{Address: "ann@example.com"}, Subject: "Confirm", Text: "Hello"}); err != nil {
		t.Fatalf("an ASCII address to a server with SMTPUTF8: %v", err)
	}
	if got := sink.Messages(); len(got) != 2 || !got[0].UTF8 || got[1].UTF8 {
		t.Fatalf("SMTPUTF8 asked for: %+v", got)
	}
	noSMTPUTF8(t, sink)
	sink.Reset()
	_, err := sender.Send(context.Background(), msg)
	if err == nil || !rmail.IsPermanent(err) || !strings.Contains(err.Error(), "does not announce SMTPUTF8") {
		t.Errorf("to a server without SMTPUTF8: %v (permanent %v)", err, rmail.IsPermanent(err))
	}
	if _, err := sender.Send(context.Background(), rmail.Message{To: mail.Address{Address: "ann@пример.рф"}, Subject: "Confirm", Text: "Hello"}); err != nil {
		t.Errorf("an ASCII address at an internationalized domain: %v", err)
	}
	if got := sink.Messages(); len(got) != 1 || got[0].To[0] != "ann@xn--e1afmkfd.xn--p1ai" {
		t.Errorf("received %+v", got)
	}
}

// A From with more than ASCII before the @ asks for SMTPUTF8 with every
// mail, whatever the recipient's address.
func TestNonASCIIFromAsksForSMTPUTF8(t *testing.T) {
	sink := testkit.SMTP(t)
	sender, err := rmail.NewSender(sink.URL(), "Почта <почта@shop.example>", "shop.example")
	if err != nil {
		t.Fatal(err)
	}
	msg := rmail.Message{To: mail.Address{Address: "ann@example.com"}, Subject: "Hi", Text: "Hello"}
	if _, err := sender.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	pool := rmail.NewPool(sender, 1, nil)
	t.Cleanup(pool.Close)
	if r := pool.Send(context.Background(), msg); r.Class != rmail.Delivered {
		t.Fatalf("pooled: %+v", r)
	}
	if got := sink.Messages(); len(got) != 2 || !got[0].UTF8 || !got[1].UTF8 || got[1].From != "почта@shop.example" {
		t.Errorf("received %+v", got)
	}
}

// noSMTPUTF8 makes sink stop announcing SMTPUTF8.
func noSMTPUTF8(t *testing.T, sink *mailsink.Server) {
	t.Helper()
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	sink.OfferSMTPUTF8(false)
	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
}

// shopSender is a sender to sink, from the shop, with Message-IDs on host.
func shopSender(t *testing.T, sink *mailsink.Server, host string) *rmail.Sender {
	t.Helper()
	sender, err := rmail.NewSender(sink.URL(), "Shop <news@shop.example>", host)
	if err != nil {
		t.Fatal(err)
	}
	return sender
}

// onePool is a pool of one connection to sink, each send given timeout,
// closed when the test ends.
func onePool(t *testing.T, sink *mailsink.Server, timeout time.Duration) *rmail.Pool {
	t.Helper()
	pool := rmail.NewPool(shopSender(t, sink, "shop.example").WithTimeout(timeout), 1, nil)
	t.Cleanup(pool.Close)
	return pool
}

// SMTP_URL with a user and password, and a server that offers no sign-in
// (or none over TLS): the failure says why, in words, not go-mail's.
func TestPoolNoSignInSaysWhy(t *testing.T) {
	sink := testkit.SMTP(t)
	sink.OfferPlainAuth(true)
	u := strings.Replace(sink.URL(), "smtp://", "smtp://mailer:secret@", 1)
	sender, err := rmail.NewSender(u, "Shop <news@shop.example>", "shop.example")
	if err != nil {
		t.Fatal(err)
	}
	pool := rmail.NewPool(sender, 1, nil)
	t.Cleanup(pool.Close)
	r := pool.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"})
	if r.Class != rmail.Unreachable || !r.NoServer || !strings.Contains(r.Reply, "cannot sign in") || !strings.Contains(r.Reply, "never sent unencrypted") {
		t.Errorf("send with a password to a server that takes none: %+v", r)
	}
	if _, err := sender.Send(context.Background(), rmail.Message{To: mail.Address{Address: "a@example.com"}, Subject: "Hi", Text: "Hello"}); err == nil || !strings.Contains(err.Error(), "cannot sign in") || rmail.IsPermanent(err) {
		t.Errorf("account mail with a password to a server that takes none: %v", err)
	}
}
