package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/views/home"
)

// home is the landing page for visitors and the dashboard once signed in.
func (s *Server) home(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	if u == nil {
		return render(c, fiber.StatusOK, home.Landing(s.page(c, "")))
	}
	counts, err := s.store.CountsOf(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	p := s.page(c, "Dashboard")
	return render(c, fiber.StatusOK, home.Dashboard(p, home.DashboardView{Name: p.Viewer.Name,
		Clients: counts.Clients, Messages: counts.Messages,
		Created: counts.Created, Running: counts.Running, Finished: counts.Finished, Disabled: counts.Disabled}))
}
