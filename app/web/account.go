package web

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/web/form"
	"rassylka/views/account"
	"rassylka/views/component"
	"rassylka/views/layout"
)

func (s *Server) registerForm(c *fiber.Ctx) error {
	if auth.CurrentUser(c) != nil {
		return c.Redirect("/", fiber.StatusSeeOther)
	}
	return render(c, fiber.StatusOK, account.Register(s.page(c, "Create account"), account.RegisterView{}))
}

func (s *Server) register(c *fiber.Ctx) error {
	var f form.Register
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, account.Register(s.page(c, "Create account"),
			account.RegisterView{Email: f.Email, FullName: f.FullName, TimeZone: f.TimeZone, Errors: errs}))
	}
	if refusal, err := s.throttleAccountForm(c); err != nil || refusal != "" {
		if err != nil {
			return err
		}
		return render(c, fiber.StatusTooManyRequests, account.Register(s.page(c, "Create account"),
			account.RegisterView{Email: f.Email, FullName: f.FullName, TimeZone: f.TimeZone, Error: refusal}))
	}
	if err := s.accounts.Register(c.UserContext(), f.Email, f.FullName, f.Password, f.TimeZone); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	s.stats.SiteChanged(c.UserContext()) // the managers' per-user table may have a new row
	s.setSentTo(c, f.Email)
	return redirect(c, "/register/sent")
}

func (s *Server) registerSent(c *fiber.Ctx) error {
	n := account.Notice{
		Title:  "Check your inbox",
		Text:   "We mailed you a link to confirm your address; the mail says how long it works. No mail after a few minutes? Look in your spam folder, or ask for a new link.",
		Resend: "confirm",
	}
	if to := s.sentTo(c); to != "" {
		n.Email = to
		n.Text = "We mailed a link to " + to + " to confirm it; the mail says how long it works. " +
			"No mail after a few minutes? Look in your spam folder, or ask for a new link."
		n.LinkHref, n.LinkLabel = "/register", "Not your address? Create the account with the right one"
	}
	return render(c, fiber.StatusOK, account.NoticePage(s.page(c, "Check your inbox"), n))
}

// sentToCookie holds, for a few minutes, the address the browser asked a
// link for, so that the "Check your inbox" page can name it (a mistyped
// address then shows) and fill the resend form with it.
const sentToCookie = "rassylka_sent_to"

func (s *Server) setSentTo(c *fiber.Ctx, email string) {
	s.setNote(c, sentToCookie, email, time.Now().Add(15*time.Minute))
}

// forgetSentTo clears the note of setSentTo once a session starts or
// ends: the sign-in form would show the address to whoever comes next to
// that screen.
func (s *Server) forgetSentTo(c *fiber.Ctx) {
	if c.Cookies(s.cookieName(sentToCookie)) != "" {
		s.setNote(c, sentToCookie, "", time.Unix(0, 0))
	}
}

// sentTo is the address of setSentTo, "" when none (or not an address).
func (s *Server) sentTo(c *fiber.Ctx) string {
	b, ok := s.note(c, sentToCookie)
	if !ok {
		return ""
	}
	email, msg := form.Email(b)
	if msg != "" {
		return ""
	}
	return email
}

// tokenNotice explains why a mailed link did not work.
func tokenNotice(err error, resend string) (int, account.Notice) {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return fiber.StatusGone, account.Notice{Title: "This link has expired",
			Text: "Links we mail work for a limited time. Ask for a new one below.", Resend: resend}
	case errors.Is(err, auth.ErrTokenUsed):
		// Used, retired by the use of another link of its kind, or
		// replaced by a newer link (the address was registered again, the
		// password changed).
		return fiber.StatusGone, account.Notice{Title: "This link was already used",
			Text: "Each link works once, and using one ends the others mailed for the same purpose; registering the address again or changing the password ends the earlier ones too, for a newer link. If you used one, you are all set: sign in. " +
				"Otherwise use the latest mail we sent, or ask for a new link below.",
			LinkHref: "/login", LinkLabel: "Sign in", Resend: resend}
	default:
		return fiber.StatusNotFound, account.Notice{Title: "This link is not valid",
			Text: "Check that you copied the whole link from the mail, or ask for a new one.", Resend: resend}
	}
}

func (s *Server) confirm(c *fiber.Ctx) error {
	u, err := s.accounts.Confirm(c.UserContext(), c.Params("token"))
	if errors.Is(err, auth.ErrTokenInvalid) || errors.Is(err, auth.ErrTokenExpired) || errors.Is(err, auth.ErrTokenUsed) {
		status, n := tokenNotice(err, "confirm")
		return render(c, status, account.NoticePage(s.page(c, n.Title), n))
	}
	if err != nil {
		return fmt.Errorf("confirm email: %w", err)
	}
	if u.Blocked() {
		s.setFlash(c, layout.FlashError, "Your email address is confirmed, but your account is blocked, so you cannot sign in.")
		return redirect(c, "/login")
	}
	s.setFlash(c, layout.FlashSuccess, "Your email address is confirmed. You can sign in now.")
	if auth.CurrentUser(c) != nil {
		return redirect(c, "/")
	}
	s.setSentTo(c, u.Email) // the sign-in form has it filled in
	return redirect(c, "/login")
}

func (s *Server) resendConfirmation(c *fiber.Ctx) error {
	var f form.EmailOnly
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		n := account.Notice{Title: "Send a new confirmation link", Text: errs["email"], Resend: "confirm", Email: f.Email}
		return render(c, fiber.StatusUnprocessableEntity, account.NoticePage(s.page(c, n.Title), n))
	}
	if refusal, err := s.throttleAccountForm(c); err != nil || refusal != "" {
		if err != nil {
			return err
		}
		n := account.Notice{Title: "Send a new confirmation link", Text: refusal, Resend: "confirm", Email: f.Email}
		return render(c, fiber.StatusTooManyRequests, account.NoticePage(s.page(c, n.Title), n))
	}
	// As for a reset link (forgot), the link is made and mailed after the
	// answer: only an unconfirmed account has one to store and mail, and
	// the answer must not take longer for it.
	addr := strings.Clone(f.Email)
	s.afterAnswer("resend confirmation", func(ctx context.Context) error { return s.accounts.ResendConfirmation(ctx, addr) })
	s.setSentTo(c, f.Email)
	return redirect(c, "/register/sent")
}

func (s *Server) loginView(c *fiber.Ctx) account.LoginView {
	v := account.LoginView{}
	for _, p := range s.providers.Enabled() {
		v.Providers = append(v.Providers, account.Provider{Name: p.Name, Label: p.Label})
	}
	return v
}

func (s *Server) loginForm(c *fiber.Ctx) error {
	next := auth.SafeNext(c.Query("next"))
	if auth.CurrentUser(c) != nil {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	v := s.loginView(c)
	v.Next = next
	// The address this browser registered or confirmed a moment ago.
	v.Email = s.sentTo(c)
	if next != "/" {
		v.Notice = "Sign in to see that page: you will be taken back to it."
	}
	switch c.Query("ended") {
	case "blocked":
		// Told when the session ended, which may be after an unblock.
		v.Error = "You were signed out because your account was blocked. If it has been unblocked since, sign in again; if not, ask a manager."
	case "expired":
		v.Error = "Your session has expired. Please sign in again."
	}
	return render(c, fiber.StatusOK, account.Login(s.page(c, "Sign in"), v))
}

func (s *Server) login(c *fiber.Ctx) error {
	var f form.Login
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	errs := f.Validate()
	v := s.loginView(c)
	v.Email, v.Next, v.Errors = f.Email, f.Next, errs
	p := s.page(c, "Sign in")
	if errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, account.Login(p, v))
	}
	wait, err := s.takeGuess(c, f.Email)
	if err != nil {
		return err
	}
	if wait > 0 {
		v.Error = fmt.Sprintf("Too many failed sign-ins. Please wait %s and try again, or reset your password.", minutes(wait))
		return render(c, fiber.StatusTooManyRequests, account.Login(p, v))
	}

	u, err := s.accounts.Authenticate(c.UserContext(), f.Email, f.Password)
	// The right password gives the attempt back, even when the account
	// cannot sign in yet (unconfirmed) or now (blocked): it was no guess.
	if err == nil || errors.Is(err, auth.ErrBlocked) || errors.Is(err, auth.ErrUnconfirmed) {
		if err := s.rightGuess(c, f.Email); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		v.Error = "Wrong email or password."
		return render(c, fiber.StatusUnprocessableEntity, account.Login(p, v))
	case errors.Is(err, auth.ErrBlocked):
		v.Error = "Your account has been blocked. Ask a manager if you think this is a mistake."
		return render(c, fiber.StatusForbidden, account.Login(p, v))
	case errors.Is(err, auth.ErrUnconfirmed):
		v.Error = "Please confirm your email address first: open the link we mailed you when you signed up."
		v.Unconfirmed = true
		return render(c, fiber.StatusForbidden, account.Login(p, v))
	case err != nil:
		return fmt.Errorf("sign in: %w", err)
	}
	// A password changed while this one was checked: wrong now.
	if err := s.sessions.SignInByPassword(c, u); errors.Is(err, auth.ErrBadCredentials) {
		v.Error = "Wrong email or password."
		return render(c, fiber.StatusUnprocessableEntity, account.Login(p, v))
	} else if err != nil {
		return err
	}
	if _, ok := s.device(c, f.Email); !ok {
		s.setDevice(c, f.Email)
	}
	s.forgetSentTo(c)
	return redirect(c, f.Next)
}

func (s *Server) logout(c *fiber.Ctx) error {
	if err := s.sessions.SignOut(c); err != nil {
		return err
	}
	s.forgetSentTo(c)
	s.setFlash(c, layout.FlashInfo, "You are signed out.")
	return redirect(c, "/")
}

func (s *Server) forgotForm(c *fiber.Ctx) error {
	return render(c, fiber.StatusOK, account.Forgot(s.page(c, "Forgot password"), account.ForgotView{}))
}

func (s *Server) forgot(c *fiber.Ctx) error {
	var f form.EmailOnly
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, account.Forgot(s.page(c, "Forgot password"),
			account.ForgotView{Email: f.Email, Errors: errs}))
	}
	if refusal, err := s.throttleAccountForm(c); err != nil || refusal != "" {
		if err != nil {
			return err
		}
		return render(c, fiber.StatusTooManyRequests, account.Forgot(s.page(c, "Forgot password"),
			account.ForgotView{Email: f.Email, Error: refusal}))
	}
	// The link is made and mailed after the answer, so that the answer
	// takes as long whether or not the address has an account (only then is
	// there a link to store and a mail to queue).
	addr := strings.Clone(f.Email)
	s.afterAnswer("request reset", func(ctx context.Context) error { return s.accounts.RequestReset(ctx, addr) })
	s.setSentTo(c, f.Email)
	return redirect(c, "/password/forgot/sent")
}

func (s *Server) forgotSent(c *fiber.Ctx) error {
	n := account.Notice{
		Title:     "Check your inbox",
		Text:      "If an account exists for that address, we mailed it a link to set a new password. The link works for one hour.",
		LinkHref:  "/login",
		LinkLabel: "Back to sign in",
	}
	if to := s.sentTo(c); to != "" {
		n.Text = "If an account exists for " + to + ", we mailed it a link to set a new password. The link works for one hour."
	}
	return render(c, fiber.StatusOK, account.NoticePage(s.page(c, "Check your inbox"), n))
}

// resetToken checks the reset link of the request; when it cannot be used
// it answers with the page saying why (done true).
func (s *Server) resetToken(c *fiber.Ctx) (email string, done bool, err error) {
	email, err = s.accounts.CheckResetToken(c.UserContext(), c.Params("token"))
	if errors.Is(err, auth.ErrTokenInvalid) || errors.Is(err, auth.ErrTokenExpired) || errors.Is(err, auth.ErrTokenUsed) {
		status, n := tokenNotice(err, "reset")
		return "", true, render(c, status, account.NoticePage(s.page(c, n.Title), n))
	}
	if err != nil {
		return "", true, fmt.Errorf("check reset token: %w", err)
	}
	return email, false, nil
}

func (s *Server) resetForm(c *fiber.Ctx) error {
	email, done, err := s.resetToken(c)
	if done {
		return err
	}
	return render(c, fiber.StatusOK, account.Reset(s.page(c, "Set a new password"), account.ResetView{Token: c.Params("token"), Email: email}))
}

func (s *Server) reset(c *fiber.Ctx) error {
	token := c.Params("token")
	var f form.NewPassword
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	email, done, err := s.resetToken(c)
	if done {
		return err
	}
	if errs := f.Validate(email); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, account.Reset(s.page(c, "Set a new password"),
			account.ResetView{Token: token, Email: email, Errors: errs}))
	}
	u, unlinked, err := s.accounts.ResetPassword(c.UserContext(), token, f.Password)
	switch {
	case errors.Is(err, auth.ErrTokenInvalid), errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrTokenUsed):
		status, n := tokenNotice(err, "reset")
		return render(c, status, account.NoticePage(s.page(c, n.Title), n))
	case errors.Is(err, auth.ErrBlocked):
		if err := s.sessions.EndAll(c.UserContext(), u.ID); err != nil {
			return err
		}
		n := account.Notice{Title: "Password changed, but your account is blocked",
			Text: "Your new password is set. You cannot sign in while a manager keeps your account blocked."}
		return render(c, fiber.StatusForbidden, account.NoticePage(s.page(c, n.Title), n))
	case err != nil:
		return fmt.Errorf("reset password: %w", err)
	}
	if err := s.sessions.EndAll(c.UserContext(), u.ID); err != nil {
		return err
	}
	if err := s.sessions.SignIn(c, u); err != nil {
		return err
	}
	s.forgetSentTo(c)
	msg := "Your new password is set, and you are signed in. Other sessions were signed out."
	if unlinked > 0 {
		msg += " Sign-ins through providers under another address than yours were unlinked: link them again from your account page if they are yours."
	}
	s.setFlash(c, layout.FlashSuccess, msg)
	return redirect(c, "/")
}

// settingsView gathers the account page's data.
func (s *Server) settingsView(c *fiber.Ctx) (account.SettingsView, error) {
	u := auth.CurrentUser(c)
	ids, err := s.store.IdentitiesOfUser(c.UserContext(), u.ID)
	if err != nil {
		return account.SettingsView{}, err
	}
	moving, err := s.store.LiveToken(c.UserContext(), u.ID, model.TokenChangeEmail)
	if err != nil {
		return account.SettingsView{}, err
	}
	v := account.SettingsView{
		Email: u.Email, Role: string(u.Role), FullName: u.FullName, TimeZone: u.TimeZone,
		SenderName: u.SenderName, ReplyTo: cmp.Or(u.ReplyToPending, u.ReplyTo), ReplyToNow: u.ReplyTo, ReplyToPending: u.ReplyToPending,
		MailFrom: s.mailFrom.Address, MailFromName: s.mailFrom.Name, HasPassword: u.PasswordHash != nil, Zones: commonZones,
	}
	if moving != nil {
		v.EmailPending = moving.Address
	}
	for _, p := range s.providers.Enabled() {
		v.Providers = append(v.Providers, account.Provider{Name: p.Name, Label: p.Label})
	}
	for _, id := range ids {
		v.Identities = append(v.Identities, account.Identity{
			ID: id.ID, Provider: id.Provider, Email: id.Email, Linked: formatTime(id.CreatedAt, u.TimeZone),
			CanUnlink: v.HasPassword || len(ids) > 1,
		})
	}
	return v, nil
}

func (s *Server) accountPage(c *fiber.Ctx) error {
	v, err := s.settingsView(c)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, account.Settings(s.page(c, "Your account"), v))
}

func (s *Server) updateProfile(c *fiber.Ctx) error {
	var f form.Profile
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	if errs := f.Validate(); errs.Any() {
		v, err := s.settingsView(c)
		if err != nil {
			return err
		}
		v.FullName, v.TimeZone, v.SenderName, v.ReplyTo, v.ProfileErrors = f.FullName, f.TimeZone, f.SenderName, f.ReplyTo, errs
		return render(c, fiber.StatusUnprocessableEntity, account.Settings(s.page(c, "Your account"), v))
	}
	u := auth.CurrentUser(c)
	// A new address to confirm mails it: a few an hour per account (any
	// one address gets at most the account mails' limit).
	asked := f.ReplyTo != "" && f.ReplyTo != u.ReplyTo && f.ReplyTo != u.ReplyToPending && !strings.EqualFold(f.ReplyTo, u.Email)
	if asked {
		wait, err := take(c, s.replyLimit, strconv.FormatInt(u.ID, 10))
		if err != nil {
			return err
		}
		if wait > 0 {
			v, err := s.settingsView(c)
			if err != nil {
				return err
			}
			v.FullName, v.TimeZone, v.SenderName, v.ReplyTo = f.FullName, f.TimeZone, f.SenderName, f.ReplyTo
			v.ProfileErrors = form.FieldErr("reply_to", tooManyAddresses(wait))
			return render(c, fiber.StatusTooManyRequests, account.Settings(s.page(c, "Your account"), v))
		}
	}
	if err := s.store.UpdateProfile(c.UserContext(), u.ID, store.Profile{FullName: f.FullName, TimeZone: f.TimeZone, SenderName: f.SenderName}); err != nil {
		return fmt.Errorf("update profile: %w", err)
	}
	pending, mailed, err := s.accounts.SetReplyTo(c.UserContext(), u.ID, f.ReplyTo)
	if err != nil {
		return fmt.Errorf("set reply address: %w", err)
	}
	switch {
	case mailed:
		s.setFlash(c, layout.FlashSuccess, "Your profile is saved. We mailed "+f.ReplyTo+" a link to confirm it: replies go there once it is confirmed.")
	case pending && asked:
		s.setFlash(c, layout.FlashError, "Your profile is saved, but "+f.ReplyTo+" was mailed too many links in the last hour: save it again later to mail it a new one.")
	default:
		s.setFlash(c, layout.FlashSuccess, "Your profile is saved.")
	}
	return redirect(c, "/account")
}

// changeEmail asks to move the account to another address: a link is
// mailed to it, which makes the move, and the account's own address is
// told. It takes the account's password, a day old, and a few addresses
// an hour are mailed per account.
func (s *Server) changeEmail(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	var f form.ChangeEmail
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	refuse := func(status int, errs form.Errors) error {
		v, err := s.settingsView(c)
		if err != nil {
			return err
		}
		v.NewEmail, v.EmailErrors = f.Email, errs
		return render(c, status, account.Settings(s.page(c, "Your account"), v))
	}
	if errs := f.Validate(u.Email, u.PasswordHash != nil); errs.Any() {
		return refuse(fiber.StatusUnprocessableEntity, errs)
	}
	// A move takes a password a day old: a session's holder who sets one
	// (an account without) or changes it cannot move the account away
	// before its owner, mailed of the change, can stop it.
	switch from := auth.MayMoveFrom(u); {
	case from.IsZero():
		return refuse(fiber.StatusUnprocessableEntity, form.FieldErr("new_email",
			"Set a password first: a move asks for it, from a day after it is set."))
	case time.Now().Before(from):
		return refuse(fiber.StatusUnprocessableEntity, form.FieldErr("new_email",
			"Your password was set or changed less than a day ago: the account can move from "+
				formatTime(from, u.TimeZone)+" on, so that a session taken over cannot move it away before you are told."))
	}
	// (Checked again under the user's lock; here so that a request that
	// cannot move the account spends none of its allowances.)
	if back, err := s.store.LiveToken(c.UserContext(), u.ID, model.TokenRevertEmail); err != nil {
		return err
	} else if back != nil {
		return refuse(fiber.StatusUnprocessableEntity, form.FieldErr("new_email",
			movedLately+" It can move again from "+formatTime(back.ExpiresAt, u.TimeZone)+" on."))
	}
	// The password is checked under the sign-in throttle.
	wait, err := s.takeGuess(c, u.Email)
	if err != nil {
		return err
	}
	if wait > 0 {
		return refuse(fiber.StatusTooManyRequests, form.FieldErr("email_password", tooManyGuesses(wait)))
	}
	switch err := auth.CheckOwnPassword(u, f.Password); {
	case errors.Is(err, auth.ErrBadCredentials):
		return refuse(fiber.StatusUnprocessableEntity, form.FieldErr("email_password", "This is not your password."))
	case err != nil:
		return err
	}
	if err := s.rightGuess(c, u.Email); err != nil {
		return err
	}
	wait, err = take(c, s.replyLimit, "email:"+strconv.FormatInt(u.ID, 10))
	if err != nil {
		return err
	}
	if wait > 0 {
		return refuse(fiber.StatusTooManyRequests, form.FieldErr("new_email", tooManyAddresses(wait)))
	}
	addr := model.CanonicalEmail(f.Email)
	mailed, err := s.accounts.RequestEmailChange(c.UserContext(), u, addr)
	switch {
	case errors.Is(err, auth.ErrAccountChanged):
		s.setFlash(c, layout.FlashError, "Your password or your account changed meanwhile, so nothing changed: try again.")
		return redirect(c, "/account")
	case errors.Is(err, auth.ErrMovedLately):
		return refuse(fiber.StatusUnprocessableEntity, form.FieldErr("new_email", movedLately))
	case errors.Is(err, auth.ErrNoticeLimit):
		return refuse(fiber.StatusTooManyRequests, form.FieldErr("new_email",
			"Your address was sent too many notices in the last hour, and must be told of a move: try again later."))
	case err != nil:
		return fmt.Errorf("change email: %w", err)
	}
	if !mailed {
		s.setFlash(c, layout.FlashError, addr+" was mailed too many links in the last hour, so nothing changed: ask again later.")
		return redirect(c, "/account")
	}
	s.setFlash(c, layout.FlashSuccess, "We mailed "+addr+" a link: your account signs in with that address once its link is opened. Until then, sign in with "+u.Email+".")
	return redirect(c, "/account")
}

// tooManyGuesses refuses a password checked for a signed-in user over
// the sign-in throttle, for wait.
func tooManyGuesses(wait time.Duration) string {
	return fmt.Sprintf("Too many wrong passwords. Please wait %s and try again.", minutes(wait))
}

// tooManyAddresses refuses an address to confirm over a user's hourly
// number (a reply address's, a new sign-in address's), for wait.
func tooManyAddresses(wait time.Duration) string {
	return fmt.Sprintf("You have asked %d addresses to confirm in the last hour. Please try again in %s.", replyToMails, minutes(wait))
}

// movedLately refuses a move within the week after one.
const movedLately = "Your account moved to this address less than a week ago, and the address it left may move it back until a week is over."

// cancelEmailChange gives up the move to another address: its link stops
// working.
func (s *Server) cancelEmailChange(c *fiber.Ctx) error {
	if err := s.accounts.CancelEmailChange(c.UserContext(), auth.UserID(c)); err != nil {
		return fmt.Errorf("cancel email change: %w", err)
	}
	s.setFlash(c, layout.FlashSuccess, "The move to another address is given up: you sign in with "+auth.CurrentUser(c).Email+".")
	return redirect(c, "/account")
}

// emailChangeForm shows the page of a new address's link, mailed to that
// address: which account would move to it, and a button that agrees.
// (Opening the link alone changes nothing: mail scanners open every link.)
func (s *Server) emailChangeForm(c *fiber.Ctx) error {
	u, addr, done, err := s.addressLink(c, model.TokenChangeEmail)
	if done {
		return err
	}
	return render(c, fiber.StatusOK, account.AgreePage(s.page(c, "Confirm your new sign-in address"), account.AgreeView{
		Name: "email-change", Account: u.Email, Asks: "to sign in with", Address: addr, After: " from now on.",
		Agree: "Yes, sign in with this address", Otherwise: "If you did not ask for it, close this page: nothing changes.",
		Action: "/account/email/" + c.Params("token"),
	}))
}

// confirmEmailChange agrees, from a new address's link: the account signs
// in with it from now on.
func (s *Server) confirmEmailChange(c *fiber.Ctx) error {
	u, old, err := s.accounts.ChangeEmail(c.UserContext(), c.Params("token"))
	if refused, rerr := s.refuseAddressLink(c, err); refused {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	return s.addressLinkUsed(c, u, "You sign in with "+u.Email+" now, not with "+old+".", account.Notice{Title: "Address changed",
		Text: "The account signs in with " + u.Email + " now, not with " + old + ".", LinkHref: "/login", LinkLabel: "Sign in"})
}

// cancelReplyTo gives up the reply address waiting for its confirmation
// (its link stops working); replies go where they went.
func (s *Server) cancelReplyTo(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	if _, _, err := s.accounts.SetReplyTo(c.UserContext(), u.ID, u.ReplyTo); err != nil {
		return fmt.Errorf("cancel reply address: %w", err)
	}
	s.setFlash(c, layout.FlashSuccess, "The address waiting for its confirmation is given up.")
	return redirect(c, "/account")
}

// revertForm shows the page of the link a move mailed to the old address:
// a new password, and the account moves back.
func (s *Server) revertForm(c *fiber.Ctx) error {
	_, addr, done, err := s.addressLink(c, model.TokenRevertEmail)
	if done {
		return err
	}
	return render(c, fiber.StatusOK, account.Reset(s.page(c, "Move your account back"), s.revertView(c, addr, nil)))
}

func (s *Server) revertView(c *fiber.Ctx, addr string, errs form.Errors) account.ResetView {
	return account.ResetView{Email: addr, Errors: errs, Revert: true, Action: "/account/email/revert/" + c.Params("token")}
}

// revertEmail moves the account back to the address it left, with a new
// password: every session ends, and this one signs in.
func (s *Server) revertEmail(c *fiber.Ctx) error {
	var f form.NewPassword
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	_, addr, done, err := s.addressLink(c, model.TokenRevertEmail)
	if done {
		return err
	}
	if errs := f.Validate(addr); errs.Any() {
		return render(c, fiber.StatusUnprocessableEntity, account.Reset(s.page(c, "Move your account back"), s.revertView(c, addr, errs)))
	}
	u, unlinked, err := s.accounts.RevertEmail(c.UserContext(), c.Params("token"), f.Password)
	if refused, rerr := s.refuseAddressLink(c, err); refused {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("move back: %w", err)
	}
	if err := s.sessions.EndAll(c.UserContext(), u.ID); err != nil {
		return err
	}
	if err := s.sessions.SignIn(c, u); err != nil {
		return err
	}
	msg := "Your account signs in with " + u.Email + " again, with your new password. Every other session was signed out."
	if unlinked > 0 {
		msg += " Sign-ins through providers under another address than yours were unlinked."
	}
	s.setFlash(c, layout.FlashSuccess, msg)
	return redirect(c, "/account")
}

// addressLink checks the link of the request, mailed to an address for
// purpose, without using it; when it does nothing it answers with the page
// saying why (done true).
func (s *Server) addressLink(c *fiber.Ctx, purpose model.TokenPurpose) (u *model.User, addr string, done bool, err error) {
	u, addr, err = s.accounts.CheckAddressToken(c.UserContext(), purpose, c.Params("token"))
	if refused, rerr := s.refuseAddressLink(c, err); refused {
		return nil, "", true, rerr
	}
	if err != nil {
		return nil, "", true, fmt.Errorf("%s link: %w", purpose, err)
	}
	return u, addr, false, nil
}

// addressLinkUsed answers a link mailed to an address, used: to its
// account's own session the account page says what changed (flash), to
// anyone else notice does.
func (s *Server) addressLinkUsed(c *fiber.Ctx, u *model.User, flash string, notice account.Notice) error {
	if cur := auth.CurrentUser(c); cur != nil && cur.ID == u.ID {
		s.setFlash(c, layout.FlashSuccess, flash)
		return redirect(c, "/account")
	}
	return render(c, fiber.StatusOK, account.NoticePage(s.page(c, notice.Title), notice))
}

// refuseAddressLink answers a link mailed to an address (a reply
// address's, a new sign-in address's) that does nothing (not valid,
// expired, used, its account blocked, or the address taken since) with
// why, and reports whether it did.
func (s *Server) refuseAddressLink(c *fiber.Ctx, err error) (bool, error) {
	var status int
	var n account.Notice
	switch {
	case errors.Is(err, auth.ErrBlocked):
		status, n = fiber.StatusGone, account.Notice{Title: "This account is blocked",
			Text: "A manager has blocked the account that asked: its mailings do not send, and nothing changes."}
	case errors.Is(err, auth.ErrAddressTaken):
		status, n = fiber.StatusConflict, account.Notice{Title: "This address has an account",
			Text: "The address has an account of its own now, so nothing changes.", LinkHref: "/login", LinkLabel: "Sign in"}
	case errors.Is(err, auth.ErrTokenInvalid) || errors.Is(err, auth.ErrTokenExpired) || errors.Is(err, auth.ErrTokenUsed):
		status, n = tokenNotice(err, "")
		if errors.Is(err, auth.ErrTokenUsed) { // or ended: given up, asked again, the password reset
			n.Title = "This link no longer works"
		}
		n = account.Notice{Title: n.Title,
			Text: "Each link works once, until it expires, and only while nothing has replaced it (a newer request, a reset of the password)."}
	default:
		return false, nil
	}
	return true, render(c, status, account.NoticePage(s.page(c, n.Title), n))
}

// replyToForm shows the page of a reply address's link, mailed to that
// address: which account asks, and a button that agrees. (Opening the
// link alone changes nothing: mail scanners open every link.)
func (s *Server) replyToForm(c *fiber.Ctx) error {
	u, addr, done, err := s.addressLink(c, model.TokenConfirmReplyTo)
	if done {
		return err
	}
	return render(c, fiber.StatusOK, account.AgreePage(s.page(c, "Confirm where replies go"), account.AgreeView{
		Name: "reply-to", Account: u.Email, Asks: "that its clients' replies to its mailings come to", Address: addr, After: ".",
		Agree: "Yes, send the replies here", Otherwise: "If you do not know about it, close this page: no replies will come to this address.",
		Action: "/account/reply-to/" + c.Params("token"),
	}))
}

// confirmReplyTo agrees, from a reply address's link: replies to the
// mailings of the account that asked go to that address now.
func (s *Server) confirmReplyTo(c *fiber.Ctx) error {
	u, addr, err := s.accounts.ConfirmReplyTo(c.UserContext(), c.Params("token"))
	if refused, rerr := s.refuseAddressLink(c, err); refused {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("confirm reply address: %w", err)
	}
	return s.addressLinkUsed(c, u, "Replies to your mailings now go to "+addr+".", account.Notice{Title: "Address confirmed",
		Text: "Replies to the mailings of the account " + u.Email + " now come to " + addr + "."})
}

func (s *Server) changePassword(c *fiber.Ctx) error {
	u := auth.CurrentUser(c)
	var f form.ChangePassword
	if err := c.BodyParser(&f); err != nil {
		return fiber.ErrBadRequest
	}
	errs := f.Validate(u.Email, u.PasswordHash != nil)
	status := fiber.StatusUnprocessableEntity
	if !errs.Any() {
		var err error
		if status, errs, err = s.newPassword(c, u, f); err != nil {
			return err
		}
	}
	if errs.Any() {
		v, err := s.settingsView(c)
		if err != nil {
			return err
		}
		v.PasswordErrors = errs
		return render(c, status, account.Settings(s.page(c, "Your account"), v))
	}
	// A new password ends every other session; this one continues.
	if err := s.sessions.EndAll(c.UserContext(), u.ID); err != nil {
		return err
	}
	if err := s.sessions.SignIn(c, u); err != nil {
		return err
	}
	s.setFlash(c, layout.FlashSuccess, "Your password is changed. Other sessions were signed out.")
	return redirect(c, "/account")
}

// newPassword changes u's password from the account page. The current
// password is checked under the sign-in throttle: a session's holder must
// not guess it faster than a sign-in could. A refusal comes back as the
// form's errors, with the answer's status.
func (s *Server) newPassword(c *fiber.Ctx, u *model.User, f form.ChangePassword) (int, form.Errors, error) {
	guessed := u.PasswordHash != nil // an account without one sets its first
	if guessed {
		wait, err := s.takeGuess(c, u.Email)
		if err != nil || wait > 0 {
			return fiber.StatusTooManyRequests, form.FieldErr("current_password", tooManyGuesses(wait)), err
		}
	}
	err := s.accounts.ChangePassword(c.UserContext(), u, f.Current, f.Password)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return fiber.StatusUnprocessableEntity, form.FieldErr("current_password", "This is not your current password."), nil
	case err != nil:
		return 0, nil, fmt.Errorf("change password: %w", err)
	case guessed:
		return 0, nil, s.rightGuess(c, u.Email)
	}
	return 0, nil, nil
}

func (s *Server) unlinkIdentity(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = s.store.UnlinkIdentity(c.UserContext(), auth.UserID(c), id)
	switch {
	case errors.Is(err, store.ErrLastSignIn):
		s.setFlash(c, layout.FlashError, "Set a password first: this linked account is your only way to sign in.")
		return redirect(c, "/account")
	case errors.Is(err, store.ErrNotFound):
		return fiber.ErrNotFound
	case err != nil:
		return err
	}
	s.setFlash(c, layout.FlashSuccess, "The account is unlinked.")
	return redirect(c, "/account")
}

// takeGuess counts a password about to be checked for the account of email
// against the sign-in limit, per client address and per account, before
// the check, so that parallel guesses cannot slip past it. Over the limit
// it returns how long to wait (0: go on).
func (s *Server) takeGuess(c *fiber.Ctx, email string) (time.Duration, error) {
	return take(c, s.loginLimit, s.clientKey(c), s.accountKey(c, email))
}

// rightGuess gives back the attempt of a right password: the address's
// count drops by one, the account's starts again.
func (s *Server) rightGuess(c *fiber.Ctx, email string) error {
	if err := s.loginLimit.Release(c.UserContext(), s.clientKey(c)); err != nil {
		return err
	}
	return s.loginLimit.Reset(c.UserContext(), s.accountKey(c, email))
}

// accountKey names the count of guesses at email's password. A browser
// that signed in to the account with its password before (deviceCookie)
// has a count of its own: someone who keeps failing to sign in as the
// account from elsewhere, holding the account's count over the limit,
// does not lock its owner out of their own browser.
func (s *Server) accountKey(c *fiber.Ctx, email string) string {
	key := "account:" + email
	if nonce, ok := s.device(c, email); ok {
		key += "#device:" + nonce
	}
	return key
}

// deviceCookie marks a browser that signed in to an account with its
// password (per account: the last one signed in to).
const deviceCookie = "rassylka_device"

// deviceMAC signs a device cookie's nonce for one account.
func (s *Server) deviceMAC(email, nonce string) string {
	m := hmac.New(sha256.New, []byte("device:"+s.cfg.SessionSecret))
	m.Write([]byte(strings.ToLower(email) + "\x00" + nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) setDevice(c *fiber.Ctx, email string) {
	nonce := auth.RandomString(16)
	c.Cookie(&fiber.Cookie{
		Name:     s.cookieName(deviceCookie),
		Value:    nonce + "." + s.deviceMAC(email, nonce),
		Path:     "/",
		Expires:  time.Now().AddDate(1, 0, 0),
		HTTPOnly: true,
		Secure:   s.cfg.SecureCookies(),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// device is the nonce of the browser's device cookie when it was set for
// email's account.
func (s *Server) device(c *fiber.Ctx, email string) (string, bool) {
	nonce, mac, ok := strings.Cut(c.Cookies(s.cookieName(deviceCookie)), ".")
	if !ok || nonce == "" || !hmac.Equal([]byte(mac), []byte(s.deviceMAC(email, nonce))) {
		return "", false
	}
	return nonce, true
}

// minutes says d in whole minutes, rounded up ("1 minute", "15 minutes").
func minutes(d time.Duration) string {
	n := int(math.Ceil(d.Minutes()))
	return component.Counted(int64(n), "minute", "minutes")
}
