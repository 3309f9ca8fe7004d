package web

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/views/mailings"
	vstats "rassylka/views/stats"
)

// statsPage shows the statistics of the signed-in user, or for a manager
// who asks with ?scope=all, of everyone (?owner= narrows it to one user).
// ?range= is the chart's range in days; paging the per-mailing table
// (?page=) or the per-user one (?upage=) with htmx reads and swaps just
// that table.
func (s *Server) statsPage(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	ctx := c.UserContext()
	sc, all := listScope(c)
	ownerEmail, err := s.ownerFilter(c, sc, all)
	if err != nil {
		return err
	}
	v := vstats.View{OwnerEmail: ownerEmail, Manager: u.IsManager(), ScopeAll: all, MineURL: "/stats", AllURL: "/stats?scope=all"}
	everyone := all && sc.Owner == 0
	target := ""
	if isHTMX(c) {
		target = c.Get("HX-Target")
	}
	if target == "" || target == "stats-mailings" {
		if err := s.statsMailings(c, sc, u, &v); err != nil {
			return err
		}
		if target != "" {
			return render(c, fiber.StatusOK, vstats.MailingsTable(v))
		}
	}
	if everyone && (target == "" || target == "stats-users") {
		if err := s.statsUsers(c, &v); err != nil {
			return err
		}
		if target != "" {
			return render(c, fiber.StatusOK, vstats.UsersTable(v))
		}
	}

	days, _ := strconv.Atoi(c.Query("range"))
	v.Range = stats.ValidRange(days)
	ov, err := s.stats.Overview(ctx, sc, v.Range, userLocation(u))
	if err != nil {
		return err
	}
	v.Figures, v.Days = figures(ov.Figures), chartDays(ov.Days)
	for _, r := range stats.Ranges {
		value := strconv.Itoa(r)
		if r == stats.DefaultRange {
			value = ""
		}
		link := linkWith(c, "/stats", "range", value, "page", "upage")
		v.Ranges = append(v.Ranges, vstats.RangeLink{Days: r, URL: link, Current: r == v.Range})
	}
	return render(c, fiber.StatusOK, vstats.Page(s.page(c, "Statistics"), v))
}

// statsMailings fills the per-mailing table (?page=).
func (s *Server) statsMailings(c *fiber.Ctx, sc store.Scope, u *model.User, v *vstats.View) error {
	mp, err := s.stats.Mailings(c.UserContext(), sc, pageNumber(c))
	if err != nil {
		return err
	}
	for _, m := range mp.Rows {
		row := vstats.MailingRow{URL: mailings.URL(m.ID), Subject: m.Subject, Owner: m.OwnerEmail,
			Status: m.Status, Runs: m.Runs, Sent: m.Succeeded, Failed: m.Failed}
		if m.Disabled {
			row.Status = "disabled"
		}
		if m.LastRun != nil {
			row.LastRun = formatTime(*m.LastRun, u.TimeZone)
		}
		v.Mailings = append(v.Mailings, row)
	}
	v.MailingsPager = pager(c, "/stats", mp.Page, "mailings", "stats-mailings")
	return nil
}

// statsUsers fills the managers' per-user table (?upage=).
func (s *Server) statsUsers(c *fiber.Ctx, v *vstats.View) error {
	n, _ := strconv.Atoi(c.Query("upage"))
	up, err := s.stats.Users(c.UserContext(), store.NewPage(n, perPage))
	if err != nil {
		return err
	}
	for _, r := range up.Rows {
		v.Users = append(v.Users, vstats.UserRow{URL: "/stats?scope=all&owner=" + strconv.FormatInt(r.ID, 10),
			Email: r.Email, Name: r.FullName, Mailings: r.Mailings, Sent: r.Succeeded, Failed: r.Failed})
	}
	v.UsersPager = pagerOf(c, "/stats", "upage", up.Page, "users", "stats-users")
	return nil
}

func figures(f store.Figures) vstats.Figures {
	return vstats.Figures{Sent: f.Succeeded, Failed: f.Failed, Clients: f.Clients, Unsubscribed: f.Unsubscribed,
		Bounced: f.Bounced, Messages: f.Messages, Created: f.Created, Running: f.Running, Finished: f.Finished, Disabled: f.Disabled}
}

func chartDays(ds []store.DayCount) []vstats.Day {
	out := make([]vstats.Day, len(ds))
	for i, d := range ds {
		out[i] = vstats.Day{Date: d.Day, Succeeded: d.Succeeded, Failed: d.Failed}
	}
	return out
}

// invalidateStats marks the signed-in user's statistics as stale after
// every state-changing request that succeeded: whatever it changed (a
// client, a mailing, a run), the next statistics page is computed afresh.
func (s *Server) invalidateStats(c *fiber.Ctx) error {
	err := c.Next()
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return err
	}
	if u := auth.CurrentUser(c); u != nil && err == nil && c.Response().StatusCode() < 400 {
		s.stats.Changed(c.UserContext(), u.ID)
	}
	return err
}
