package web

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"

	"rassylka/app/auth"
	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/views/component"
	"rassylka/views/layout"
	"rassylka/views/mailings"
	"rassylka/views/unsubscribe"
)

// disabledByManager tells an owner why a mailing stays off.
const disabledByManager = "A manager switched this mailing off; only a manager can switch it on again."

// runRefusal is what a person is told when a run of m cannot start.
func runRefusal(err error, m *store.MailingRow) string {
	switch {
	case errors.Is(err, sending.ErrDisabled) && m.DisabledByManager:
		return disabledByManager
	case errors.Is(err, sending.ErrDisabled):
		return "This mailing is disabled; enable it to send."
	case errors.Is(err, sending.ErrBlocked):
		return "Your account is blocked, so your mailings do not send."
	case errors.Is(err, sending.ErrFinished):
		return "This mailing's window has closed; it sends no more."
	case errors.Is(err, sending.ErrRunActive):
		return "A run of this mailing is still sending; wait until it is done."
	case errors.Is(err, sending.ErrNoRecipients):
		return "This mailing has no recipients left (their clients were deleted): choose some before sending."
	case errors.Is(err, sending.ErrNoFailures):
		return "Nothing to retry: the last run has no temporary failures to clients who can still be mailed."
	case errors.Is(err, sending.ErrNoRest):
		return "No one left to send to: the last run reached everyone it could, or those it did not reach have unsubscribed, bounced or been removed since."
	case errors.Is(err, sending.ErrRunSince):
		return "A run of this mailing started after this page was shown (the form was sent twice, or from another tab), so no other was started: see it below."
	case errors.Is(err, sending.ErrJustSent):
		return "This mailing's planned send started a moment ago, so Send now started no second one: see it below. To send it again, use Send now on this page."
	case errors.Is(err, sending.ErrScheduledDue):
		return "A scheduled send of this mailing is due now, and mails everyone: the rest get it then, once."
	}
	return ""
}

// runSource is whom a manual run sends to.
type runSource int

const (
	toEveryone runSource = iota // Send now
	toFailed                    // Retry failed: the last run's temporary failures
	toRest                      // Send to the rest: those the last run did not reach
)

// startRun starts a manual run ("Send now", "Retry failed" of the last
// finished run, or "Send to the rest" of it) and goes back to the
// mailing's page.
func (s *Server) startRun(to runSource) fiber.Handler {
	return func(c *fiber.Ctx) error {
		r, err := own(c, s.store.MailingByID)
		if err != nil {
			return err
		}
		// The latest run the page showed, when its form says (the
		// contract's routes start a run without it): a run started since
		// refuses this one, so a form sent twice starts one run.
		svc := s.sending
		if seen, err := strconv.ParseInt(c.FormValue("seen"), 10, 64); err == nil && seen >= 0 {
			svc = svc.Seen(seen)
		}
		var run *model.Run
		switch to {
		case toFailed:
			var last *model.Run
			last, err = s.store.LatestRun(c.UserContext(), r.ID)
			if errors.Is(err, store.ErrNotFound) {
				s.setFlash(c, layout.FlashError, "There is no run to retry yet.")
				return redirect(c, mailings.URL(r.ID))
			}
			if err != nil {
				return err
			}
			run, err = svc.StartManual(c.UserContext(), r.ID, &last.ID)
		case toRest:
			run, err = svc.StartRest(c.UserContext(), r.ID)
		default:
			run, err = svc.StartManual(c.UserContext(), r.ID, nil)
		}
		if msg := runRefusal(err, r); msg != "" {
			s.setFlash(c, layout.FlashError, msg)
			return redirect(c, mailings.URL(r.ID))
		}
		if err != nil {
			return fmt.Errorf("start run: %w", err)
		}
		if to == toRest {
			s.setFlash(c, layout.FlashSuccess, "Sending to the "+component.Counted(int64(run.Total), "recipient", "recipients")+" not reached yet.")
		} else {
			s.setFlash(c, layout.FlashSuccess, sendingNotice(run.Total, run.Mailable))
		}
		return redirect(c, mailings.URL(r.ID))
	}
}

// sendingNotice tells the owner who a run just started mails: of its total
// recipients, those mailable; the others are skipped.
func sendingNotice(total, mailable int) string {
	skipped := total - mailable
	switch {
	case mailable == 0 && total == 1:
		return "No one to send to: the only recipient has unsubscribed or bounced, so the run skips them."
	case mailable == 0:
		return fmt.Sprintf("No one to send to: all %s recipients have unsubscribed or bounced, so the run skips them.", count(total))
	case skipped == 0:
		return "Sending to " + component.Counted(int64(total), "recipient", "recipients") + "."
	case skipped == 1:
		return fmt.Sprintf("Sending to %s of %s recipients; 1 has unsubscribed or bounced and is skipped.", count(mailable), count(total))
	}
	return fmt.Sprintf("Sending to %s of %s recipients; %s have unsubscribed or bounced and are skipped.", count(mailable), count(total), count(skipped))
}

// count writes n as the pages do ("20 000").
func count(n int) string { return component.Count(int64(n)) }

// progressOf is the mailing's current run, or its last one.
// While no run sends but one may start (the mailing is open: enabled, not
// finished, inside its window), the box is Waiting; while a scheduled run
// is planned in the window too, it polls slowly, so that the run shows
// when it starts without a reload. With none planned it does not poll: a
// page left open on a mailing that sent its last run asks for nothing.
func (s *Server) progressOf(c *fiber.Ctx, m *store.MailingRow, u *model.User) (mailings.Progress, error) {
	p := mailings.Progress{MailingID: m.ID}
	p.Waiting = m.Status != model.StatusFinished && !m.Disabled() && time.Now().Before(m.EndsAt)
	p.Planned = p.Waiting && m.NextRunAt != nil && m.NextRunAt.Before(m.EndsAt)
	run, err := s.store.LatestRun(c.UserContext(), m.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	if run == nil || run.FinishedAt != nil {
		// A send due a while ago that has not started: a worker takes a
		// due run within seconds, unless none runs. (Told only.)
		if p.Planned && time.Since(*m.NextRunAt) > overdue && !s.workerRuns() {
			p.OverdueSince = formatTime(*m.NextRunAt, u.TimeZone)
		}
		if run == nil {
			return p, nil
		}
	}
	p.RunID, p.Active, p.Trigger = run.ID, run.FinishedAt == nil, runTrigger(*run)
	p.Started = formatTime(run.StartedAt, u.TimeZone)
	p.Sent, p.Failed, p.Skipped, p.Total = run.Succeeded, run.Failed, run.Skipped, run.Total
	p.SkippedWhy = skippedWhy(run, m, u)
	if p.Active {
		// Told only, never relied upon: Redis failing hides the notice.
		if t, ok, err := s.mailHealth.Trouble(c.UserContext()); err == nil && ok {
			p.Trouble, p.TroubleSince = t.Reason, formatTime(t.Since, u.TimeZone)
		}
		p.NoWorker = !s.workerRuns()
	}
	return p, nil
}

// overdue is how long after its time a planned send that has not started
// is told to be waiting for a worker.
const overdue = time.Minute

// workerRuns reports whether a worker process takes the mailings' tasks,
// as the workers tell Redis every few seconds (true when Redis cannot
// say: the notice is told only, never relied upon). The answer is kept
// as long as a worker's beat: every open page of a sending run asks each
// second, and Asynq reads every server's and worker's record to answer.
func (s *Server) workerRuns() bool {
	w := &s.workersSeen
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.at) < workerBeat {
		return w.runs
	}
	servers, err := s.inspector.Servers()
	w.at, w.runs = time.Now(), err != nil || slices.ContainsFunc(servers, func(si *asynq.ServerInfo) bool {
		_, ok := si.Queues[task.QueueDefault]
		return ok && si.Status != "stopped"
	})
	return w.runs
}

// workerBeat is how often an Asynq server tells Redis it runs.
const workerBeat = 5 * time.Second

// workersSeen is the last answer of workerRuns, and when it was had.
type workersSeen struct {
	mu   sync.Mutex
	at   time.Time
	runs bool
}

// skippedWhy explains a finished run's skipped recipients: how many of
// them the run did not reach before it stopped, why it stopped (as far as
// the mailing tells now) and, to its owner while the mailing may send, how
// to reach them; and what the others were.
func skippedWhy(run *model.Run, m *store.MailingRow, u *model.User) string {
	if run.FinishedAt == nil || run.Skipped == 0 {
		return ""
	}
	closed := !run.FinishedAt.Before(m.EndsAt)
	if run.Unreached == 0 { // also a run from before unreached recipients were counted
		switch {
		case closed:
			return "Sending stopped when the window closed at " + formatTime(m.EndsAt, u.TimeZone) +
				": recipients not reached by then count as skipped, as do those who had unsubscribed, bounced or been deleted."
		case m.Disabled():
			return "Skipped recipients got no mail: they had unsubscribed, bounced or been deleted, or the mailing was switched off before their turn."
		}
		return "Skipped recipients got no mail: they had unsubscribed or bounced, or were removed or deleted before their turn."
	}
	n := component.Counted(int64(run.Unreached), "recipient was", "recipients were")
	var why string
	switch {
	case closed:
		why = "Sending stopped when the window closed at " + formatTime(m.EndsAt, u.TimeZone) + ": " + n + " not reached."
	case m.Disabled():
		why = "The mailing was switched off before " + n + " reached."
	default:
		why = n + " not reached: the mailing was switched off, or its owner blocked, while it sent."
	}
	if mayRest := !closed && m.Status != model.StatusFinished && m.OwnerID == u.ID; mayRest && m.Disabled() && m.DisabledByManager {
		why += " A manager switched it off: once a manager switches it on again, “Send to the rest” mails them."
	} else if mayRest && m.Disabled() {
		why += " Once it is switched on again, “Send to the rest” mails them."
	} else if mayRest {
		why += " “Send to the rest” mails them."
	}
	if others := run.Skipped - run.Unreached; others > 0 {
		why += " The other " + component.Count(int64(others)) + " skipped had unsubscribed, bounced or been deleted, or were removed from the mailing before their turn."
	}
	return why
}

// StatusStopPolling is htmx's "stop polling" status.
const StatusStopPolling = 286

// runProgress answers htmx's polling with the progress box; the same URL
// opened as a page (a bookmark, a reload) shows the mailing's whole page.
func (s *Server) runProgress(c *fiber.Ctx) error {
	if !isHTMX(c) {
		// Opened as a page, it is the mailing's whole page; its status
		// still says whether the run is done (286), as the box's does.
		if err := s.showMailing(c); err != nil {
			return err
		}
		if done, _ := c.Locals(localRunDone).(bool); done && c.Response().StatusCode() == fiber.StatusOK {
			c.Status(StatusStopPolling)
		}
		return nil
	}
	u := auth.CurrentUser(c)
	m, err := s.readableMailing(c)
	if errors.Is(err, fiber.ErrNotFound) {
		c.Set("HX-Refresh", "true") // a box left polling a mailing deleted since: the page says it is gone
		return err
	} else if err != nil {
		return err
	}
	p, err := s.progressOf(c, m, u)
	if err != nil {
		return err
	}
	// 286 ends the fast polling when the run is done; the box swapped in
	// polls slowly again while another run may start.
	status := fiber.StatusOK
	if !p.Active {
		status = StatusStopPolling
	}
	// The run the box followed has ended, or a run has started since the
	// page was shown: the whole page changes (its status, its buttons, its
	// runs table), so htmx reloads it.
	latest := strconv.FormatInt(p.RunID, 10)
	watched, seen := c.Query("run"), c.Query("seen")
	if (watched != "" && (!p.Active || watched != latest)) || (seen != "" && seen != latest) {
		c.Set("HX-Refresh", "true")
		// What changed is said at the top of the page reloaded.
		if watched == latest {
			s.setFlash(c, layout.FlashInfo, p.Ended())
		} else {
			s.setFlash(c, layout.FlashInfo, "A run of this mailing has started.")
		}
	}
	return render(c, status, mailings.ProgressBox(p))
}

// localRunDone tells runProgress, opened as a page, what the mailing's page
// found: no run of the mailing is sending.
const localRunDone = "web.run-done"

// recipientPage is the layout of the unsubscribe pages, which a mail's
// recipient opens: no user of the site, offered no sign-in.
func (s *Server) recipientPage(c *fiber.Ctx) layout.Page {
	p := s.page(c, "Unsubscribe")
	p.Recipient = true
	return p
}

// errUnsubscribeLink is an unsubscribe link that leads to no address: cut
// short or altered, not signed here, for an owner gone since, or (made
// before links carried their address) for a client deleted or an address
// changed since.
var errUnsubscribeLink = errors.New("unsubscribe link leads to no address")

// unsubscribeTarget is the address of one owner's list a signed
// unsubscribe link names.
type unsubscribeTarget struct {
	owner *model.User
	email string
}

// readUnsubscribeLink reads the address of a signed unsubscribe link. The
// address is the one the mail went to, wherever its client is since: the
// link unsubscribes that address, never the client's new one.
func (s *Server) readUnsubscribeLink(c *fiber.Ctx) (unsubscribeTarget, error) {
	ctx, token := c.UserContext(), c.Params("token")
	l, err := mail.ReadUnsubscribeToken(s.cfg.SessionSecret, token)
	if err != nil {
		return unsubscribeTarget{}, errUnsubscribeLink
	}
	if l.Email == "" {
		// A link made before links carried their address names it through
		// its client, signed for the address the mail went to: once that
		// changed, the link is not the new address's to see or unsubscribe.
		cl, err := s.store.ClientByID(ctx, store.Own(l.OwnerID), l.ClientID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !mail.VerifyUnsubscribeToken(s.cfg.SessionSecret, token, cl.Email)) {
			return unsubscribeTarget{}, errUnsubscribeLink
		}
		if err != nil {
			return unsubscribeTarget{}, err
		}
		l.Email = cl.Email
	}
	owner, err := s.store.UserByID(ctx, l.OwnerID)
	if errors.Is(err, store.ErrNotFound) {
		return unsubscribeTarget{}, errUnsubscribeLink
	}
	if err != nil {
		return unsubscribeTarget{}, err
	}
	return unsubscribeTarget{owner: owner, email: l.Email}, nil
}

func senderName(u *model.User) string {
	if u.FullName != "" {
		return u.FullName
	}
	return u.Email
}

// unsubscribeForm asks the recipient to confirm (a GET must not
// unsubscribe: mail scanners follow links).
func (s *Server) unsubscribeForm(c *fiber.Ctx) error {
	t, err := s.readUnsubscribeLink(c)
	if errors.Is(err, errUnsubscribeLink) {
		return s.badUnsubscribeLink(c)
	}
	if err != nil {
		return err
	}
	done, err := s.store.IsUnsubscribed(c.UserContext(), t.owner.ID, t.email)
	if err != nil {
		return err
	}
	v := unsubscribe.View{Token: c.Params("token"), Email: t.email, Sender: senderName(t.owner), Done: done}
	return render(c, fiber.StatusOK, unsubscribe.Page(s.recipientPage(c), v))
}

// unsubscribe takes the confirmation and the RFC 8058 one-click POST (no
// session, no CSRF token: the signed link is the authority). The address
// is unsubscribed even when its client has been deleted since the mail:
// added again, the client is added unsubscribed.
func (s *Server) unsubscribe(c *fiber.Ctx) error {
	oneClick := c.FormValue("List-Unsubscribe") == "One-Click" // RFC 8058, from a mail provider
	t, err := s.readUnsubscribeLink(c)
	if errors.Is(err, errUnsubscribeLink) {
		// A mail provider, not a person, is answered in plain text, and
		// alike whatever the trouble: a link made up learns nothing (a
		// 404 for some ids and not others would tell which clients exist).
		if oneClick {
			return c.Type("txt").SendString("unsubscribed\n")
		}
		return s.badUnsubscribeLink(c)
	}
	if err != nil {
		return err
	}
	if err := s.store.Unsubscribe(c.UserContext(), t.owner.ID, t.email); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	s.stats.Changed(c.UserContext(), t.owner.ID)
	if oneClick {
		return c.Type("txt").SendString("unsubscribed\n")
	}
	return redirect(c, "/u/"+c.Params("token")) // which now says it is done
}

// resubscribe undoes an unsubscription, from the page that confirmed it:
// the recipient's own choice, asked for on that page (a plain form with
// its CSRF token, never the one-click POST a mail provider makes).
func (s *Server) resubscribe(c *fiber.Ctx) error {
	t, err := s.readUnsubscribeLink(c)
	if errors.Is(err, errUnsubscribeLink) {
		return s.badUnsubscribeLink(c)
	}
	if err != nil {
		return err
	}
	err = s.store.Resubscribe(c.UserContext(), t.owner.ID, t.email)
	if err != nil && !errors.Is(err, store.ErrNotFound) { // not unsubscribed (any more): nothing to undo
		return fmt.Errorf("resubscribe: %w", err)
	}
	s.stats.Changed(c.UserContext(), t.owner.ID)
	cl, err := s.store.ClientByAddress(c.UserContext(), t.owner.ID, t.email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	msg := "You are subscribed again: " + t.email + " gets mailings from " + senderName(t.owner) + "."
	switch {
	case cl == nil:
		msg = "You are subscribed again: " + senderName(t.owner) + " may add " + t.email + " to their mailings again."
	case cl.BouncedAt != nil:
		msg = "You are subscribed again, but mail to " + t.email + " has bounced, so mailings from " + senderName(t.owner) +
			" skip it until they clear the bounce."
	}
	s.setFlash(c, layout.FlashSuccess, msg)
	return redirect(c, "/u/"+c.Params("token"))
}

// badUnsubscribeLink tells the recipient what may be wrong with the link
// and what to do, with 404: the link leads to nothing here.
func (s *Server) badUnsubscribeLink(c *fiber.Ctx) error {
	return render(c, fiber.StatusNotFound, unsubscribe.Page(s.recipientPage(c), unsubscribe.View{Invalid: true}))
}

func (s *Server) clearBounce(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = s.store.ClearBounce(c.UserContext(), auth.UserID(c), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	s.setFlash(c, layout.FlashSuccess, "The bounce is cleared; this client gets mailings again.")
	return redirect(c, "/clients/"+c.Params("id"))
}
