package web

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/views/layout"
	"rassylka/views/users"
)

func userRow(c *fiber.Ctx, u *model.User, clients, mailings int, viewer *model.User) users.Row {
	return users.Row{
		ID: u.ID, Email: u.Email, Name: u.FullName, SenderName: u.SenderName, ReplyTo: u.ReplyTo, Manager: u.IsManager(), Confirmed: u.EmailConfirmedAt != nil,
		Blocked: u.Blocked(), Clients: clients, Mailings: mailings, Joined: formatDate(u.CreatedAt, viewer.TimeZone),
		CanBlock: u.ID != viewer.ID && (!u.IsManager() || u.Blocked()), // a blocked manager can only be unblocked
		CSRF:     auth.CSRFToken(c),
	}
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	viewer := auth.CurrentUser(c)
	q := c.Query("q")
	rows, page, err := s.store.ListUsers(c.UserContext(), q, pageNumber(c))
	if err != nil {
		return err
	}
	v := users.ListView{Q: q, Pager: pager(c, "/users", page, "users", users.ListID)}
	for i := range rows {
		v.Rows = append(v.Rows, userRow(c, &rows[i].User, rows[i].Clients, rows[i].Mailings, viewer))
	}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, users.List(v))
	}
	return render(c, fiber.StatusOK, users.Page(s.page(c, "Users"), v))
}

// setBlocked blocks or unblocks a user (never a manager, never oneself).
// Blocking also ends every open session of the user at once.
func (s *Server) setBlocked(blocked bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		viewer := auth.CurrentUser(c)
		id, err := pathID(c)
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		if !blocked {
			// Sends that came due while the owner was blocked are not
			// made all at once, late, on unblocking (see SkipMissed).
			if err := s.sending.SkipMissedOf(ctx, id); err != nil {
				return fmt.Errorf("skip missed sends: %w", err)
			}
		}
		u, err := s.store.SetBlocked(ctx, viewer.ID, id, blocked)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fiber.ErrNotFound
		case errors.Is(err, store.ErrNotBlockable) && u.ID == viewer.ID:
			return refusal{fiber.StatusForbidden, "You cannot block or unblock yourself."}
		case errors.Is(err, store.ErrNotBlockable):
			return refusal{fiber.StatusForbidden, "Managers cannot be blocked."}
		case err != nil:
			return fmt.Errorf("set blocked: %w", err)
		}
		if blocked {
			if err := s.sessions.EndAllBecause(ctx, u.ID, "blocked"); err != nil {
				return err
			}
			// A move to another address asked for before ends too: it
			// would otherwise go through once the user is unblocked.
			if err := s.accounts.CancelEmailChange(ctx, u.ID); err != nil {
				return err
			}
		}
		if isHTMX(c) {
			row, err := s.userRowByID(c, u)
			if err != nil {
				return err
			}
			return render(c, fiber.StatusOK, users.RowView(row))
		}
		if blocked {
			s.setFlash(c, layout.FlashSuccess, u.Email+" is blocked.")
		} else {
			s.setFlash(c, layout.FlashSuccess, u.Email+" is unblocked.")
		}
		return redirect(c, "/users")
	}
}

func (s *Server) userRowByID(c *fiber.Ctx, u *model.User) (users.Row, error) {
	f, err := s.store.StatsFigures(c.UserContext(), store.Own(u.ID))
	if err != nil {
		return users.Row{}, err
	}
	mailings := f.Created + f.Running + f.Finished + f.Disabled
	return userRow(c, u, int(f.Clients), int(mailings), auth.CurrentUser(c)), nil
}
