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

// readyz answers 200 when PostgreSQL and Redis answer and the schema has
// every migration, 503 naming what is wrong otherwise (a schema rolled
// back under a running server fails every page).
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	var down []string
	if err := s.store.Ping(ctx); err != nil {
		down = append(down, "postgres")
	} else if err := s.store.SchemaCurrent(ctx); err != nil {
		down = append(down, "schema (run `web migrate up`)")
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
