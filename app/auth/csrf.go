package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// CSRF names: the layout puts the token in <meta name="csrf-token">, htmx
// sends it as a header, plain forms as a hidden field.
const (
	CSRFCookie = "rassylka_csrf"
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "_csrf"
	localCSRF  = "auth.csrf"

	localCSRFRenew = "auth.csrf-renew"
)

// CSRF is middleware for signed double-submit tokens: the token lives in an
// HttpOnly SameSite=Lax cookie and must come back, byte for byte, in the
// X-CSRF-Token header or the _csrf field of every state-changing request,
// which CheckCSRF checks. The token is signed with the session secret, so
// only tokens this site issued are accepted; on https the cookie is a
// __Host- cookie, which a sibling subdomain or a plain-http page cannot
// plant. Anonymous visitors need no server-side session.
//
// CSRF only issues the token and finds it for the pages; each
// state-changing route checks it, after routing, so that a request for a
// path or method the site does not have is told so (404, 405) whatever
// its token.
func CSRF(secret string, secure bool) fiber.Handler {
	cookie := CSRFCookieName(secure)
	key := []byte("csrf:" + secret)
	sign := func(nonce string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(nonce))
		return nonce + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	valid := func(token string) bool {
		nonce, _, ok := strings.Cut(token, ".")
		return ok && nonce != "" && hmac.Equal([]byte(sign(nonce)), []byte(token))
	}
	issue := func(c *fiber.Ctx) {
		token := sign(RandomString(24))
		c.Cookie(&fiber.Cookie{
			Name: cookie, Value: token, Path: "/",
			HTTPOnly: true, Secure: secure, SameSite: fiber.CookieSameSiteLaxMode,
		})
		c.Locals(localCSRF, token)
	}
	return func(c *fiber.Ctx) error {
		c.Locals(localCSRFRenew, issue)
		if token := c.Cookies(cookie); valid(token) {
			c.Locals(localCSRF, strings.Clone(token)) // out of Fiber's reused buffer
		} else {
			issue(c)
		}
		return c.Next()
	}
}

// RenewCSRF gives the browser a new token, for the pages from now on: a
// session begins or ends with one of its own, so that a token learned
// before (a planted cookie's, an anonymous page's) is worth nothing after.
func RenewCSRF(c *fiber.Ctx) {
	if issue, ok := c.Locals(localCSRFRenew).(func(*fiber.Ctx)); ok {
		issue(c)
	}
}

// CheckCSRF refuses a request that does not send back the token CSRF
// issued, in the X-CSRF-Token header or the _csrf field of the body (not
// the query: a token in a URL is kept by histories and logs). Every
// state-changing route starts with it.
func CheckCSRF(c *fiber.Ctx) error {
	token := CSRFToken(c)
	sent := c.Get(CSRFHeader)
	if sent == "" {
		sent = bodyValue(c, CSRFField)
	}
	if token == "" || sent == "" || !hmac.Equal([]byte(sent), []byte(token)) {
		return ErrCSRF
	}
	return c.Next()
}

// bodyValue is the form field key of the request's body, urlencoded or
// multipart ("" when it has none).
func bodyValue(c *fiber.Ctx, key string) string {
	if v := c.Request().PostArgs().Peek(key); len(v) > 0 {
		return string(v)
	}
	if f, err := c.MultipartForm(); err == nil && len(f.Value[key]) > 0 {
		return f.Value[key][0]
	}
	return ""
}

// ErrCSRF refuses a state-changing request without this site's token: a
// form from a page loaded before the token changed, or from another site.
var ErrCSRF = fiber.NewError(fiber.StatusForbidden, "invalid CSRF token")

// CSRFCookieName is the token cookie's name: __Host- prefixed on https.
func CSRFCookieName(secure bool) string { return HostCookie(CSRFCookie, secure) }

// HostCookie is a cookie's name, __Host- prefixed on https: the browser
// then takes it only from this host over https, for the whole site, so
// that neither a sibling subdomain nor a plain-http answer (a network
// attacker's) can plant it.
func HostCookie(name string, secure bool) string {
	if secure {
		return "__Host-" + name
	}
	return name
}

// CSRFToken is the request's token, for the layout and forms.
func CSRFToken(c *fiber.Ctx) string {
	t, _ := c.Locals(localCSRF).(string)
	return t
}
