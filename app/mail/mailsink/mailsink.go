// Package mailsink is an SMTP server that keeps what it receives in memory.
// The tests use it as the mail server (it can be told to refuse
// connections, answer 4xx/5xx or stall), and the local mail catcher of
// cmd/dev shows its messages on a page.
package mailsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message as the server got it.
type Received struct {
	ID   int
	Helo string // the name the client gave in EHLO (or HELO)
	From string
	UTF8 bool // MAIL asked for SMTPUTF8
	To   []string
	Data []byte
	At   time.Time
}

// Header parses the message header.
func (r Received) Header() netmail.Header {
	m, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return netmail.Header{}
	}
	return m.Header
}

// Body returns the message body, decoded from quoted-printable or base64
// when the header says so.
func (r Received) Body() string {
	m, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return ""
	}
	b, err := io.ReadAll(decodeBody(m.Header.Get("Content-Transfer-Encoding"), m.Body))
	if err != nil {
		return ""
	}
	return string(b)
}

// Server is a recording SMTP server on a local address.
type Server struct {
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	msgs     []Received
	nextID   int
	mailErr  *smtp.SMTPError
	rcptRule func(to string) *smtp.SMTPError
	dataErr  *smtp.SMTPError
	cut      func(to []string) Cut
	delay    time.Duration
	idle     time.Duration // 0: a minute
	noUTF8   bool          // SMTPUTF8 not announced
	auth     bool          // AUTH PLAIN offered (over plain TCP too)
	notify   chan struct{}
	sessions int
	open     int
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves.
func Start(addr string) (*Server, error) {
	s := &Server{notify: make(chan struct{})}
	if err := s.listen(addr); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mailsink listen %s: %w", addr, err)
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "mailsink.local"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 25 << 20
	srv.MaxRecipients = 100
	srv.WriteTimeout = 60 * time.Second
	s.mu.Lock()
	srv.ReadTimeout = s.idle
	srv.EnableSMTPUTF8 = !s.noUTF8
	if srv.ReadTimeout == 0 {
		srv.ReadTimeout = 60 * time.Second
	}
	s.addr = ln.Addr().String()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the server as an SMTP_URL.
func (s *Server) URL() string { return "smtp://" + s.Addr() }

// Close stops listening and drops open connections.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	// Serve may not have taken the listener yet, and then srv.Close leaves
	// it open.
	_ = ln.Close()
	return err
}

// Down stops accepting connections: clients get "connection refused" until Up.
func (s *Server) Down() error { return s.Close() }

// Up listens again on the same address after Down.
func (s *Server) Up() error { return s.listen(s.Addr()) }

// OfferSMTPUTF8 makes the server announce SMTPUTF8 (as it does unless told
// otherwise, like Postfix) or not, from the next Up on. Not announced, or
// not asked for in MAIL, an address with more than ASCII is refused at
// RCPT (553 5.6.7), as RFC 6531 has it.
func (s *Server) OfferSMTPUTF8(on bool) {
	s.mu.Lock()
	s.noUTF8 = !on
	s.mu.Unlock()
}

// OfferPlainAuth makes the server offer AUTH PLAIN, on connections
// without TLS too, and take any user and password.
func (s *Server) OfferPlainAuth(on bool) {
	s.mu.Lock()
	s.auth = on
	s.mu.Unlock()
}

// IdleTimeout makes the server close connections that sent nothing for d,
// saying so ("421 4.4.2 Idle timeout"), from the next Up on.
func (s *Server) IdleTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = d
}

// RejectMail makes MAIL FROM answer err (nil accepts).
func (s *Server) RejectMail(err *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailErr = err
}

// RejectRcpt makes RCPT TO answer with the error rule returns (nil accepts).
// A nil rule accepts every recipient.
func (s *Server) RejectRcpt(rule func(to string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptRule = rule
}

// RejectData makes the end of DATA answer err (nil accepts).
func (s *Server) RejectData(err *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataErr = err
}

// Cut is how the server breaks a connection in the middle of a message.
type Cut int

// Ways to break a message's connection (see CutData).
const (
	NoCut     Cut = iota // answer as usual
	CutBefore            // close the connection mid-DATA: the message is not kept
	CutAfter             // keep the message, then close the connection without answering
)

// CutData makes the server break the connection of the messages rule picks,
// as it returns (nil: none).
func (s *Server) CutData(rule func(to []string) Cut) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = rule
}

// Stall makes the server wait d before answering the end of DATA, to
// simulate a slow or hung server.
func (s *Server) Stall(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Messages returns a copy of what has been received, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Message returns the message with id.
func (s *Server) Message(id int) (Received, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.ID == id {
			return m, true
		}
	}
	return Received{}, false
}

// Sessions counts the SMTP connections the server has accepted.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Open counts the SMTP connections open now: accepted, and not closed by
// either side.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Reset forgets the received messages.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = nil
}

// Wait blocks until at least n messages have been received, or ctx ends.
func (s *Server) Wait(ctx context.Context, n int) ([]Received, error) {
	for {
		s.mu.Lock()
		msgs, ch := append([]Received(nil), s.msgs...), s.notify
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return msgs, fmt.Errorf("mailsink: got %d of %d messages: %w", len(msgs), n, ctx.Err())
		}
	}
}

// store keeps the message of se's transaction.
func (s *Server) store(se *session, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.msgs = append(s.msgs, Received{ID: s.nextID, Helo: se.conn.Hostname(), From: se.from, UTF8: se.utf8,
		To: append([]string(nil), se.to...), Data: data, At: time.Now()})
	close(s.notify)
	s.notify = make(chan struct{})
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.sessions++
	b.s.open++
	b.s.mu.Unlock()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	from string
	to   []string
	utf8 bool // MAIL asked for SMTPUTF8
}

func (se *session) Reset() { se.from, se.to, se.utf8 = "", nil, false }

// AuthMechanisms offers PLAIN when OfferPlainAuth says so.
func (se *session) AuthMechanisms() []string {
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	if se.s.auth {
		return []string{sasl.Plain}
	}
	return nil
}

// Auth takes any user and password.
func (se *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error { return nil }), nil
}

// Logout is called when the connection closes.
func (se *session) Logout() error {
	se.s.mu.Lock()
	se.s.open--
	se.s.mu.Unlock()
	return nil
}

func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	se.s.mu.Lock()
	err := se.s.mailErr
	se.s.mu.Unlock()
	if err != nil {
		return err
	}
	se.from, se.utf8 = from, opts != nil && opts.UTF8
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !se.utf8 && strings.IndexFunc(to, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address without SMTPUTF8"}
	}
	se.s.mu.Lock()
	rule := se.s.rcptRule
	se.s.mu.Unlock()
	if rule != nil {
		if err := rule(to); err != nil {
			return err
		}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	se.s.mu.Lock()
	delay, dataErr, cut := se.s.delay, se.s.dataErr, NoCut
	if se.s.cut != nil {
		cut = se.s.cut(se.to)
	}
	se.s.mu.Unlock()
	if cut == CutBefore {
		_, _ = r.Read(make([]byte, 64)) // some of the message, not its end
		se.conn.Close()
		return errors.New("connection cut")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if cut == CutAfter {
		if len(se.to) > 0 {
			se.s.store(se, data)
		}
		se.conn.Close()
		return errors.New("connection cut")
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if dataErr != nil {
		return dataErr
	}
	if len(se.to) == 0 {
		return errors.New("no recipients")
	}
	se.s.store(se, data)
	return nil
}
