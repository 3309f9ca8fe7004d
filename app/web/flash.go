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
	c.Cookie(&fiber.Cookie{
		Name:     flashCookie,
		Value:    base64.RawURLEncoding.EncodeToString([]byte(string(kind) + "\x00" + text)),
		Path:     "/",
		Expires:  time.Now().Add(5 * time.Minute),
		HTTPOnly: true,
		Secure:   s.cfg.SecureCookies(),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// takeFlash reads and clears the pending message.
func (s *Server) takeFlash(c *fiber.Ctx) []layout.Flash {
	raw := c.Cookies(flashCookie)
	if raw == "" {
		return nil
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Path: "/", Expires: time.Unix(0, 0), HTTPOnly: true,
		Secure: s.cfg.SecureCookies(), SameSite: fiber.CookieSameSiteLaxMode})
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil
	}
	kind, text, ok := strings.Cut(string(b), "\x00")
	if !ok || text == "" || len(text) > 500 {
		return nil
	}
	switch k := layout.FlashKind(kind); k {
	case layout.FlashInfo, layout.FlashSuccess, layout.FlashError:
		return []layout.Flash{{Kind: k, Text: text}}
	}
	return nil
}
