package mail

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"rassylka/app/model"
)

// Class sorts the outcome of one send.
type Class int

// Outcomes of a send.
const (
	Delivered   Class = iota // the server accepted the message (2xx)
	Temporary                // the server said try later (4xx): not delivered, retry
	Permanent                // the server refused for good (5xx)
	NoSuchUser               // 5.1.x: the address does not exist (a hard bounce)
	Unreachable              // no conversation (connection refused, DNS): not delivered, retry
	Unknown                  // the conversation broke (timeout, reset): delivered or not, nobody knows
)

// Result is the outcome of one send with the server's answer.
type Result struct {
	Class Class
	Code  int    // SMTP reply code, 0 when there was none
	Reply string // the server's reply, or the error text
	// NoServer: Unreachable because no connection could be opened (refused,
	// no answer, TLS, a refused sign-in), not because one broke: no
	// message can be sent until the server is reached again.
	NoServer bool
}

// Retryable reports whether sending again cannot deliver twice.
func (r Result) Retryable() bool { return r.Class == Temporary || r.Class == Unreachable }

// Pool sends messages over a bounded number of SMTP connections that stay
// open and are reused from message to message, optionally no faster than a
// rate. A connection that fails is closed and dialled again on next use.
type Pool struct {
	s       *Sender
	idle    chan *conn
	slots   chan struct{}
	limiter Limiter
	health  *Health // told when connections fail, and when mail goes again

	mu     sync.Mutex
	closed bool
	all    map[*conn]bool
}

// conn is one open connection: go-mail's client with its settings, and the
// SMTP conversation it dialled, kept to close it whatever QUIT gets.
type conn struct {
	c    *gomail.Client
	sc   *smtp.Client
	utf8 bool // the server announced SMTPUTF8
}

// NewPool opens at most size connections with s's settings, each send
// paced by limiter when it is not nil (MAIL_RATE: see SharedRate).
func NewPool(s *Sender, size int, limiter Limiter) *Pool {
	size = max(size, 1)
	return &Pool{s: s, idle: make(chan *conn, size), slots: make(chan struct{}, size), all: map[*conn]bool{}, limiter: limiter}
}

// ReportTo makes the pool tell h when it cannot open a connection, and
// when a message is delivered again.
func (p *Pool) ReportTo(h *Health) *Pool {
	p.health = h
	return p
}

// Size is the number of connections the pool may hold.
func (p *Pool) Size() int { return cap(p.slots) }

// Send delivers m over a pooled connection and classifies the outcome,
// with a reply that fits an attempt's response (see bounded).
func (p *Pool) Send(ctx context.Context, m Message) Result {
	r := p.send(ctx, m)
	r.Reply = bounded(r.Reply)
	return r
}

func (p *Pool) send(ctx context.Context, m Message) Result {
	if p.limiter != nil {
		if err := p.limiter.Wait(ctx); err != nil {
			return Result{Class: Unreachable, Reply: "not sent: " + err.Error()}
		}
	}
	msg, err := p.s.Build(m)
	if err != nil {
		return Result{Class: Permanent, Reply: err.Error()}
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{Class: Unreachable, Reply: "not sent: " + ctx.Err().Error()}
	}
	defer func() { <-p.slots }()

	// An address with more than ASCII before the @ (its domain is sent in
	// ASCII) may be sent only to a server that announces SMTPUTF8, asking
	// for it: to another, it would break the protocol.
	utf8Needed := needsSMTPUTF8(m.To.Address)
	send := func(c *conn) error {
		if utf8Needed && !c.utf8 {
			return errNoSMTPUTF8
		}
		// Asked for only when the address needs it: a relay that took
		// SMTPUTF8 could not pass the mail on to a server without it.
		c.sc.SkipSMTPUTF8(!utf8Needed && !p.s.utf8)
		return c.c.SendWithSMTPClient(c.sc, msg)
	}
	c, reused, err := p.conn(ctx)
	if err != nil {
		return p.unreachable(ctx, err)
	}
	err = send(c)
	if err != nil && reused && stale(err) {
		// The server closed the connection while it sat in the pool (an
		// idle timeout): nothing was sent on it, so the message goes again
		// on a new one rather than wait for a retry.
		p.drop(c)
		if c, err = p.dial(ctx); err != nil {
			return p.unreachable(ctx, err)
		}
		err = send(c)
	}
	switch {
	case errors.Is(err, errNoSMTPUTF8):
		p.release(c) // nothing was said on it
		return Result{Class: Permanent, Reply: err.Error()}
	case err == nil:
		p.release(c)
	case msg.IsDelivered():
		// The server took the message (250 after its data) and the
		// conversation broke after: delivered, whatever came next.
		p.drop(c)
	default:
		p.drop(c)
		r := classify(err)
		if r.NoServer {
			return p.noServer(ctx, r) // a server refusing the sender
		}
		return r
	}
	p.health.delivered(ctx)
	reply := strings.TrimSpace(msg.ServerResponse())
	code := replyCode(reply, 0)
	if code == 0 { // go-mail keeps the text without the code
		code, reply = 250, strings.TrimSpace("250 "+reply)
	}
	return Result{Class: Delivered, Code: code, Reply: reply}
}

// errNoSMTPUTF8 refuses a send the server could not take as it is.
var errNoSMTPUTF8 = errors.New("not sent: the address has letters beyond ASCII before the @, and the mail server does not take such addresses (it does not announce SMTPUTF8)")

// needsSMTPUTF8 reports whether an address may go only to a server that
// announces SMTPUTF8: more than ASCII before the @ (its domain is sent in
// ASCII).
func needsSMTPUTF8(addr string) bool { return !model.IsASCII(model.ASCIIEmail(addr)) }

// unreachable is the outcome of a send that found no connection.
func (p *Pool) unreachable(ctx context.Context, err error) Result {
	return p.noServer(ctx, Result{Class: Unreachable, Reply: err.Error(), NoServer: true})
}

// noServer returns r, the outcome of a send no server takes mail for (none
// reached, or one refusing the sender), and tells the health why (unless
// the send was called off).
func (p *Pool) noServer(ctx context.Context, r Result) Result {
	if ctx.Err() == nil {
		p.health.failed(context.WithoutCancel(ctx), bounded(r.Reply))
	}
	return r
}

// conn takes an idle connection, or dials a new one; reused tells which.
func (p *Pool) conn(ctx context.Context) (c *conn, reused bool, err error) {
	select {
	case c := <-p.idle:
		return c, true, nil
	default:
	}
	c, err = p.dial(ctx)
	return c, false, err
}

// dial opens a connection. It sends no NOOP before each message and no
// RSET after it (go-mail's defaults, a round trip each): a connection the
// server has closed since is found by the next message's first command,
// and replaced; a new MAIL command starts a new transaction by itself
// (RFC 5321, 3.3), and a server that answered RSET with 421 made a
// delivered message look like a temporary failure, to be sent again.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	c, err := p.s.connect(ctx, gomail.WithoutNoop())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.all[c] = true
	p.mu.Unlock()
	return c, nil
}

// connect opens an SMTP conversation with the server (greeted, with TLS
// and sign-in as SMTP_URL says), sending no RSET after a message: a
// server answering it (or QUIT) with an error made a delivered mail look
// failed, and sent again. extra are the caller's own options.
func (s *Sender) connect(ctx context.Context, extra ...gomail.Option) (*conn, error) {
	opts := append(append([]gomail.Option{gomail.WithTimeout(s.timeout), gomail.WithoutRset()}, extra...), s.opts...)
	gc, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sc, err := gc.DialToSMTPClientWithContext(dctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", gc.ServerAddr(), explained(err))
	}
	c := &conn{c: gc, sc: sc}
	c.utf8, _ = sc.Extension("SMTPUTF8")
	return c, nil
}

// stale reports whether a send failed at its first command because the
// connection was gone: the server had closed it (no reply), or said it
// was closing it (421). Nothing of the message was sent then.
func stale(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.Reason != gomail.ErrSMTPMailFrom {
		return false
	}
	code := se.ErrorCode()
	return code == 0 || code == 421
}

func (p *Pool) release(c *conn) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.drop(c)
		return
	}
	select {
	case p.idle <- c:
	default:
		p.drop(c)
	}
}

// drop ends c and forgets it.
func (p *Pool) drop(c *conn) {
	p.mu.Lock()
	delete(p.all, c)
	p.mu.Unlock()
	c.quit()
}

// quit ends c: QUIT, and the connection closed even when QUIT fails (a
// timeout, a reset), which go-mail's Close would leave open.
func (c *conn) quit() {
	if err := c.sc.Quit(); err != nil {
		_ = c.sc.Close()
	}
}

// Close ends every connection (QUIT).
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*conn, 0, len(p.all))
	for c := range p.all {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		p.drop(c)
	}
}

// classify turns a send error into a Result: a 4xx or 5xx answer says
// whether the server took the message; a broken conversation after the
// data was sent leaves it unknown.
func classify(err error) Result {
	var se *gomail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		text := sendErrorText(se)
		switch {
		case refusesSender(se, text):
			// Not the recipient's fault, and the same for every one: like
			// a server that cannot be reached (a refused sign-in), the
			// send is not made, and waits for the server (or its
			// settings) to change, rather than fail the recipient for good.
			return Result{Class: Unreachable, Reply: "not sent, the server refuses mail from us: " + text, NoServer: true}
		case code >= 500 && mayRefuseSender(text):
			// Most likely the same (our sign-in, a server that does not
			// relay for us), but a server may say so of one recipient
			// (a list that only signed-in senders may mail, a domain it
			// does not relay to): tried again at the usual delays, not
			// waited for, and failed with no code, so that "Retry failed"
			// takes it once the settings are mended.
			return Result{Class: Unreachable, Reply: "not sent, the server refuses mail from us: " + text}
		case code >= 500 && se.Reason != gomail.ErrSMTPMailFrom && noSuchUser(text):
			return Result{Class: NoSuchUser, Code: code, Reply: text}
		case code >= 500:
			return Result{Class: Permanent, Code: code, Reply: text}
		case code >= 400:
			return Result{Class: Temporary, Code: code, Reply: text}
		}
		switch se.Reason {
		case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrConnCheck, gomail.ErrGetSender:
			// The message text had not been sent yet.
			return Result{Class: Unreachable, Reply: text}
		}
		return Result{Class: Unknown, Reply: text}
	}
	return Result{Class: Unknown, Reply: err.Error()}
}

// sendErrorText is what the server answered ("452 4.5.3 Too many
// recipients"), or, when it did not, the step that broke and why ("no
// answer after the message was sent: the server closed the connection
// (EOF)"): not go-mail's account of the command, the quoted reply, the
// recipient and the message id.
func sendErrorText(se *gomail.SendError) string {
	text := strings.TrimPrefix(se.Error(), se.Reason.String()+": ")
	code := se.ErrorCode()
	if code != 0 {
		// The first error is the reply, as net/textproto writes it: its
		// code and its lines quoted; what follows (RSET's own failure,
		// the recipient) is go-mail's.
		if rest, ok := strings.CutPrefix(text, strconv.Itoa(code)+" "); ok {
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				if msg, err := strconv.Unquote(q); err == nil {
					return strings.TrimSpace(strconv.Itoa(code) + " " + msg)
				}
			}
		}
	}
	for _, tail := range []string{", affected recipient(s): ", ", affected message ID: "} {
		if i := strings.Index(text, tail); i >= 0 {
			text = text[:i]
		}
	}
	// No reply: say where the conversation broke, and a hang-up in words
	// (the bare "EOF" told the attempt log's reader nothing).
	text = strings.TrimSpace(text)
	if code != 0 {
		return text
	}
	if cut, ok := strings.CutSuffix(text, "EOF"); ok && (cut == "" || strings.HasSuffix(cut, ": ")) {
		text = cut + "the server closed the connection (EOF)"
	}
	if step := brokeAt[se.Reason]; step != "" {
		text = step + ": " + text
	}
	return text
}

// brokeAt names the step of a conversation that broke with no reply.
var brokeAt = map[gomail.SendErrReason]string{
	gomail.ErrSMTPMailFrom:  "no answer to MAIL FROM",
	gomail.ErrSMTPRcptTo:    "no answer to RCPT TO",
	gomail.ErrSMTPData:      "no answer to DATA",
	gomail.ErrWriteContent:  "the message could not be sent whole",
	gomail.ErrSMTPDataClose: "no answer after the message was sent",
	gomail.ErrSMTPReset:     "no answer to RSET",
	gomail.ErrConnCheck:     "the connection failed its check",
}

// refusesSender reports whether a 5xx reply refuses the sender, not the
// recipient: any refusal of MAIL FROM (its sender, or the sign-in it
// wants), a sign-in asked for at any step (530), or a sender's address
// refused at RCPT (5.1.7, 5.1.8, Postfix's "Sender address rejected").
// Each is the same for every recipient, and comes of the server's
// settings or ours (SMTP_URL's credentials, MAIL_FROM).
// (reply is sendErrorText's.)
func refusesSender(se *gomail.SendError, reply string) bool {
	code := se.ErrorCode()
	if code < 500 || code > 599 {
		return false
	}
	if se.Reason == gomail.ErrSMTPMailFrom || code == 530 {
		return true
	}
	_, text, _ := strings.Cut(reply, " ")
	return senderRefusal.MatchString(text)
}

var senderRefusal = regexp.MustCompile(`(?im)^5\.1\.[78]\b|sender address rejected`)

// mayRefuseSender reports whether a 5xx reply's words speak of a sign-in
// or of relaying, which most often means the server will take no mail from
// us, but may be said of one recipient.
func mayRefuseSender(reply string) bool {
	_, text, _ := strings.Cut(reply, " ")
	return signInOrRelay.MatchString(text)
}

var signInOrRelay = regexp.MustCompile(`(?i)authentication required|relay(ing)?( access)? (denied|not permitted|prohibited|not allowed)|unable to relay|not permitted to relay`)

// noSuchUser reports whether a 5xx reply says the recipient's address does
// not exist: an enhanced code (RFC 3463) at the start of one of its lines
// that is about the recipient's address (5.1.1 no such mailbox, 5.1.2 no
// such domain, 5.1.3 bad address syntax, 5.1.6 moved, 5.1.10 a null MX),
// and no word of the sender's address: servers refuse an unknown sender
// at RCPT with 5.1.0 or 5.1.1 ("Sender address rejected", Postfix), which
// would mark every recipient of a run bounced.
func noSuchUser(reply string) bool {
	_, text, _ := strings.Cut(reply, " ")
	if strings.Contains(strings.ToLower(text), "sender") {
		return false
	}
	for line := range strings.SplitSeq(text, "\n") {
		if m := enhancedCode.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "1", "2", "3", "6", "10":
				return true
			}
			return false
		}
	}
	return false
}

var enhancedCode = regexp.MustCompile(`^5\.1\.(\d{1,3})\b`)

// explained is a failure to connect in the words of the server, or, for
// a sign-in none could be made (go-mail's own words name no cause), why.
func explained(err error) error {
	if errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) {
		return errNoSignIn
	}
	return unquoted(err)
}

// errNoSignIn: SMTP_URL has a user and password, and the server offers no
// way to sign in that sends them safely.
var errNoSignIn = errors.New("cannot sign in: the server offers no sign-in method to send SMTP_URL's password by, or offers it only without TLS " +
	"(a password is never sent unencrypted: use a server that offers STARTTLS, or smtps://)")

// unquoted writes a server's reply within err (a refused greeting, a failed
// AUTH) as the server said it, rather than quoted, as net/textproto does.
func unquoted(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return err
	}
	return errors.New(strings.Replace(err.Error(), te.Error(), fmt.Sprintf("%03d %s", te.Code, te.Msg), 1))
}

// MaxReply bounds the reply text a Result keeps, in bytes.
const MaxReply = 1000

// bounded makes s fit an attempt's response: valid UTF-8 (a server may
// answer in Latin-1, which PostgreSQL refuses, failing the chunk's whole
// write), and at most MaxReply bytes, cut on a character's boundary.
func bounded(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxReply {
		return s
	}
	cut := MaxReply - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func replyCode(reply string, def int) int {
	var code int
	if _, err := fmt.Sscanf(reply, "%d", &code); err == nil && code >= 200 && code < 600 {
		return code
	}
	return def
}
