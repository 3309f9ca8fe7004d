// Package mail builds and sends Rassylka's mail over SMTP: plain UTF-8 text
// with the headers a good sender sets. It knows nothing of HTTP or queues.
package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"rassylka/app/model"
)

// Message is one mail to one recipient.
type Message struct {
	To      netmail.Address
	Subject string
	Text    string
	// FromName is the name the mail goes from, with MAIL_FROM's address
	// ("": MAIL_FROM's name).
	FromName string
	// ReplyTo is where the recipient's reply goes ("": to From). An
	// address with more than ASCII before the @ is left out: not every
	// server could carry the mail (the forms refuse one).
	ReplyTo string
	// Headers are extra headers, such as List-Unsubscribe.
	Headers map[string]string
}

// Sender delivers messages to the SMTP server of SMTP_URL.
type Sender struct {
	host    string
	opts    []gomail.Option
	from    netmail.Address
	utf8    bool // from has more than ASCII before the @: every mail asks for SMTPUTF8
	idHost  string
	timeout time.Duration
}

// DefaultTimeout bounds one SMTP conversation (dial, auth and the send).
const DefaultTimeout = 30 * time.Second

// NewSender configures a sender from smtpURL (smtp://user:pass@host:port,
// smtps://… for implicit TLS), the From address and the host used in
// Message-IDs (the host of BASE_URL).
func NewSender(smtpURL, from, messageIDHost string) (*Sender, error) {
	u, err := url.Parse(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("parse SMTP_URL: %w", err)
	}
	fromAddr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("parse MAIL_FROM %q: %w", from, err)
	}
	// The From domain in its ASCII form, as recipients' are (see Build):
	// in UTF-8 it would need a server that announces SMTPUTF8.
	fromAddr.Address = model.ASCIIEmail(fromAddr.Address)
	host := messageIDHost
	if a, ok := model.ASCIIDomain(host); ok {
		host = a
	}
	s := &Sender{host: u.Hostname(), from: *fromAddr, utf8: needsSMTPUTF8(fromAddr.Address), idHost: host, timeout: DefaultTimeout}
	helo := host // the site's host names us to servers (EHLO), not the machine's name
	switch {
	case host == "":
		s.idHost, helo = "localhost", "localhost"
	case strings.Contains(host, ":"):
		s.idHost = "[" + host + "]"  // an IPv6 address is a domain literal (RFC 5322, 3.6.4)
		helo = "[IPv6:" + host + "]" // (RFC 5321, 4.1.3)
	case net.ParseIP(host) != nil:
		helo = "[" + host + "]"
	}
	s.opts = append(s.opts, gomail.WithHELO(helo))
	port := 0
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("SMTP_URL port %q: %w", p, err)
		}
	}
	switch u.Scheme {
	case "smtps":
		if port == 0 {
			port = 465
		}
		s.opts = append(s.opts, gomail.WithSSL())
	case "smtp":
		if port == 0 {
			port = 587
		}
		// STARTTLS when the server offers it; local catchers do not.
		s.opts = append(s.opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		return nil, fmt.Errorf("SMTP_URL scheme must be smtp or smtps, got %q", u.Scheme)
	}
	s.opts = append(s.opts, gomail.WithPort(port))
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		s.opts = append(s.opts,
			gomail.WithUsername(user), gomail.WithPassword(pass),
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
	}
	return s, nil
}

// WithTimeout returns a copy of s whose SMTP conversations time out after d.
func (s *Sender) WithTimeout(d time.Duration) *Sender {
	c := *s
	c.timeout = d
	return &c
}

// Build turns m into a go-mail message with From, To, Subject, Date and a
// Message-ID on the sender's host.
func (s *Sender) Build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	name := OneLine(m.FromName)
	if name == "" {
		msg.FromMailAddress(&s.from)
	} else {
		// A name of the sender's own is written as To is, below: go-mail
		// writes From as net/mail formats it, which splits a name beyond
		// ASCII within its words and, from about ten such letters, folds
		// the header before its value.
		msg.SetGenHeaderPreformatted(gomail.Header(gomail.HeaderFrom), addressHeader("From", name, s.from.Address))
	}
	// The address is checked alone and the name set as is: net/mail quotes
	// and escapes it (pasted between quotes, a name with a quote or a
	// backslash came out changed, or failed the mail).
	to, err := netmail.ParseAddress("<" + m.To.Address + ">")
	if err != nil {
		return nil, fmt.Errorf("build mail: recipient %q: %w", m.To.Address, err)
	}
	// The domain in its ASCII form: in UTF-8 it needs a server that
	// announces SMTPUTF8, and one that does not may refuse it as bad
	// syntax (a 5.1.3, which would mark the client hard-bounced). The part
	// before the @ is left as it is: in UTF-8 it needs such a server anyway.
	addr := model.ASCIIEmail(to.Address)
	// The envelope's recipient; the To header is written below. (go-mail
	// takes a Bcc's address for the envelope and writes no header of it.)
	if err := msg.AddBcc(addr); err != nil {
		return nil, fmt.Errorf("build mail: recipient %q: %w", m.To.Address, err)
	}
	msg.SetGenHeaderPreformatted(gomail.Header(gomail.HeaderTo), addressHeader("To", OneLine(m.To.Name), addr))
	if r := model.ASCIIEmail(strings.TrimSpace(m.ReplyTo)); r != "" && model.IsASCII(r) {
		if a, err := netmail.ParseAddress("<" + r + ">"); err == nil {
			msg.SetGenHeaderPreformatted(gomail.Header(gomail.HeaderReplyTo), addressHeader("Reply-To", "", a.Address))
		}
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("build mail: subject has a line break")
	}
	msg.SetGenHeaderPreformatted(gomail.HeaderSubject, fold("Subject", textWords(OneLine(m.Subject), "Subject")))
	msg.SetDate()
	msg.SetMessageIDWithValue(newMessageID(s.idHost))
	for k, v := range m.Headers {
		if len(k)+2+len(v) <= maxHeaderLine && model.IsASCII(v) && !strings.ContainsAny(v, "\r\n") {
			// On its header's line, not folded before the value as a
			// header longer than 76 characters is: a naive reader of
			// List-Unsubscribe then found no link.
			msg.SetGenHeaderPreformatted(gomail.Header(k), v)
			continue
		}
		msg.SetGenHeader(gomail.Header(k), v)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if name == "" {
		return msg, nil
	}
	// The message sent names MAIL_FROM's address to the server (MAIL FROM)
	// and writes msg, which has no From of go-mail's making.
	env := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithMiddleware(writes{msg}))
	env.FromMailAddress(&s.from)
	if err := env.AddBcc(addr); err != nil {
		return nil, fmt.Errorf("build mail: recipient %q: %w", m.To.Address, err)
	}
	return env, nil
}

// writes makes a message write another in its place: the envelope's
// message (its sender and recipients) writes the one with the headers
// the app wrote.
type writes struct{ msg *gomail.Msg }

func (w writes) Handle(*gomail.Msg) *gomail.Msg { return w.msg }
func (writes) Type() gomail.MiddlewareType      { return "rassylka-writes" }

// maxHeaderLine is the longest line RFC 5322 allows (2.1.1), without its
// CRLF.
const maxHeaderLine = 998

// OneLine puts s on one line, as a header's value must be: line breaks
// become spaces (a name with one would otherwise fail every mail to it),
// and every run of spaces one space (a header is folded at spaces, and a
// run longer than a line would leave a line of spaces alone, which RFC
// 5322 does not allow).
func OneLine(s string) string { return strings.Join(strings.FieldsFunc(s, isFoldingSpace), " ") }

// isFoldingSpace is a space a header may be folded at, or a line break.
// (Other spaces, such as a no-break space, are the text's own.)
func isFoldingSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// maxLine is the longest a line of a mail may be, CRLF apart (RFC 5322,
// 2.1.1).
const maxLine = 998

// Headers a recipient reads (Subject, the name in To) are written here
// rather than by go-mail, which folded a value before its first word when
// that word was long (an encoded word of a subject beyond ASCII, from about
// 17 characters on): "Subject:" on a line of its own, which readers that
// keep the fold's space showed as a subject starting with one. Text beyond
// printable ASCII, or that a mail program would read as an encoded word
// ("=?utf-8?q?Hi?=" shows as "Hi"), goes as encoded words (RFC 2047), each
// fitting its line; other text as it is, folded at its spaces.

// fold writes a header's words (the value split at its spaces) folded
// into lines of at most 78 characters where the words allow it, the first
// word always on the header's own line. No line is over 998 (RFC 5322,
// 2.1.1): a word that long is given as encoded words (see textWords).
func fold(name string, words []string) string {
	var b strings.Builder
	line := len(name) + 2 // "Name: "
	for i, w := range words {
		if i > 0 {
			if line+1+len(w) > 78 {
				b.WriteString("\r\n ")
				line = 1
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// textWords splits text for fold: at its spaces when it is plain,
// otherwise into encoded words, the first fitting the line of header name.
func textWords(text, name string) []string {
	if plain(text) {
		return strings.Split(text, " ")
	}
	return encodedWords(text, name)
}

// plain reports whether text may go in a header as it is: printable
// ASCII, no word a line could not hold, nothing that reads as an encoded
// word.
func plain(text string) bool {
	for i := 0; i < len(text); i++ {
		if text[i] < ' ' || text[i] > '~' {
			return false
		}
	}
	if strings.Contains(text, "=?") {
		return false
	}
	for w := range strings.SplitSeq(text, " ") {
		if len(w) > maxLine-len("Subject: ") {
			return false
		}
	}
	return true
}

// encodedWords writes text as Q-encoded words (RFC 2047) of at most 75
// characters, the first short enough to follow "name: " on its line, no
// character split between two, and each ending after a space of the text
// where one fits: readers join the words as RFC 2047 has it, but some
// (Python's email, in a name) keep the fold between them, which within a
// word split it ("Ан ны"). Only letters, digits and !*+-/ go as they
// are, so the words may stand in a name (a phrase, 5.3) as in a subject;
// a space is "_".
func encodedWords(text, name string) []string {
	const open, end, hex = "=?UTF-8?q?", "?=", "0123456789ABCDEF"
	room := min(75, 78-len(name)-2) - len(open) - len(end)
	var words []string
	var w, enc []byte
	afterSpace := 0 // where in w its last space ends (0: none)
	for _, r := range text {
		enc = enc[:0]
		switch {
		case r == ' ':
			enc = append(enc, '_')
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r):
			enc = append(enc, byte(r))
		default:
			for _, c := range utf8.AppendRune(nil, r) {
				enc = append(enc, '=', hex[c>>4], hex[c&15])
			}
		}
		for len(w) > 0 && len(w)+len(enc) > room {
			cut := len(w)
			if afterSpace > 0 {
				cut = afterSpace
			}
			words = append(words, open+string(w[:cut])+end)
			w = append(w[:0], w[cut:]...) // what followed the space starts the next word
			afterSpace = 0
			room = 75 - len(open) - len(end)
		}
		w = append(w, enc...)
		if r == ' ' {
			afterSpace = len(w)
		}
	}
	if len(w) > 0 || len(words) == 0 {
		words = append(words, open+string(w)+end)
	}
	return words
}

// addressHeader is the value of the header (To, Reply-To) naming addr,
// whose owner is named name: the name quoted as net/mail quotes it, or as
// encoded words.
func addressHeader(header, name, addr string) string {
	a := (&netmail.Address{Address: addr}).String()
	switch {
	case name == "":
		return a
	case plain(name):
		q := (&netmail.Address{Name: name, Address: addr}).String()
		return fold(header, strings.Split(q, " "))
	}
	return fold(header, append(encodedWords(name, header), a))
}

// Send delivers m in its own SMTP conversation and returns the server's
// final reply. A failure is returned as an error wrapping *gomail.SendError
// when the server answered, or the network error when it could not be reached.
func (s *Sender) Send(ctx context.Context, m Message) (string, error) {
	msg, err := s.Build(m)
	if err != nil {
		return "", err
	}
	c, err := s.connect(ctx)
	if err != nil {
		return "", fmt.Errorf("send mail to %s: %w", m.To.Address, err)
	}
	defer c.quit()
	// An address with more than ASCII before the @ only to a server that
	// takes it (see Pool.Send).
	utf8Needed := needsSMTPUTF8(m.To.Address)
	if !c.utf8 && utf8Needed {
		return "", fmt.Errorf("send mail to %s: %w", m.To.Address, errNoSMTPUTF8)
	}
	c.sc.SkipSMTPUTF8(!utf8Needed && !s.utf8)
	if err := c.c.SendWithSMTPClient(c.sc, msg); err != nil && !msg.IsDelivered() {
		return "", fmt.Errorf("send mail to %s: %w", m.To.Address, err)
	}
	return msg.ServerResponse(), nil
}

func newMessageID(host string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return fmt.Sprintf("%s@%s", hex.EncodeToString(b), host)
}

// IsPermanent reports whether err is a 5xx answer of the mail server: sending
// the same message again will not help. A refusal of the sender (see
// refusesSender, mayRefuseSender) is not: it lasts until the server's
// settings or ours change.
func IsPermanent(err error) bool {
	if errors.Is(err, errNoSMTPUTF8) {
		return true
	}
	var se *gomail.SendError
	if !errors.As(err, &se) || se.ErrorCode() < 500 || se.ErrorCode() > 599 {
		return false
	}
	reply := sendErrorText(se)
	return !refusesSender(se, reply) && !mayRefuseSender(reply)
}
