package web

import (
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
// went to) in a cookie until until; a past until clears it.
func (s *Server) setNote(c *fiber.Ctx, name, value string, until time.Time) {
	c.Cookie(&fiber.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(value)),
		Path:     "/",
		Expires:  until,
		HTTPOnly: true,
		Secure:   s.cfg.SecureCookies(),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// note reads the note of setNote; ok is false when there is none.
func (s *Server) note(c *fiber.Ctx, name string) (value string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c.Cookies(name))
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}
