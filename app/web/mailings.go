package web

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/web/form"
	"rassylka/views/component"
	"rassylka/views/layout"
	"rassylka/views/mailings"
	"rassylka/views/messages"
)

func userLocation(u *model.User) *time.Location { return model.Location(u.TimeZone) }

// mailingStatus is the mailing's status and its switch; csrf is the
// switch's form's token.
func mailingStatus(r *store.MailingRow, viewer *model.User, csrf string) mailings.Status {
	st := mailings.Status{ID: r.ID, Status: string(r.Status), Disabled: r.Disabled(), Paused: r.OwnerBlocked && r.Status != model.StatusFinished, CSRF: csrf,
		CanToggle: viewer.IsManager() || r.OwnerID == viewer.ID && !(r.Disabled() && r.DisabledByManager)}
	if r.Status == model.StatusFinished && !r.Disabled() {
		st.CanToggle = false // it sends no more: there is nothing to switch off
	}
	if r.DisabledAt != nil {
		who := r.DisabledByEmail
		if who == "" {
			who = "someone"
		}
		st.DisabledBy = "by " + who + ", " + formatTime(*r.DisabledAt, viewer.TimeZone)
		if r.DisabledByManager && !viewer.IsManager() {
			st.DisabledBy += "; only a manager can switch it on again"
		}
	}
	return st
}

func window(r *store.MailingRow, u *model.User) string {
	return formatTime(r.StartsAt, u.TimeZone) + " → " + formatTime(r.EndsAt, u.TimeZone)
}

var statusFilters = []filterChoice{
	{"", "All"}, {"created", "Created"}, {"running", "Running"}, {"finished", "Finished"}, {"disabled", "Disabled"},
}

func (s *Server) listMailings(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	sc, all := listScope(c)
	ownerEmail, err := s.ownerFilter(c, sc, all)
	if err != nil {
		return err
	}
	status, filters := chosenFilter(c, "/mailings", "status", statusFilters)
	search := c.Query("q")
	rows, page, err := s.store.ListMailings(c.UserContext(), sc, status, search, pageNumber(c))
	if err != nil {
		return err
	}
	v := mailings.ListView{Q: search, Status: status, Filters: filters, AllUsers: all, Manager: u.IsManager(), Filtered: status != "" || search != "",
		Pager: pager(c, "/mailings", page, "mailings", mailings.ListID), URL: listURL(c, "/mailings")}
	for i := range rows {
		r := &rows[i]
		v.Rows = append(v.Rows, mailings.Row{
			Status: mailingStatus(r, u, auth.CSRFToken(c)), Subject: r.Subject, Window: window(r, u), Repeat: string(r.Repeat),
			Recipients: r.Recipients, OwnerEmail: r.OwnerEmail, OwnerBlocked: r.OwnerBlocked,
			OwnerURL: "/mailings?scope=all&owner=" + strconv.FormatInt(r.OwnerID, 10), Editable: r.OwnerID == u.ID,
		})
	}
	if ownerEmail != "" {
		v.Owner, v.OwnerEmail = sc.Owner, ownerEmail
	}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, mailings.List(v))
	}
	return render(c, fiber.StatusOK, mailings.Page(s.page(c, "Mailings"), v))
}

// messageChoices is how many of the owner's newest messages the mailing
// form offers (the one an edited mailing sends is offered too).
const messageChoices = 500

// mailingForm fills the form's choices (the owner's messages).
func (s *Server) mailingForm(c *fiber.Ctx, f mailings.Form) (mailings.Form, error) {
	u := auth.CurrentUser(c)
	chosen, _ := strconv.ParseInt(f.MessageID, 10, 64) // 0: none, or a new one
	choices, err := s.store.MessageChoices(c.UserContext(), u.ID, messageChoices, chosen)
	if err != nil {
		return f, err
	}
	for _, m := range choices {
		f.Messages = append(f.Messages, mailings.MessageOption{ID: m.ID, Subject: m.Subject})
	}
	f.TimeZone = u.TimeZone
	f.MaxRecipients = form.MaxRecipients
	// The picker's first page is part of the form: without JavaScript
	// nothing would load it.
	var res mailings.PickerResults
	if f.PickerChosen {
		ids := form.SplitIDs(f.RecipientIDs)
		res, err = s.chosenResults(c, ids, f.PickerAt)
		res.Q, res.Later = f.PickerQ, f.PickerAt > 0
		if err == nil && res.Later { // a later page counts none: the heading says how many
			_, res.Total, err = s.store.ClientsAmong(c.UserContext(), auth.UserID(c), ids, 0, 1)
		}
	} else {
		res, err = s.pickerResults(c, f.PickerQ, store.NewPage(int(max(f.PickerAt, 1)), pickerPage))
	}
	if err != nil {
		return f, err
	}
	res.More = false // a page of its own, in place of the one before
	res.Action = mailings.FormAction(f)
	picked := map[int64]bool{}
	for _, id := range form.SplitIDs(f.RecipientIDs) {
		picked[id] = true
	}
	for i := range res.Options {
		res.Options[i].Chosen = picked[res.Options[i].ID]
	}
	f.Results = &res
	return f, nil
}

// pick answers a picker's button pressed without JavaScript (search,
// choose all matching, clear), which sends the whole form: the form again
// as typed, with the recipients chosen so far and the search's first page.
// Nothing is saved.
func (s *Server) pick(c *fiber.Ctx, f mailings.Form, in form.Mailing) error {
	ids := in.Chosen()
	kind, at := in.PickerButton()
	switch kind {
	case form.PickClear:
		ids = nil
	case form.PickAll:
		more, err := s.store.ClientIDs(c.UserContext(), auth.UserID(c), in.PickerQ, form.MaxRecipients+1)
		if err != nil {
			return err
		}
		seen := make(map[int64]bool, len(ids))
		for _, id := range ids {
			seen[id] = true
		}
		left := 0 // matching, not chosen: no room
		for _, id := range more {
			switch {
			case seen[id]:
			case len(ids) < form.MaxRecipients:
				ids = append(ids, id)
			default:
				left++
			}
		}
		if left > 0 {
			f.Errors = form.Errors{"recipients": "A mailing takes at most " + component.Count(form.MaxRecipients) +
				" recipients: the newest matching clients were chosen until it was full, and the others left out."}
		}
	}
	f.RecipientIDs, f.Count, f.PickerQ = form.JoinIDs(ids), len(ids), in.PickerQ
	f.PickerChosen = kind == form.PickChosen
	if kind == form.PickChosen || kind == form.PickSearch {
		f.PickerAt = at // More…: the next page
	}
	f, err := s.mailingForm(c, f)
	if err != nil {
		return err
	}
	title := "New mailing"
	if f.ID != 0 {
		title = "Edit mailing"
	}
	return render(c, fiber.StatusOK, mailings.FormPage(s.page(c, title), f))
}

func formFromInput(id int64, in form.Mailing, p form.Parsed, errs form.Errors) mailings.Form {
	return mailings.Form{ID: id, MessageID: in.MessageID, NewSubject: in.NewSubject, NewBody: in.NewBody,
		StartsAt: in.StartsAt, EndsAt: in.EndsAt, Repeat: in.Repeat, Version: in.Version, FormKey: in.FormKey,
		RecipientIDs: form.JoinIDs(p.Recipients), Count: len(p.Recipients), PickerQ: in.PickerQ, Errors: errs}
}

// editedForm is the form of mailing r as sent (in, p, errs); a running
// mailing's locked fields are shown as they are.
func editedForm(r *store.MailingRow, in form.Mailing, p form.Parsed, errs form.Errors, loc *time.Location) mailings.Form {
	f := formFromInput(r.ID, in, p, errs)
	f.Running = r.Status == model.StatusRunning
	if f.Running {
		f.MessageID, f.StartsAt, f.Repeat = strconv.FormatInt(r.MessageID, 10), r.StartsAt.In(loc).Format(form.DateTimeLocal), string(r.Repeat)
	}
	return f
}

func (s *Server) newMailing(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	loc := userLocation(u)
	// The next whole hour of the user's clock (Truncate would round on
	// UTC's, half past in India).
	n := time.Now().In(loc).Add(time.Hour)
	start := time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), 0, 0, 0, loc)
	f := mailings.Form{MessageID: c.Query("message_id"), Repeat: "once", FormKey: auth.RandomString(16),
		StartsAt: start.Format(form.DateTimeLocal), EndsAt: start.Add(24 * time.Hour).Format(form.DateTimeLocal)}
	if c.Query("copy") != "" {
		if err := s.copyMailing(c, &f, start); err != nil {
			return err
		}
	}
	f, err := s.mailingForm(c, f)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, mailings.FormPage(s.page(c, "New mailing"), f))
}

// copyMailing fills the new mailing's form from the viewer's mailing
// ?copy= names: its message, repeat and recipients, and a window as long
// as its own from start. Anyone else's answers 404.
func (s *Server) copyMailing(c *fiber.Ctx, f *mailings.Form, start time.Time) error {
	id, err := strconv.ParseInt(c.Query("copy"), 10, 64)
	if err != nil || id < 1 {
		return fiber.ErrNotFound
	}
	r, err := s.store.MailingByID(c.UserContext(), store.Own(auth.UserID(c)), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	if r.Disabled() && r.DisabledByManager {
		// Its owner cannot switch it on again: nor send it as a copy.
		return refusal{fiber.StatusForbidden, "A manager switched this mailing off, so it cannot be copied."}
	}
	ids, err := s.store.RecipientIDs(c.UserContext(), r.ID)
	if err != nil {
		return err
	}
	f.MessageID, f.Repeat = strconv.FormatInt(r.MessageID, 10), string(r.Repeat)
	f.RecipientIDs, f.Count = form.JoinIDs(ids), len(ids)
	f.EndsAt = start.Add(r.EndsAt.Sub(r.StartsAt)).Format(form.DateTimeLocal)
	f.CopyOf, f.CopyOfURL = r.Subject, mailings.URL(r.ID)
	return nil
}

// parseMailing reads the form: the picker's ids and repeated checkboxes.
func parseMailing(c *fiber.Ctx) (form.Mailing, error) {
	var in form.Mailing
	if err := c.BodyParser(&in); err != nil {
		return in, fiber.ErrBadRequest
	}
	return in, nil
}

// checkMessage makes sure the chosen message is the owner's.
func (s *Server) checkMessage(c *fiber.Ctx, p form.Parsed, errs form.Errors) error {
	if p.NewMessage != nil || p.MessageID == 0 || errs["message_id"] != "" {
		return nil
	}
	_, err := s.store.MessageByID(c.UserContext(), store.Own(auth.UserID(c)), p.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		errs["message_id"] = "Choose one of your messages."
		return nil
	}
	return err
}

// sendsOnce warns, after the word that a repeating mailing was saved, when
// its window closes before its second send ("" otherwise): a month's
// repeat in a window of two hours sends once.
func sendsOnce(m *model.Mailing, loc *time.Location) string {
	if m.Repeat == model.RepeatOnce {
		return ""
	}
	if _, ok := sending.NextAfter(m.StartsAt, m.EndsAt, m.Repeat, loc, m.StartsAt); ok {
		return ""
	}
	return " Its window closes before a second send, so it sends once: make the end of sending later for it to repeat."
}

// leftOut tells of the chosen clients the saved mailing does not have as
// recipients (deleted since the form was opened, see setRecipients), to
// follow the word that it was saved; "" when it has them all.
func (s *Server) leftOut(c *fiber.Ctx, mailingID int64, chosen []int64) string {
	if chosen == nil {
		return ""
	}
	m, err := s.store.MailingByID(c.UserContext(), store.Own(auth.UserID(c)), mailingID)
	if err != nil {
		return ""
	}
	switch n := len(chosen) - m.Recipients; { // chosen: unique (form.Parsed)
	case n == 1:
		return " One of the chosen clients had been deleted meanwhile and is not a recipient."
	case n > 1:
		return fmt.Sprintf(" %s of the chosen clients had been deleted meanwhile and are not recipients.", count(n))
	}
	return ""
}

// recipientsRefusal is what the form says of chosen recipients the store
// refused ("": none refused).
func recipientsRefusal(err error) string {
	switch {
	case errors.Is(err, store.ErrNoRecipients):
		return "The chosen clients have been deleted meanwhile; choose the recipients again."
	}
	return ""
}

// inlineMessage creates the message written in the mailing form (p), if
// one is, setting id to it. The form sent twice makes it once: it carries
// the form's key.
func (s *Server) inlineMessage(c *fiber.Ctx, tx *store.Store, p form.Parsed, id *int64) error {
	if p.NewMessage == nil {
		return nil
	}
	msg := p.NewMessage.Model(auth.UserID(c))
	msg.FormKey = p.FormKey
	if err := tx.CreateMessage(c.UserContext(), msg); err != nil && !errors.Is(err, store.ErrDone) {
		return err
	}
	*id = msg.ID
	return nil
}

// messageGone is the word for a message deleted since the form was opened.
const messageGone = "This message was deleted meanwhile: choose another."

func (s *Server) createMailing(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	in, err := parseMailing(c)
	if err != nil {
		return err
	}
	if in.Picker != "" {
		return s.pick(c, formFromInput(0, in, form.Parsed{}, nil), in)
	}
	p, errs := in.Validate(form.Rules{Now: time.Now(), Location: userLocation(u)})
	if err := s.checkMessage(c, p, errs); err != nil {
		return err
	}
	var m *model.Mailing
	if !errs.Any() {
		start := p.StartsAt
		m = &model.Mailing{OwnerID: u.ID, MessageID: p.MessageID, StartsAt: p.StartsAt, EndsAt: p.EndsAt,
			Repeat: p.Repeat, Status: model.StatusCreated, NextRunAt: &start, FormKey: p.FormKey}
		err := s.store.InTx(c.UserContext(), func(tx *store.Store) error {
			if err := s.inlineMessage(c, tx, p, &m.MessageID); err != nil {
				return err
			}
			return tx.CreateMailing(c.UserContext(), m, p.Recipients)
		})
		if msg := recipientsRefusal(err); msg != "" {
			errs["recipients"] = msg
		} else if errors.Is(err, store.ErrDone) {
			// The form sent twice: the mailing its first post created
			// and planned, as it is now (it may have been switched off
			// or have sent since).
			s.setFlash(c, layout.FlashInfo, "This form was sent twice: the mailing was created once, here.")
			return redirect(c, mailings.URL(m.ID))
		} else if errors.Is(err, store.ErrMessageGone) {
			errs["message_id"] = messageGone
		} else if err != nil {
			return fmt.Errorf("create mailing: %w", err)
		}
	}
	if errs.Any() {
		f, err := s.mailingForm(c, formFromInput(0, in, p, errs))
		if err != nil {
			return err
		}
		return render(c, fiber.StatusUnprocessableEntity, mailings.FormPage(s.page(c, "New mailing"), f))
	}
	s.plan(c, m.ID)
	s.setFlash(c, layout.FlashSuccess, "Mailing created. It sends from "+formatTime(m.StartsAt, u.TimeZone)+"."+sendsOnce(m, userLocation(u))+s.leftOut(c, m.ID, p.Recipients))
	return redirect(c, mailings.URL(m.ID))
}

func (s *Server) showMailing(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	ctx := c.UserContext()
	r, err := s.readableMailing(c)
	if err != nil {
		return err
	}
	v := mailings.ShowView{
		Status: mailingStatus(r, u, auth.CSRFToken(c)), Subject: r.Subject, MessageURL: messages.URL(r.MessageID),
		Starts: formatTime(r.StartsAt, u.TimeZone), Ends: formatTime(r.EndsAt, u.TimeZone), Repeat: string(r.Repeat),
		OwnerEmail: r.OwnerEmail, OwnerBlocked: r.OwnerBlocked, Editable: r.OwnerID == u.ID, Finished: r.Status == model.StatusFinished,
		Next: nextSend(r, u, time.Now()),
	}
	if r.Repeat == model.RepeatOnce && r.NextRunAt == nil && r.StartsAt.After(time.Now()) && r.Status != model.StatusFinished {
		// A one-off sent by hand before its send: the run took its place
		// (it still read as the send to come).
		v.StartsNote = "not sent then: “Send now” sent it already"
	}
	// Paging the recipients or the runs with htmx swaps just their section,
	// and reads little else; so does renewing the runs, the figures or the
	// latest attempts while a run sends.
	fragment := ""
	if isHTMX(c) {
		switch t := c.Get("HX-Target"); t {
		case mailings.RecipientsID, mailings.RunsID, mailings.FiguresID, mailings.LatestID:
			fragment = t
		}
	}
	if fragment == "" || fragment == mailings.RecipientsID {
		recips, rpage, err := s.store.RecipientsOfMailing(ctx, r.ID, pageNumber(c))
		if err != nil {
			return err
		}
		v.RecipientsPager = pager(c, mailings.URL(r.ID), rpage, "recipients", mailings.RecipientsID)
		for _, cl := range recips {
			v.Recipients = append(v.Recipients, mailings.Recipient{ID: cl.ID, Email: cl.Email, Name: cl.FullName,
				Unsubscribed: cl.UnsubscribedAt != nil, Bounced: cl.BouncedAt != nil})
		}
		if fragment == mailings.RecipientsID {
			return render(c, fiber.StatusOK, mailings.Recipients(v))
		}
	}
	// The progress box is read before the runs and the attempts: a run
	// that ends between the reads then shows as sending in the box, whose
	// next poll reloads the page. Read after them, the box could say the
	// run is over while the runs table says it sends, and nothing would
	// reload the page. The sections a page renews while a run sends (runs,
	// figures, latest attempts) read it too: whether to go on.
	if v.Progress, err = s.progressOf(c, r, u); err != nil {
		return err
	}
	c.Locals(localRunDone, !v.Progress.Active)
	if fragment == "" || fragment == mailings.RunsID {
		runs, runsPage, err := s.store.RunsPage(ctx, r.ID, pageNumberOf(c, "runs_page", runsPerPage))
		if err != nil {
			return err
		}
		v.RunsPager = pagerOf(c, mailings.URL(r.ID), "runs_page", runsPage, "runs", mailings.RunsID)
		for _, run := range runs {
			v.Runs = append(v.Runs, runView(run, u))
		}
		if fragment == mailings.RunsID {
			return render(c, fiber.StatusOK, mailings.Runs(v))
		}
	}
	if fragment == "" || fragment == mailings.LatestID {
		attempts, apage, err := s.store.AttemptsOfMailing(ctx, r.ID, "", store.NewPage(1, 10))
		if err != nil {
			return err
		}
		v.AttemptsTotal = apage.Total
		v.Attempts = attemptViews(attempts, u)
		if fragment == mailings.LatestID {
			return render(c, fiber.StatusOK, mailings.Latest(v))
		}
	}
	fig, err := s.store.MailingTotals(ctx, r.ID)
	if err != nil {
		return err
	}
	v.Figures = mailings.Figures{Runs: fig.Runs, Sent: fig.Succeeded, Failed: fig.Failed}
	if fig.LastRun != nil {
		v.Figures.LastRun = formatTime(*fig.LastRun, u.TimeZone)
		now := time.Now()
		days, err := s.store.AttemptsPerDay(ctx, readScope(u), r.ID, now, 30, userLocation(u))
		if err != nil {
			return err
		}
		v.Days = chartDays(days)
	}
	if fragment == mailings.FiguresID {
		return render(c, fiber.StatusOK, mailings.FiguresSection(v))
	}
	open := v.Progress.Waiting // not finished, not switched off, inside the window
	v.CanSend = v.Editable && open && !v.Progress.Active
	if v.CanSend {
		if v.Unmailable, err = s.store.UnmailableRecipients(ctx, r.OwnerID, r.ID); err != nil {
			return err
		}
	}
	if v.Editable && open && v.Progress.RunID != 0 && !v.Progress.Active {
		if v.Retryable, v.RetryableCut, err = s.store.RetryableFailures(ctx, v.Progress.RunID); err != nil {
			return err
		}
		// Not while a scheduled send is due: it mails everyone.
		if r.NextRunAt == nil || r.NextRunAt.After(time.Now()) || !r.NextRunAt.Before(r.EndsAt) {
			full, n, err := s.store.RestToSend(ctx, r.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				v.RestUnreached, v.RestSince = n, formatTime(full.StartedAt, u.TimeZone)
			}
		}
	}
	return render(c, fiber.StatusOK, mailings.Show(s.page(c, "Mailing #"+strconv.FormatInt(r.ID, 10)+": "+r.Subject), v))
}

// nextSend is when the mailing sends next, as its page says it ("": it
// will not, being finished, switched off or past its last occurrence).
func nextSend(r *store.MailingRow, u *model.User, now time.Time) string {
	switch {
	case r.NextRunAt == nil || r.Disabled() || r.Status == model.StatusFinished || !r.NextRunAt.Before(r.EndsAt):
		return ""
	case r.OwnerBlocked:
		return "none while its owner is blocked"
	case !r.NextRunAt.After(now):
		return "due now"
	}
	return formatTime(*r.NextRunAt, u.TimeZone)
}

// runsPerPage is how many runs a mailing's page lists at a time.
const runsPerPage = 20

func runView(r model.Run, u *model.User) mailings.Run {
	v := mailings.Run{ID: r.ID, Trigger: runTrigger(r), Started: formatTime(r.StartedAt, u.TimeZone),
		Total: r.Total, Succeeded: r.Succeeded, Failed: r.Failed, Skipped: r.Skipped}
	if r.FinishedAt != nil {
		v.Finished = formatTime(*r.FinishedAt, u.TimeZone)
	}
	return v
}

func attemptViews(as []model.Attempt, u *model.User) []mailings.Attempt {
	out := make([]mailings.Attempt, 0, len(as))
	for _, a := range as {
		out = append(out, mailings.Attempt{At: formatTime(a.AttemptedAt, u.TimeZone), Email: a.Email,
			Run: a.RunID, RunURL: mailings.URL(a.MailingID) + "/attempts?run=" + strconv.FormatInt(a.RunID, 10),
			Status: string(a.Status), Response: a.Response, Tries: a.Tries})
	}
	return out
}

// readableMailing loads a mailing the viewer may read (a manager reads
// everyone's); anyone else's answers 404.
func (s *Server) readableMailing(c *fiber.Ctx) (*store.MailingRow, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	r, err := s.store.MailingByID(c.UserContext(), readScope(auth.CurrentUser(c)), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fiber.ErrNotFound
	}
	return r, err
}

const finishedReadOnly = "This mailing has finished; it can no longer be changed."

func (s *Server) editMailing(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	r, err := own(c, s.store.MailingByID)
	if err != nil {
		return err
	}
	if r.Status == model.StatusFinished {
		s.setFlash(c, layout.FlashError, finishedReadOnly)
		return redirect(c, mailings.URL(r.ID))
	}
	ids, err := s.store.RecipientIDs(c.UserContext(), r.ID)
	if err != nil {
		return err
	}
	loc := userLocation(u)
	f := mailings.Form{ID: r.ID, MessageID: strconv.FormatInt(r.MessageID, 10),
		StartsAt: r.StartsAt.In(loc).Format(form.DateTimeLocal), EndsAt: r.EndsAt.In(loc).Format(form.DateTimeLocal),
		Repeat: string(r.Repeat), RecipientIDs: form.JoinIDs(ids), Count: len(ids), Running: r.Status == model.StatusRunning,
		Version: form.VersionOf(r.EditedAt), FormKey: auth.RandomString(16)}
	f, err = s.mailingForm(c, f)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, mailings.FormPage(s.page(c, "Edit mailing"), f))
}

func (s *Server) updateMailing(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	r, err := own(c, s.store.MailingByID)
	if err != nil {
		return err
	}
	in, err := parseMailing(c)
	if err != nil {
		return err
	}
	running := r.Status == model.StatusRunning
	if in.Picker != "" && r.Status != model.StatusFinished {
		return s.pick(c, editedForm(r, in, form.Parsed{}, nil, userLocation(u)), in)
	}
	stored, storedEnd := r.StartsAt, r.EndsAt
	p, errs := in.Validate(form.Rules{Now: time.Now(), Location: userLocation(u), Running: running, StoredStart: &stored, StoredEnd: &storedEnd})
	if r.Status == model.StatusFinished {
		errs = form.Errors{"ends_at": finishedReadOnly}
	} else if running && lockedChanged(in, r, userLocation(u)) {
		// A form opened before the first run started (or not this site's):
		// what it changed of the locked fields would be dropped without a
		// word.
		errs["starts_at"] = lockedSinceStarted
	}
	if err := s.checkMessage(c, p, errs); err != nil {
		return err
	}
	m := r.Mailing
	m.EditedAt = form.Version(in.Version)
	changed := false
	if !errs.Any() {
		m.EndsAt = p.EndsAt
		if running {
			// The window may have moved: the next occurrence is the planned
			// one if still inside it, else the first after now.
			m.NextRunAt = sending.NextInWindow(m.StartsAt, m.EndsAt, m.Repeat, userLocation(u), r.NextRunAt, time.Now())
		} else {
			m.MessageID, m.StartsAt, m.Repeat = p.MessageID, p.StartsAt, p.Repeat
			m.NextRunAt = sending.NextBeforeFirstRun(m.StartsAt, m.EndsAt, m.Repeat, userLocation(u), r.StartsAt, r.Repeat, r.NextRunAt, time.Now())
		}
		err := s.store.InTx(c.UserContext(), func(tx *store.Store) error {
			if err := s.inlineMessage(c, tx, p, &m.MessageID); err != nil {
				return err
			}
			return tx.UpdateMailing(c.UserContext(), u.ID, &m, p.Recipients)
		})
		switch refusal := recipientsRefusal(err); {
		case refusal != "":
			errs["recipients"] = refusal
		case errors.Is(err, store.ErrChanged):
			changed, in.Version = true, form.VersionOf(m.EditedAt)
		case errors.Is(err, store.ErrMessageGone):
			errs["message_id"] = messageGone
		case errors.Is(err, store.ErrConflict):
			errs["starts_at"] = startedMeanwhile
		case errors.Is(err, store.ErrSending):
			errs["recipients"] = "A run is sending to these recipients right now; change them when it has ended."
		case errors.Is(err, store.ErrNotFound):
			return fiber.ErrNotFound
		case err != nil:
			return fmt.Errorf("update mailing: %w", err)
		}
	}
	if errs.Any() || changed {
		f := editedForm(r, in, p, errs, userLocation(u))
		if changed {
			f.Error = changedSince("mailing")
		}
		f, err := s.mailingForm(c, f)
		if err != nil {
			return err
		}
		return render(c, fiber.StatusUnprocessableEntity, mailings.FormPage(s.page(c, "Edit mailing"), f))
	}
	if r.NextRunAt != nil && (m.NextRunAt == nil || !r.NextRunAt.Equal(*m.NextRunAt)) {
		s.sending.Unplan(c.UserContext(), r.ID, r.NextRunAt)
	}
	s.plan(c, r.ID)
	s.setFlash(c, layout.FlashSuccess, "Mailing saved."+sendsOnce(&m, userLocation(u))+s.leftOut(c, r.ID, p.Recipients))
	return redirect(c, mailings.URL(r.ID))
}

const startedMeanwhile = "The mailing started sending meanwhile: reload the page to see what can still change."

// lockedSinceStarted refuses a change of what a mailing that has started
// sending keeps.
const lockedSinceStarted = "The message, first send and repeat can no longer change: the mailing has started sending. Reload the page to see what still can."

// lockedChanged reports whether a form posted for a running mailing changes
// its message, first send or repeat. The running form does not post them
// (they are disabled there): a form that does was opened before the first
// run started.
func lockedChanged(in form.Mailing, r *store.MailingRow, loc *time.Location) bool {
	msg, start, repeat := strings.TrimSpace(in.MessageID), strings.TrimSpace(in.StartsAt), strings.TrimSpace(in.Repeat)
	return (msg != "" && msg != strconv.FormatInt(r.MessageID, 10)) ||
		(repeat != "" && repeat != string(r.Repeat)) ||
		(start != "" && start != r.StartsAt.In(loc).Format(form.DateTimeLocal))
}

func (s *Server) deleteMailing(c *fiber.Ctx) error {
	del := func(ctx context.Context, ownerID, id int64) error {
		next, err := s.store.DeleteMailing(ctx, ownerID, id)
		if err != nil {
			return err
		}
		s.sending.Unplan(ctx, id, next)
		return nil
	}
	return s.deleteOwned(c, del, "Mailing deleted.", "/mailings")
}

// setDisabled switches a mailing off or on: its owner may, and a manager
// may for anyone's mailing; what a manager switched off only a manager
// switches on again.
func (s *Server) setDisabled(disabled bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		u := auth.CurrentUser(c)
		id, err := pathID(c)
		if err != nil {
			return err
		}
		sc := store.Own(u.ID)
		if u.IsManager() {
			sc = store.Everyone(0)
		}
		cur, err := s.store.MailingByID(c.UserContext(), sc, id)
		if errors.Is(err, store.ErrNotFound) {
			return fiber.ErrNotFound
		}
		if err != nil {
			return err
		}
		if disabled && !cur.Disabled() && cur.Status == model.StatusFinished {
			s.setFlash(c, layout.FlashError, "This mailing has finished: it sends no more, so there is nothing to switch off.")
			return redirect(c, mailings.URL(id))
		}
		// Switched on, a repeating mailing's send that came due while it
		// was off is skipped, not made at once, late (see SkipMissed).
		// (Skipped too when the switch is refused, a manager's: the
		// mailing stays off, and would skip that send when switched on.)
		var skipped *sending.Skipped
		if !disabled && cur.Disabled() {
			if skipped, err = s.sending.SkipMissed(c.UserContext(), id); err != nil {
				return fmt.Errorf("skip missed send: %w", err)
			}
		}
		err = s.store.SetMailingDisabled(c.UserContext(), sc, id, u.ID, disabled)
		if errors.Is(err, store.ErrNotFound) {
			return fiber.ErrNotFound
		}
		if errors.Is(err, store.ErrDisabledByManager) {
			s.setFlash(c, layout.FlashError, disabledByManager)
			return redirect(c, mailings.URL(id))
		}
		if err != nil {
			return fmt.Errorf("set mailing disabled: %w", err)
		}
		r, err := s.store.MailingByID(c.UserContext(), sc, id)
		if err != nil {
			return err
		}
		s.stats.Changed(c.UserContext(), r.OwnerID) // a manager may switch off someone else's
		if disabled {
			s.sending.Unplan(c.UserContext(), id, r.NextRunAt)
		} else {
			s.plan(c, id)
		}
		note := switchNote(disabled, r, skipped, u.TimeZone)
		if isHTMX(c) {
			// On the mailing's own page the switch changes its actions too
			// (Send now, Retry failed, the waiting progress box): reload it,
			// saying what the switch did at its top. So it is when a send
			// was skipped, to say so.
			cur, err := url.Parse(c.Get("HX-Current-URL"))
			if (err == nil && cur.Path == mailings.URL(id)) || skipped != nil {
				c.Set("HX-Refresh", "true")
				s.setFlash(c, layout.FlashSuccess, note)
			}
			return render(c, fiber.StatusOK, mailings.StatusCell(mailingStatus(r, u, auth.CSRFToken(c))))
		}
		s.setFlash(c, layout.FlashSuccess, note)
		return redirect(c, mailings.URL(id))
	}
}

// switchNote says what switching a mailing off or on did: on, whether
// its send due while it was off is made now (a one-off) or was skipped
// (a repeat: see sending.SkipMissed), and when the next is, in zone tz.
func switchNote(disabled bool, r *store.MailingRow, skipped *sending.Skipped, tz string) string {
	switch {
	case disabled:
		return "Mailing disabled: it will not send until enabled again."
	case r.Status == model.StatusFinished:
		return "Mailing enabled. Its window has closed, so it sends no more."
	case skipped != nil:
		what := "Its send due " + formatTime(skipped.Last, tz) + ", while it was off, is skipped"
		if !skipped.Last.Equal(skipped.First) {
			what = "The sends it missed, due from " + formatTime(skipped.First, tz) + " to " + formatTime(skipped.Last, tz) + ", are skipped"
		}
		if skipped.Next == nil {
			return "Mailing enabled. " + what + ", and its window closes before another. Send now sends it at once."
		}
		return "Mailing enabled. " + what + ": the next is " + formatTime(*skipped.Next, tz) + ". Send now sends it at once."
	case r.NextRunAt != nil && !r.NextRunAt.After(time.Now()):
		return "Mailing enabled. Its send, due while it was off, starts now."
	}
	return "Mailing enabled."
}

var attemptFilters = []filterChoice{{"", "All"}, {string(model.AttemptSuccess), "Success"}, {string(model.AttemptFailure), "Failure"}}

// exportAttempts downloads a mailing's attempt log as CSV, in the order
// the attempts were recorded (the log's, oldest first), of the status
// chosen (?status=, as the log's filter), which its file's name says.
func (s *Server) exportAttempts(c *fiber.Ctx) error {
	r, err := s.readableMailing(c)
	if err != nil {
		return err
	}
	status, _ := chosenFilter(c, "", "status", attemptFilters)
	run, err := s.chosenRun(c, r.ID)
	if err != nil {
		return err
	}
	var runID int64
	of := strconv.FormatInt(r.ID, 10)
	if run != nil {
		runID, of = run.ID, of+"-run-"+strconv.FormatInt(run.ID, 10)
	}
	ctx, st := c.UserContext(), s.store
	name := fmt.Sprintf("attempts-%s-%s.csv", of, time.Now().UTC().Format("2006-01-02"))
	if status != "" {
		name = fmt.Sprintf("attempts-%s-%s-%s.csv", of, status, time.Now().UTC().Format("2006-01-02"))
	}
	s.streamCSV(c, name, []string{"attempted_at", "email", "status", "code", "response", "tries"},
		func(write func([]string) error) error {
			return st.EachAttempt(ctx, r.ID, runID, model.AttemptStatus(status), func(a *model.Attempt) error {
				code := ""
				if a.Code != nil {
					code = strconv.Itoa(*a.Code)
				}
				return write([]string{a.AttemptedAt.UTC().Format(time.RFC3339), form.EscapeFormula(a.Email), string(a.Status), code,
					form.EscapeFormula(a.Response), strconv.Itoa(a.Tries)})
			})
		})
	return nil
}

func (s *Server) listAttempts(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	r, err := s.readableMailing(c)
	if err != nil {
		return err
	}
	base := mailings.URL(r.ID) + "/attempts"
	chosen, filters := chosenFilter(c, base, "status", attemptFilters)
	status := model.AttemptStatus(chosen)
	run, err := s.chosenRun(c, r.ID)
	if err != nil {
		return err
	}
	var as []model.Attempt
	var page store.Page
	if run != nil {
		as, page, err = s.store.AttemptsOfRun(c.UserContext(), run.ID, status, pageNumber(c))
	} else {
		as, page, err = s.store.AttemptsOfMailing(c.UserContext(), r.ID, status, pageNumber(c))
	}
	if err != nil {
		return err
	}
	v := mailings.AttemptsView{ID: r.ID, Subject: r.Subject, Status: chosen, Filters: filters, Attempts: attemptViews(as, u),
		CSVURL: linkWith(c, base+".csv", "page", ""),
		Pager:  pager(c, base, page, "attempts", mailings.AttemptsID)}
	if run != nil {
		v.Run = "Run #" + strconv.FormatInt(run.ID, 10) + ", " + runTrigger(*run) + ", started " + formatTime(run.StartedAt, u.TimeZone)
		v.AllRuns = linkWith(c, base, "run", "", "page")
	}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, mailings.AttemptLog(v))
	}
	return render(c, fiber.StatusOK, mailings.AttemptsPage(s.page(c, "Attempt log"), v))
}

// chosenRun is the run of the mailing the attempt log shows (?run=), or
// nil for all of them; another mailing's run, or none, is not found.
func (s *Server) chosenRun(c *fiber.Ctx, mailingID int64) (*model.Run, error) {
	v := c.Query("run")
	if v == "" {
		return nil, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fiber.ErrNotFound
	}
	run, err := s.store.RunByID(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && run.MailingID != mailingID) {
		return nil, fiber.ErrNotFound
	}
	return run, err
}

const pickerPage = 50

// runTrigger says what started a run: "retry" for Retry failed (a manual
// run of the failures of the one before), "rest" for Send to the rest.
func runTrigger(r model.Run) string {
	switch {
	case r.RetryOf != nil:
		return "retry"
	case r.RestOf != nil:
		return "rest"
	}
	return string(r.Trigger)
}

// mailingForm matches the paths of the forms the picker is part of.
var mailingForm = regexp.MustCompile(`^/mailings/(new|[1-9][0-9]*/edit)$`)

// picker lists the owner's clients matching ?picker_q= for the recipient
// picker, a page at a time.
func (s *Server) picker(c *fiber.Ctx) error {
	if !isHTMX(c) {
		// A part of the mailing form, not a page: opened by hand, the
		// form it belongs to is shown (the one it was opened from, the
		// Referer tells; only its path is taken).
		to := "/mailings/new"
		if u, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && mailingForm.MatchString(u.Path) {
			to = u.Path
		}
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	page := pageNumber(c)
	page.PerPage = pickerPage
	res, err := s.pickerResults(c, c.Query("picker_q"), page)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, mailings.Results(res))
}

// pickerResults is a page of the owner's clients matching q, to choose
// recipients from.
func (s *Server) pickerResults(c *fiber.Ctx, q string, page store.Page) (mailings.PickerResults, error) {
	rows, page, err := s.store.ListClients(c.UserContext(), store.Own(auth.UserID(c)), "", q, page)
	if err != nil {
		return mailings.PickerResults{}, err
	}
	res := mailings.PickerResults{Total: page.Total, Q: q, More: page.Number > 1, From: (page.Number-1)*page.PerPage + 1}
	for _, r := range rows {
		res.Options = append(res.Options, mailings.PickerOption{ID: r.ID, Email: r.Email, Name: r.FullName,
			Unsubscribed: r.UnsubscribedAt != nil, Bounced: r.BouncedAt != nil})
	}
	if page.Number < page.Pages() {
		next := strconv.Itoa(page.Number + 1)
		res.NextURL = "/mailings/picker?picker_q=" + urlQuery(q) + "&page=" + next
		res.NextPick = form.PickSearch + ":" + next
	}
	return res, nil
}

// pickerChosen lists, for the recipient picker, a page of the recipients
// the mailing form sent has chosen so far: the newest, or those after the
// last one shown (?before=, its id).
func (s *Server) pickerChosen(c *fiber.Ctx) error {
	var in form.Mailing
	if err := c.BodyParser(&in); err != nil {
		return fiber.ErrBadRequest
	}
	before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
	res, err := s.chosenResults(c, in.Chosen(), max(before, 0))
	if err != nil {
		return err
	}
	res.Q = in.PickerQ // the search to go back to
	return render(c, fiber.StatusOK, mailings.Results(res))
}

// chosenResults is a page of the owner's clients among ids, ticked, from
// the one before id before (0: the newest, with how many there are).
func (s *Server) chosenResults(c *fiber.Ctx, ids []int64, before int64) (mailings.PickerResults, error) {
	rows, total, err := s.store.ClientsAmong(c.UserContext(), auth.UserID(c), ids, before, pickerPage+1)
	if err != nil {
		return mailings.PickerResults{}, err
	}
	res := mailings.PickerResults{Total: total, More: before > 0, Chosen: true}
	if len(rows) > pickerPage {
		rows = rows[:pickerPage]
		last := strconv.FormatInt(rows[len(rows)-1].ID, 10)
		res.NextURL = "/mailings/picker/chosen?before=" + last
		res.NextPick = form.PickChosen + ":" + last
	}
	for _, r := range rows {
		res.Options = append(res.Options, mailings.PickerOption{ID: r.ID, Email: r.Email, Name: r.FullName,
			Unsubscribed: r.UnsubscribedAt != nil, Bounced: r.BouncedAt != nil, Chosen: true})
	}
	return res, nil
}

// pickerIDs answers the ids of all the owner's clients matching ?q=, for
// "choose all matching", newest first: one more than a mailing takes at
// most, so that the page can tell "more match" from "exactly as many".
func (s *Server) pickerIDs(c *fiber.Ctx) error {
	ids, err := s.store.ClientIDs(c.UserContext(), auth.UserID(c), c.Query("q"), form.MaxRecipients+1)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []int64{}
	}
	return c.JSON(ids)
}

// plan enqueues the mailing's next occurrence at its time. The reconciler
// enqueues what is due anyway, so a queue error is logged, not shown.
func (s *Server) plan(c *fiber.Ctx, mailingID int64) {
	if err := s.sending.Plan(c.UserContext(), mailingID); err != nil {
		s.log.WarnContext(c.UserContext(), "plan mailing", "mailing_id", mailingID, "error", err.Error(), "request_id", RequestID(c))
	}
}
