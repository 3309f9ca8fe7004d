package web

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/stats"
	"rassylka/app/store"
	vstats "rassylka/views/stats"
)

// statsPage shows the statistics of the signed-in user, or for a manager
// who asks with ?scope=all, of everyone (?owner= narrows it to one user).
// ?range= is the chart's range in days; paging the per-mailing table
// (?page=) or the per-user one (?upage=) with htmx swaps just that table.
func (s *Server) statsPage(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	ctx := c.UserContext()
	sc, all := listScope(c)
	days, _ := strconv.Atoi(c.Query("range"))
	days = stats.ValidRange(days)
	loc := userLocation(u)

	v := vstats.View{Range: days, Manager: u.IsManager(), ScopeAll: all, MineURL: "/stats", AllURL: "/stats?scope=all"}
	if all && sc.Owner != 0 {
		owner, err := s.store.UserByID(ctx, sc.Owner)
		if errors.Is(err, store.ErrNotFound) {
			return fiber.ErrNotFound
		}
		if err != nil {
			return err
		}
		v.OwnerEmail = owner.Email
	}
	mp, err := s.stats.Mailings(ctx, sc, pageNumber(c))
	if err != nil {
		return err
	}
	for _, m := range mp.Rows {
		row := vstats.MailingRow{URL: "/mailings/" + strconv.FormatInt(m.ID, 10), Subject: m.Subject, Owner: m.OwnerEmail,
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
	if all && sc.Owner == 0 {
		n, _ := strconv.Atoi(c.Query("upage"))
		up, err := s.stats.Users(ctx, store.NewPage(n, perPage))
		if err != nil {
			return err
		}
		for _, r := range up.Rows {
			v.Users = append(v.Users, vstats.UserRow{URL: "/stats?scope=all&owner=" + strconv.FormatInt(r.ID, 10),
				Email: r.Email, Name: r.FullName, Mailings: r.Mailings, Sent: r.Succeeded, Failed: r.Failed})
		}
		v.UsersPager = pagerOf(c, "/stats", "upage", up.Page, "users", "stats-users")
	}
	if isHTMX(c) {
		switch c.Get("HX-Target") {
		case "stats-mailings":
			return render(c, fiber.StatusOK, vstats.MailingsTable(v))
		case "stats-users":
			return render(c, fiber.StatusOK, vstats.UsersTable(v))
		}
	}

	ov, err := s.stats.Overview(ctx, sc, days, loc)
	if err != nil {
		return err
	}
	v.Figures, v.Days = figures(ov.Figures), chartDays(ov.Days)
	for _, r := range stats.Ranges {
		q := url.Values{}
		for k, val := range c.Queries() {
			if k != "range" && k != "page" && k != "upage" {
				q.Set(k, val)
			}
		}
		if r != stats.DefaultRange {
			q.Set("range", strconv.Itoa(r))
		}
		link := "/stats"
		if enc := q.Encode(); enc != "" {
			link += "?" + enc
		}
		v.Ranges = append(v.Ranges, vstats.RangeLink{Days: r, URL: link, Current: r == days})
	}
	return render(c, fiber.StatusOK, vstats.Page(s.page(c, "Statistics"), v))
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

// statsChanged marks the statistics of the owners as stale (their data
// changed); the site's figures go with them.
func (s *Server) statsChanged(ctx context.Context, ownerIDs ...int64) {
	s.stats.Changed(ctx, ownerIDs...)
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
		s.statsChanged(c.UserContext(), u.ID)
	}
	return err
}
