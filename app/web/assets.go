package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/assets"
)

const assetsRoute = assets.Prefix + "*"

// asset serves a fingerprinted file: its name changes with its content, so
// browsers may keep it forever.
func (s *Server) asset(c *fiber.Ctx) error {
	f, ok := assets.Lookup(c.Params("*"))
	if !ok {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	c.Set(fiber.HeaderContentType, f.ContentType)
	c.Set(fiber.HeaderETag, f.ETag)
	if c.Get(fiber.HeaderIfNoneMatch) == f.ETag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(f.Body)
}
