package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
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
	if c.Cookies(s.cookieName(flashCookie)) == "" {
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
// signed with its time limit, and its cookie named __Host- on https: a
// cookie set by anyone else (another site of the domain, a plain-http
// answer, a note of the site's kept past its time) puts no words in the
// site's pages.
func (s *Server) setNote(c *fiber.Ctx, name, value string, until time.Time) {
	v := ""
	if value != "" {
		exp := strconv.FormatInt(until.Unix(), 10)
		v = base64.RawURLEncoding.EncodeToString([]byte(value)) + "." + exp + "." + s.noteMAC(name, exp, value)
	}
	c.Cookie(&fiber.Cookie{
		Name:     s.cookieName(name),
		Value:    v,
		Path:     "/",
		Expires:  until,
		HTTPOnly: true,
		Secure:   s.cfg.SecureCookies(),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// note reads the note of setNote; ok is false when there is none, its
// time is up, or its signature is not the site's.
func (s *Server) note(c *fiber.Ctx, name string) (value string, ok bool) {
	parts := strings.Split(c.Cookies(s.cookieName(name)), ".")
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	exp, expErr := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || expErr != nil || len(b) == 0 || time.Now().Unix() >= exp ||
		!hmac.Equal([]byte(parts[2]), []byte(s.noteMAC(name, parts[1], string(b)))) {
		return "", false
	}
	return string(b), true
}

// cookieName is the name of the site's cookie name: __Host- prefixed on
// https (auth.HostCookie).
func (s *Server) cookieName(name string) string { return auth.HostCookie(name, s.cfg.SecureCookies()) }

// noteMAC signs a note's value for the cookie name, until exp.
func (s *Server) noteMAC(name, exp, value string) string {
	m := hmac.New(sha256.New, []byte("note:"+s.cfg.SessionSecret))
	m.Write([]byte(name + "\x00" + exp + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
