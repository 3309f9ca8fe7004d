package web

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/web/form"
	"rassylka/views/layout"
	"rassylka/views/messages"
)

func messageRow(r *store.MessageRow, viewer *model.User) messages.Row {
	return messages.Row{
		ID: r.ID, Subject: r.Subject, Updated: formatTime(r.UpdatedAt, viewer.TimeZone), Mailings: r.Mailings,
		OwnerEmail: r.OwnerEmail, OwnerURL: "/messages?scope=all&owner=" + strconv.FormatInt(r.OwnerID, 10),
		Editable: r.OwnerID == viewer.ID,
	}
}

func (s *Server) listMessages(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	sc, all := listScope(c)
	ownerEmail, err := s.ownerFilter(c, sc, all)
	if err != nil {
		return err
	}
	q := c.Query("q")
	rows, page, err := s.store.ListMessages(c.UserContext(), sc, q, pageNumber(c))
	if err != nil {
		return err
	}
	v := messages.ListView{Q: q, AllUsers: all, Manager: u.IsManager(), Pager: pager(c, "/messages", page, "messages", messages.ListID),
		URL: listURL(c, "/messages")}
	for i := range rows {
		v.Rows = append(v.Rows, messageRow(&rows[i], u))
	}
	if ownerEmail != "" {
		v.Owner, v.OwnerEmail = sc.Owner, ownerEmail
	}
	if isHTMX(c) {
		return render(c, fiber.StatusOK, messages.List(v))
	}
	return render(c, fiber.StatusOK, messages.Page(s.page(c, "Messages"), v))
}

func (s *Server) newMessage(c *fiber.Ctx) error {
	return render(c, fiber.StatusOK, messages.FormPage(s.page(c, "New message"), messages.Form{FormKey: auth.RandomString(16)}))
}

// messageForm shows f again, for the message id used by mailings (0 and
// 0 for a new one).
func messageForm(id int64, mailings int, f form.Message, errs form.Errors) messages.Form {
	return messages.Form{ID: id, Subject: f.Subject, Body: f.Body, Version: f.Version, FormKey: f.FormKey, Errors: errs, Mailings: mailings}
}

// changedSince is what a form says when its object was changed by another
// form since it was opened: what was typed is kept, and saving again
// (the form now on the object's new version) replaces that change.
func changedSince(what string) string {
	return "This " + what + " was changed elsewhere (in another tab or window) since you opened this form. What you typed is below: " +
		"save again to replace that change with it, or open the " + what + " to see it."
}

func (s *Server) createMessage(c *fiber.Ctx) error {
	var f form.Message
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, messages.FormPage(s.page(c, "New message"), messageForm(0, 0, f, errs)))
	}
	m := f.Model(auth.UserID(c))
	// The form sent twice (ErrDone) shows the message its first post
	// created.
	if err := s.store.CreateMessage(c.UserContext(), m); err != nil && !errors.Is(err, store.ErrDone) {
		return fmt.Errorf("create message: %w", err)
	}
	s.setFlash(c, layout.FlashSuccess, "Message saved.")
	return redirect(c, messages.URL(m.ID))
}

// samplePreviewClient stands in for a recipient when the owner has none.
var samplePreviewClient = model.Client{Email: "jane.doe@example.com", FullName: "Jane Doe"}

func (s *Server) showMessage(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.store.MessageByID(c.UserContext(), readScope(u), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	sample := &samplePreviewClient
	if first, err := s.store.FirstClient(c.UserContext(), r.OwnerID); err == nil {
		sample = first
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	to := sample.Email
	if sample.FullName != "" {
		to = sample.FullName + " <" + sample.Email + ">"
	}
	owner := u
	if r.OwnerID != u.ID { // a manager reading another's
		if owner, err = s.store.UserByID(c.UserContext(), r.OwnerID); err != nil {
			return err
		}
	}
	from := s.cfg.MailFrom
	if owner.SenderName != "" {
		from = owner.SenderName + " <" + s.mailFrom.Address + ">"
	}
	v := messages.ShowView{
		Row: messageRow(r, u), Body: r.Body, Created: formatTime(r.CreatedAt, u.TimeZone), TestTo: u.Email,
		PreviewFrom: from, PreviewReplyTo: owner.ReplyTo, PreviewTo: to,
		PreviewSubject: mail.Personalize(r.Subject, sample.FullName, sample.Email),
		// With the footer each mail gets, its link the recipient's own
		// (none is made here: one opened from the preview would work).
		PreviewBody: mail.WithFooter(mail.Personalize(r.Body, sample.FullName, sample.Email), s.cfg.BaseURL+"/u/…"),
	}
	return render(c, fiber.StatusOK, messages.Show(s.page(c, "Message: "+r.Subject), v))
}

// sendTest mails the message to its owner, filled in as if they were a
// recipient, with "[Test]" before its subject: what a recipient gets, but
// for the unsubscribe link, which is each recipient's own. Like account
// mail it goes by the worker, and counts toward no run or statistics.
func (s *Server) sendTest(c *fiber.Ctx) error {
	r, err := own(c, s.store.MessageByID)
	if err != nil {
		return err
	}
	u := auth.CurrentUser(c)
	wait, err := take(c, s.testLimit, strconv.FormatInt(u.ID, 10))
	if err != nil {
		return err
	}
	if wait > 0 {
		s.setFlash(c, layout.FlashError, fmt.Sprintf("You have sent %d tests in the last hour. Please try again in %s.", testMails, minutes(wait)))
		return redirect(c, messages.URL(r.ID))
	}
	t, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{
		To: u.Email, ToName: u.FullName,
		Subject:  "[Test] " + mail.Personalize(r.Subject, u.FullName, u.Email),
		Text:     mail.WithFooter(mail.Personalize(r.Body, u.FullName, u.Email), testUnsubscribeLink),
		FromName: u.SenderName, ReplyTo: u.ReplyTo, // as the mailings' mail has them
	})
	if err != nil {
		return fmt.Errorf("test mail: %w", err)
	}
	if _, err := s.queue.EnqueueContext(c.UserContext(), t); err != nil {
		return fmt.Errorf("enqueue test mail: %w", err)
	}
	s.setFlash(c, layout.FlashSuccess, "A test of this message is on its way to "+u.Email+".")
	return redirect(c, messages.URL(r.ID))
}

// testUnsubscribeLink stands in a test mail for the link each recipient
// gets.
const testUnsubscribeLink = "[each recipient's own link]"

func (s *Server) editMessage(c *fiber.Ctx) error {
	r, err := own(c, s.store.MessageByID)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, messages.FormPage(s.page(c, "Edit message"),
		messages.Form{ID: r.ID, Subject: r.Subject, Body: r.Body, Version: form.VersionOf(r.UpdatedAt), Mailings: r.Mailings}))
}

func (s *Server) updateMessage(c *fiber.Ctx) error {
	r, err := own(c, s.store.MessageByID)
	if err != nil {
		return err
	}
	var f form.Message
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, messages.FormPage(s.page(c, "Edit message"), messageForm(r.ID, r.Mailings, f, errs)))
	}
	m := f.Model(r.OwnerID)
	m.ID, m.UpdatedAt = r.ID, form.Version(f.Version)
	err = s.store.UpdateMessage(c.UserContext(), r.OwnerID, m)
	if errors.Is(err, store.ErrChanged) {
		f.Version = form.VersionOf(m.UpdatedAt)
		mf := messageForm(r.ID, r.Mailings, f, nil)
		mf.Error = changedSince("message")
		return render(c, fiber.StatusUnprocessableEntity, messages.FormPage(s.page(c, "Edit message"), mf))
	}
	if errors.Is(err, store.ErrSending) {
		errs := form.Errors{"body": "A mailing is sending this message right now; edit it when the run has ended."}
		return render(c, fiber.StatusUnprocessableEntity, messages.FormPage(s.page(c, "Edit message"), messageForm(r.ID, r.Mailings, f, errs)))
	}
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update message: %w", err)
	}
	s.setFlash(c, layout.FlashSuccess, "Message saved.")
	return redirect(c, messages.URL(m.ID))
}

func (s *Server) deleteMessage(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	r, err := own(c, s.store.MessageByID)
	if err != nil {
		return err
	}
	err = s.store.DeleteMessage(c.UserContext(), u.ID, r.ID)
	if errors.Is(err, store.ErrConflict) {
		const msg = "Mailings use this message; delete them or pick another message for them first."
		if isHTMX(c) {
			row := messageRow(r, u)
			row.Error = msg
			return render(c, fiber.StatusUnprocessableEntity, messages.RowView(row, false))
		}
		s.setFlash(c, layout.FlashError, msg)
		return redirect(c, messages.URL(r.ID))
	}
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete message: %w", err)
	}
	const done = "Message deleted."
	if isHTMX(c) && c.Method() == fiber.MethodDelete {
		return rowRemoved(c, done)
	}
	s.setFlash(c, layout.FlashSuccess, done)
	return redirect(c, "/messages")
}
