// Package web is the HTTP face of Rassylka: the Fiber app, the route table
// (routes.go), middleware, the one error handler, and a file per resource.
// Handlers parse, validate, call app/store or a domain package, and render
// views; they never talk SMTP (mail goes through app/task).
package web

import (
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/config"
	"rassylka/app/store"
)

// Deps is everything the web app is built from, wired in cmd/web.
type Deps struct {
	Config config.Config
	Store  *store.Store
	Redis  redis.UniversalClient
	Queue  *asynq.Client
	Log    *slog.Logger
}

// Server holds the dependencies shared by the handlers.
type Server struct {
	cfg   config.Config
	store *store.Store
	redis redis.UniversalClient
	queue *asynq.Client
	log   *slog.Logger
}

// New builds the Fiber app with every route mounted.
func New(d Deps) *fiber.App {
	s := &Server{cfg: d.Config, store: d.Store, redis: d.Redis, queue: d.Queue, log: d.Log}
	app := fiber.New(fiber.Config{
		AppName:               "rassylka",
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		BodyLimit:             25 << 20, // CSV imports are refused above 20 MB with a message
		// Behind a proxy, set the proxy's header in a later setting; locally
		// the peer address is the client.
	})
	app.Use(s.requestID, s.accessLog, recover.New(), s.pageHeaders)
	s.routes(app)
	return app
}
