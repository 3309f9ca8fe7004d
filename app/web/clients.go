package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/web/form"
	"rassylka/views/clients"
	"rassylka/views/component"
	"rassylka/views/layout"
	"rassylka/views/mailings"
)

func clientRow(r *store.ClientRow, viewer *model.User) clients.Row {
	return clients.Row{
		ID: r.ID, Email: r.Email, FullName: r.FullName, Comment: r.Comment,
		OwnerEmail: r.OwnerEmail, OwnerURL: "/clients?scope=all&owner=" + strconv.FormatInt(r.OwnerID, 10),
		Unsubscribed: r.UnsubscribedAt != nil, Bounced: r.BouncedAt != nil,
		Editable: r.OwnerID == viewer.ID,
	}
}

func (s *Server) listClients(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	sc, all := listScope(c)
	ownerEmail, err := s.ownerFilter(c, sc, all)
	if err != nil {
		return err
	}
	q := c.Query("q")
	chosen, filters := chosenFilter(c, "/clients", "state", stateFilters)
	state := store.ClientState(chosen)
	rows, page, err := s.store.ListClients(c.UserContext(), sc, state, q, pageNumber(c))
	if err != nil {
		return err
	}
	v := clients.ListView{Q: q, State: chosen, Filters: filters, AllUsers: all, Manager: u.IsManager(), CanCreate: true,
		Pager: pager(c, "/clients", page, "clients", clients.ListID), URL: listURL(c, "/clients")}
	if !all && (chosen != "" || strings.TrimSpace(q) != "") {
		v.ExportURL = linkWith(c, "/clients/export.csv", "", "", "page")
	}
	if state == store.ClientsBounced && !all && q == "" {
		v.Bounced, v.CSRF = page.Total, auth.CSRFToken(c)
	}
	for i := range rows {
		v.Rows = append(v.Rows, clientRow(&rows[i], u))
	}
	if ownerEmail != "" {
		v.Owner, v.OwnerEmail = sc.Owner, ownerEmail
	}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, clients.List(v))
	}
	if !all {
		v.Importing = s.importUnderWay(c.UserContext(), u.ID)
	}
	return render(c, fiber.StatusOK, clients.Page(s.page(c, "Clients"), v))
}

// stateFilters narrow the clients list to those a run skips.
var stateFilters = []filterChoice{
	{"", "All"}, {string(store.ClientsUnsubscribed), "Unsubscribed"}, {string(store.ClientsBounced), "Bounced"},
}

// clearBounces clears the hard bounce of every client of the user: after
// a mail server's outage that refused good addresses, or once the
// addresses are corrected.
func (s *Server) clearBounces(c *fiber.Ctx) error {
	n, err := s.store.ClearBounces(c.UserContext(), auth.UserID(c))
	if err != nil {
		return err
	}
	if n == 0 {
		s.setFlash(c, layout.FlashInfo, "No client has a bounce to clear.")
	} else {
		s.setFlash(c, layout.FlashSuccess, "The bounces of "+component.Counted(n, "client", "clients")+" are cleared; they get mailings again.")
	}
	return redirect(c, "/clients?state="+string(store.ClientsBounced))
}

func (s *Server) newClient(c *fiber.Ctx) error {
	if isHTMX(c) {
		return render(c, fiber.StatusOK, clients.NewForm(auth.CSRFToken(c), clients.Form{}, ""))
	}
	return render(c, fiber.StatusOK, clients.NewPage(s.page(c, "Add a client"), clients.Form{}))
}

func clientForm(id int64, f form.Client, errs form.Errors) clients.Form {
	return clients.Form{ID: id, Email: f.Email, FullName: f.FullName, Comment: f.Comment, Version: f.Version, Errors: errs}
}

const duplicateEmail = "This address is already in your list."

func (s *Server) createClient(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	var f form.Client
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	errs := f.Validate()
	var cl *model.Client
	if !errs.Any() {
		cl = f.Model(u.ID)
		err := s.store.CreateClient(c.UserContext(), cl)
		if errors.Is(err, store.ErrConflict) {
			errs = form.FieldErr("email", duplicateEmail)
		} else if err != nil {
			return fmt.Errorf("create client: %w", err)
		}
	}
	if errs.Any() {
		if isHTMX(c) {
			return render(c, fiber.StatusUnprocessableEntity, clients.NewForm(auth.CSRFToken(c), clientForm(0, f, errs), ""))
		}
		return render(c, fiber.StatusUnprocessableEntity, clients.NewPage(s.page(c, "Add a client"), clientForm(0, f, errs)))
	}
	if isHTMX(c) {
		// A fresh form for the next client; the list reloads as shown, so
		// that the first client replaces "No clients yet" and the count
		// follows.
		c.Set("HX-Trigger", component.ListChanged)
		return render(c, fiber.StatusOK, clients.NewForm(auth.CSRFToken(c), clients.Form{}, added(cl, u.TimeZone)))
	}
	s.setFlash(c, layout.FlashSuccess, added(cl, u.TimeZone))
	return redirect(c, clients.URL(cl.ID))
}

// added says that cl was added, and when its address had unsubscribed
// before (as a client since deleted), that it stays unsubscribed.
func added(cl *model.Client, zone string) string {
	if cl.UnsubscribedAt == nil {
		return cl.Email + " was added."
	}
	return cl.Email + " was added as unsubscribed: this address unsubscribed from your mailings on " +
		formatDate(*cl.UnsubscribedAt, zone) + ", and gets none unless it subscribes again from the link in a mail."
}

func (s *Server) showClient(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.store.ClientByID(c.UserContext(), readScope(u), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	row := clientRow(r, u)
	paging := isHTMX(c) && c.Get("HX-Target") == clients.MailsID
	if isHTMX(c) && !paging {
		return render(c, fiber.StatusOK, clients.RowView(row, false))
	}
	v := clients.ShowView{Row: row, Created: formatTime(r.CreatedAt, u.TimeZone), Updated: formatTime(r.UpdatedAt, u.TimeZone)}
	mails, page, err := s.store.MailsOfClient(c.UserContext(), r.ID, pageNumber(c))
	if err != nil {
		return err
	}
	v.MailsPager = pager(c, clients.URL(r.ID), page, "mails", clients.MailsID)
	for _, m := range mails {
		// The subject as this client got it (its text now, filled in).
		v.Mails = append(v.Mails, clients.Mail{At: formatTime(m.AttemptedAt, u.TimeZone), Subject: mail.Personalize(m.Subject, r.FullName, m.Email),
			MailingURL: mailings.URL(m.MailingID), Email: m.Email, Status: string(m.Status), Response: m.Response, Tries: m.Tries})
	}
	if paging {
		return render(c, fiber.StatusOK, clients.Mails(v))
	}
	if r.UnsubscribedAt != nil {
		v.Unsubscribed = formatTime(*r.UnsubscribedAt, u.TimeZone)
	}
	if r.BouncedAt != nil {
		v.Bounced = formatTime(*r.BouncedAt, u.TimeZone)
	}
	return render(c, fiber.StatusOK, clients.Show(s.page(c, "Client "+r.Email), v))
}

func (s *Server) editClient(c *fiber.Ctx) error {
	r, err := own(c, s.store.ClientByID)
	if err != nil {
		return err
	}
	f := clients.Form{ID: r.ID, Email: r.Email, FullName: r.FullName, Comment: r.Comment, Version: form.VersionOf(r.UpdatedAt)}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, clients.EditRow(f, false))
	}
	return render(c, fiber.StatusOK, clients.EditPage(s.page(c, "Edit client"), f))
}

func (s *Server) updateClient(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	r, err := own(c, s.store.ClientByID)
	if err != nil {
		return err
	}
	var f form.Client
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	errs := f.Validate()
	changed := ""
	wasSubscribed := r.UnsubscribedAt == nil
	if !errs.Any() {
		cl := f.Model(u.ID)
		cl.ID, cl.UpdatedAt = r.ID, form.Version(f.Version)
		err := s.store.UpdateClient(c.UserContext(), u.ID, cl)
		switch {
		case errors.Is(err, store.ErrChanged):
			f.Version, changed = form.VersionOf(cl.UpdatedAt), changedSince("client")
		case errors.Is(err, store.ErrConflict):
			errs = form.FieldErr("email", duplicateEmail)
		case errors.Is(err, store.ErrNotFound):
			return fiber.ErrNotFound
		case err != nil:
			return fmt.Errorf("update client: %w", err)
		default:
			r.Client = *cl
		}
	}
	if errs.Any() || changed != "" {
		cf := clientForm(r.ID, f, errs)
		cf.Error = changed
		if isHTMX(c) {
			return render(c, fiber.StatusUnprocessableEntity, clients.EditRow(cf, false))
		}
		return render(c, fiber.StatusUnprocessableEntity, clients.EditPage(s.page(c, "Edit client"), cf))
	}
	// The new address had unsubscribed (from a client since deleted): said,
	// in the row too, whose mark would change without a word.
	var unsubscribed string
	if wasSubscribed && r.UnsubscribedAt != nil {
		unsubscribed = "Client saved, unsubscribed: " + r.Email + " unsubscribed from your mailings on " +
			formatDate(*r.UnsubscribedAt, u.TimeZone) + ", and gets none unless it subscribes again from the link in a mail."
	}
	if isHTMX(c) {
		if unsubscribed != "" {
			if err := trigger(c, map[string]string{component.Flash: unsubscribed}); err != nil {
				return err
			}
		}
		return render(c, fiber.StatusOK, clients.RowView(clientRow(r, u), false))
	}
	s.setFlash(c, layout.FlashSuccess, cmp.Or(unsubscribed, "Client saved."))
	return redirect(c, clients.URL(r.ID))
}

func (s *Server) deleteClient(c *fiber.Ctx) error {
	return s.deleteOwned(c, s.store.DeleteClient, "Client deleted.", "/clients")
}

// deleteOwned deletes one of the viewer's objects with del: someone else's
// id is not found. htmx's DELETE gets an empty answer that removes the
// row; a plain form goes back to the list.
func (s *Server) deleteOwned(c *fiber.Ctx, del func(ctx context.Context, ownerID, id int64) error, done, list string) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = del(c.UserContext(), auth.UserID(c), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", list, err)
	}
	if isHTMX(c) && c.Method() == fiber.MethodDelete {
		return rowRemoved(c, done)
	}
	s.setFlash(c, layout.FlashSuccess, done)
	return redirect(c, list)
}

// rowRemoved answers an htmx delete of a list's row: the empty answer
// replaces the row, the list reloads (its count, or its empty state
// after the last row), and the page says done, as a page loaded after a
// plain form's delete does (the row went without a word).
func rowRemoved(c *fiber.Ctx, done string) error {
	if err := trigger(c, map[string]string{component.ListChanged: "", component.Flash: done}); err != nil {
		return err
	}
	return c.Status(fiber.StatusOK).SendString("")
}

// trigger has htmx fire the page's events (by name, with their values)
// once the answer is swapped in.
func trigger(c *fiber.Ctx, events map[string]string) error {
	b, err := json.Marshal(events)
	if err != nil {
		return err
	}
	c.Set("HX-Trigger", string(b))
	return nil
}

// exportClients streams the owner's clients as CSV, batch by batch.
func (s *Server) exportClients(c *fiber.Ctx) error {
	uid := auth.UserID(c)
	ctx := c.UserContext()
	st := s.store
	// The list's filter and search, when the export is of what it shows.
	q := c.Query("q")
	state, _ := chosenFilter(c, "/clients", "state", stateFilters)
	name := "clients"
	if state != "" {
		name += "-" + state
	}
	if strings.TrimSpace(q) != "" {
		name += "-matching"
	}
	s.streamCSV(c, name+"-"+time.Now().UTC().Format("2006-01-02")+".csv",
		[]string{"email", "full_name", "comment", "unsubscribed_at", "bounced_at", "created_at"},
		func(write func([]string) error) error {
			return st.EachClient(ctx, uid, store.ClientState(state), q, func(cl *model.Client) error {
				return write([]string{form.EscapeFormula(cl.Email), form.EscapeFormula(cl.FullName), form.EscapeFormula(cl.Comment),
					csvTime(cl.UnsubscribedAt), csvTime(cl.BouncedAt), cl.CreatedAt.UTC().Format(time.RFC3339)})
			})
		})
	return nil
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
