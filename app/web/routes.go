package web

import "github.com/gofiber/fiber/v2"

// routes is the whole route table of the web app.
func (s *Server) routes(app *fiber.App) {
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get(assetsRoute, s.asset)

	app.Get("/", s.home)
}
