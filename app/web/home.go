package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/store"
	"rassylka/views/home"
)

// dashboardDays is the range of the dashboard's small chart.
const dashboardDays = 7

// home is the landing page for visitors and the dashboard once signed in:
// the user's counts, headline figures and the last week's chart, from the
// statistics cache.
func (s *Server) home(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	if u == nil {
		return render(c, fiber.StatusOK, home.Landing(s.page(c, "")))
	}
	ov, err := s.stats.Overview(c.UserContext(), store.Own(u.ID), dashboardDays, userLocation(u))
	if err != nil {
		return err
	}
	p := s.page(c, "Dashboard")
	return render(c, fiber.StatusOK, home.Dashboard(p, home.DashboardView{Name: p.Viewer.Name,
		Figures: figures(ov.Figures), Days: chartDays(ov.Days)}))
}
