package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
)

const (
	headerRequestID = "X-Request-ID"
	localRequestID  = "request_id"
)

// requestID gives every request an id: the incoming X-Request-ID when it is
// sane, a new random one otherwise. It is echoed in the response, in logs
// and on error pages.
func (s *Server) requestID(c *fiber.Ctx) error {
	id := c.Get(headerRequestID)
	if id == "" || len(id) > 64 || !printableASCII(id) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	} else {
		id = string([]byte(id)) // copy out of Fiber's reused buffer
	}
	c.Locals(localRequestID, id)
	c.Set(headerRequestID, id)
	return c.Next()
}

// RequestID returns the id of the request.
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Request bodies: the server streams them (see New), and bodyLimit
// refuses one larger than its route takes by its stated length, before
// the app reads it, so that a request claiming a large body costs the
// process nothing until it is sent, and then no more than its route
// allows.
const (
	// MaxFormBytes bounds a form's body: the largest, a mailing's form
	// with MaxRecipients ids, is about 1.3 MB.
	MaxFormBytes = 4 << 20
	// maxImportBody bounds an import's: the file (MaxImportBytes), the
	// form around it, and room to say how large a file too large is.
	maxImportBody = MaxImportBytes + 5<<20
	// readAhead is how much of a body the server reads with its headers
	// (fasthttp's, for a streamed body).
	readAhead = 8 << 10
)

// localTooLarge holds the stated length of an upload larger than its
// route takes, which the route refuses without reading it.
const localTooLarge = "web.too-large"

func (s *Server) bodyLimit(c *fiber.Ctx) error {
	req := c.Request()
	if ce := req.Header.ContentEncoding(); len(ce) > 0 && string(ce) != "identity" {
		// No browser compresses what it sends; a compressed body would
		// be unpacked past any bound.
		c.Context().SetConnectionClose()
		return fiber.ErrUnsupportedMediaType
	}
	n := req.Header.ContentLength()
	upload := c.Method() == fiber.MethodPost && c.Path() == importPath
	limit := MaxFormBytes
	if upload {
		limit = maxImportBody
	}
	switch {
	case n == -1:
		// A body sent in chunks says its length at its end only: it is
		// read here, up to a form's bound. No browser sends a form or a
		// file so; a mail provider's one-click unsubscribe, or a proxy
		// passing on an HTTP/2 request, may.
		body, err := io.ReadAll(io.LimitReader(req.BodyStream(), MaxFormBytes+1))
		if err != nil || len(body) > MaxFormBytes {
			c.Context().SetConnectionClose()
			if err != nil {
				return fiber.ErrBadRequest
			}
			return fiber.ErrRequestEntityTooLarge
		}
		req.SetBodyRaw(body)
	case n > limit && upload:
		// Refused by the import's route, unread, as its own page: the
		// session is not loaded yet here, and a page without it looked
		// signed out.
		c.Context().SetConnectionClose()
		c.Locals(localTooLarge, n)
	case n > limit:
		c.Context().SetConnectionClose()
		return fiber.ErrRequestEntityTooLarge
	case n > readAhead && !upload:
		// The server reads the first 8 KB of a body with its headers; a
		// form's rest is read here, as it arrives. A body cut short (a
		// tab closed, a connection dropped) would read as one ending
		// there: it is refused, not saved as far as it came.
		if len(req.Body()) != n {
			c.Context().SetConnectionClose()
			return fiber.ErrBadRequest
		}
	case n > readAhead:
		// An upload is read by its route, as a stream. What the route
		// left of it (the whole file, when it answered before reading
		// it: a sign-in page, a refusal) is read and dropped, however the
		// route ended: a connection closed under an upload is reset, and
		// the browser shows that instead of the answer; one kept open
		// would read the rest as the next request.
		defer func() {
			if !req.IsBodyStream() {
				return
			}
			if _, err := io.Copy(io.Discard, req.BodyStream()); err != nil {
				c.Context().SetConnectionClose()
			}
			_ = req.CloseBodyStream()
		}()
	}
	return c.Next()
}

// accessLog writes one line per request. Errors are logged by handleError.
func (s *Server) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Let the error handler write the response now, so the status is known.
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	s.log.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
		slog.String("request_id", RequestID(c)),
		slog.String("method", c.Method()),
		slog.String("path", logPath(c)),
		slog.Int("status", c.Response().StatusCode()),
		slog.Duration("duration", time.Since(start)),
	)
	return nil
}

// contentSecurityPolicy runs only the site's own script and style files:
// htmx and app.js need nothing inline (htmx's indicator style is turned
// off in the layout).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// queuesSecurityPolicy is the queue dashboard's: its page runs inline
// script and styles, and would fetch its fonts from Google (telling it of
// every manager who opens it); they are the system's instead.
const queuesSecurityPolicy = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// logPath is the request's path for the logs, with a mailed token
// (/confirm/:token, /password/reset/:token, /u/:token) left out: it is as
// good as a password for an hour or more, and stored only hashed.
func logPath(c *fiber.Ctx) string {
	p := c.Path()
	if t := c.Params("token"); t != "" {
		p = strings.Replace(p, t, "[token]", 1)
	}
	return p
}

// pageHeaders makes every dynamic answer private and revalidated; the asset
// handler overrides it for fingerprinted files.
func (s *Server) pageHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	if strings.HasPrefix(c.Path(), queuesPath) {
		c.Set(fiber.HeaderContentSecurityPolicy, queuesSecurityPolicy)
	} else {
		c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
	}
	if s.cfg.SecureCookies() {
		// BASE_URL is https: browsers come back on https only.
		c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	}
	return c.Next()
}

// etag lets browsers revalidate pages: a GET or HEAD answered 200 with
// HTML gets a weak ETag of its body and of who asked, and a request whose
// If-None-Match names it gets 304 with no body. The page is still rendered
// (it is the cheap part next to its queries, and the only exact test of
// "unchanged"), but not sent. Mixing in the user keeps one user's tag from
// ever matching another's page; Vary keeps htmx fragments and full pages
// of one URL apart in the browser's cache.
func (s *Server) etag(c *fiber.Ctx) error {
	if err := c.Next(); err != nil {
		return err
	}
	if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead {
		return nil
	}
	res := c.Response()
	if res.StatusCode() != fiber.StatusOK || res.IsBodyStream() ||
		!strings.HasPrefix(string(res.Header.ContentType()), fiber.MIMETextHTML) {
		return nil
	}
	h := sha256.New()
	if u := auth.CurrentUser(c); u != nil {
		h.Write([]byte(strconv.FormatInt(u.ID, 10)))
	}
	h.Write([]byte{0})
	h.Write(res.Body())
	tag := `W/"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
	c.Set(fiber.HeaderETag, tag)
	c.Vary("HX-Request", "HX-History-Restore-Request", fiber.HeaderCookie)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), tag) {
		c.Status(fiber.StatusNotModified)
		res.ResetBody()
	}
	return nil
}

// etagMatches reports whether an If-None-Match header names tag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(tag, "W/") {
			return true
		}
	}
	return false
}

// clientIP is the address a request comes from, for throttling. Behind
// trusted proxies it is the rightmost address of the proxy header that is
// not a trusted proxy: proxies append the peer they saw, so every entry to
// its left is whatever the client chose to send (Fiber's c.IP() takes the
// leftmost one).
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP().String()
	if s.cfg.ProxyHeader == "" || !c.IsProxyTrusted() {
		return peer
	}
	// Every line of the header, in order: a proxy may append the peer as
	// a line of its own (HAProxy) rather than to the client's line, and
	// c.Get gives only the first line, the client's.
	var lines []string
	for _, v := range c.Request().Header.PeekAll(s.cfg.ProxyHeader) {
		lines = append(lines, string(v))
	}
	hops := strings.Split(strings.Join(lines, ","), ",")
	ip := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // not written by a proxy of ours: keep the last hop we trust
		}
		ip = a.Unmap().String()
		if !s.trustedProxy(a) {
			break
		}
	}
	return ip
}

// clientKey is what the throttles count a request's client by: its
// address (clientIP), or for IPv6 the /64 network of it. An IPv6 host is
// given a whole /64 (its privacy addresses rotate inside it, and it may
// take any address there), so counting single addresses would give a
// guesser a fresh count per guess.
func (s *Server) clientKey(c *fiber.Ctx) string {
	ip := s.clientIP(c)
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Unmap().Is6() {
		return "ip:" + ip
	}
	return "net:" + netip.PrefixFrom(a.Unmap(), 64).Masked().String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseProxies reads TRUSTED_PROXIES (IPs or CIDRs, checked by config).
func parseProxies(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range list {
		if pr, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pr.Masked())
		} else if a, err := netip.ParseAddr(p); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// throttleAccountForm counts a sign-up, reset or confirmation request of
// the client's address and, over the limit, says why it is refused, for
// the form to show again with what was typed (429): each one can cost a
// password hash and queue a mail to an address of the sender's choice.
// The answer does not depend on the address typed, so it tells nothing
// about accounts.
func (s *Server) throttleAccountForm(c *fiber.Ctx) (string, error) {
	wait, err := take(c, s.formLimit, s.clientKey(c))
	if err != nil || wait == 0 {
		return "", err
	}
	return fmt.Sprintf("Too many requests from your network in the last hour. Please try again in %s.", minutes(wait)), nil
}

// take counts a request under limit for each key. Over the limit it sets
// Retry-After and returns how long the block lasts (0: go on).
func take(c *fiber.Ctx, limit *auth.Limiter, keys ...string) (time.Duration, error) {
	blocked, wait, err := limit.TakeWait(c.UserContext(), keys...)
	if err != nil || !blocked {
		return 0, err
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds())))
	return max(wait, time.Second), nil
}
