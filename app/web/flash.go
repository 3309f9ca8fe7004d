package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/views/layout"
)

const flashCookie = "rassylka_flash"

// setFlash leaves a one-time message for the next page the browser shows
// (after a redirect). It rides in a short-lived cookie, so anonymous
// visitors need no server-side session.
func (s *Server) setFlash(c *fiber.Ctx, kind layout.FlashKind, text string) {
	s.setNote(c, flashCookie, string(kind)+"\x00"+text, time.Now().Add(5*time.Minute))
}

// takeFlash reads and clears the pending message.
func (s *Server) takeFlash(c *fiber.Ctx) []layout.Flash {
	if c.Cookies(flashCookie) == "" {
		return nil
	}
	b, ok := s.note(c, flashCookie)
	s.setNote(c, flashCookie, "", time.Unix(0, 0))
	if !ok {
		return nil
	}
	kind, text, ok := strings.Cut(b, "\x00")
	if !ok || text == "" || len(text) > 500 {
		return nil
	}
	switch k := layout.FlashKind(kind); k {
	case layout.FlashInfo, layout.FlashSuccess, layout.FlashError:
		return []layout.Flash{{Kind: k, Text: text}}
	}
	return nil
}

// setNote keeps a short note of this browser's (a flash, an address a link
// went to) in a cookie until until; a past until clears it. The note is
// signed: a cookie set by anyone else (another site of the domain, a
// plain-http answer) does not put words in the site's pages.
func (s *Server) setNote(c *fiber.Ctx, name, value string, until time.Time) {
	v := ""
	if value != "" {
		v = base64.RawURLEncoding.EncodeToString([]byte(value)) + "." + s.noteMAC(name, value)
	}
	c.Cookie(&fiber.Cookie{
		Name:     name,
		Value:    v,
		Path:     "/",
		Expires:  until,
		HTTPOnly: true,
		Secure:   s.cfg.SecureCookies(),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// note reads the note of setNote; ok is false when there is none, or its
// signature is not the site's.
func (s *Server) note(c *fiber.Ctx, name string) (value string, ok bool) {
	enc, mac, found := strings.Cut(c.Cookies(name), ".")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if !found || err != nil || len(b) == 0 || !hmac.Equal([]byte(mac), []byte(s.noteMAC(name, string(b)))) {
		return "", false
	}
	return string(b), true
}

// noteMAC signs a note's value for the cookie name.
func (s *Server) noteMAC(name, value string) string {
	m := hmac.New(sha256.New, []byte("note:"+s.cfg.SessionSecret))
	m.Write([]byte(name + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
