package web

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// healthz answers 200 while the process serves requests.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.Type("txt").SendString("ok\n")
}

// readyz answers 200 when PostgreSQL and Redis answer, 503 naming what is
// down otherwise.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	var down []string
	if err := s.store.Ping(ctx); err != nil {
		down = append(down, "postgres")
	}
	if err := s.redis.Ping(ctx).Err(); err != nil {
		down = append(down, "redis")
	}
	c.Type("txt")
	if len(down) > 0 {
		return c.Status(fiber.StatusServiceUnavailable).SendString("unavailable: " + strings.Join(down, ", ") + "\n")
	}
	return c.SendString("ready\n")
}
