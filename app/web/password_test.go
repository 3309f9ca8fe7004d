package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
)

// Whoever held an account may have linked a provider account of theirs
// to come back through: a reset (which proves the address) unlinks the
// providers that vouched for another address, and keeps the owner's.
func TestPasswordResetUnlinksOtherAddresses(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	for _, i := range []*model.Identity{
		{UserID: ann.ID, Provider: "github", ProviderUserID: "ann-gh", Email: "Ann@Example.com"},
		{UserID: ann.ID, Provider: "oidc", ProviderUserID: "thief", Email: "thief@example.net"},
	} {
		if err := e.store.CreateIdentity(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client()
	resp, body := c.post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	_, link := e.waitMail(t, sink, 1)
	resp, body = c.post(t, link, url.Values{"password": {"a brand new secret"}})
	wantRedirect(t, resp, body, "/")
	ids, err := e.store.IdentitiesOfUser(ctx, ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0].ProviderUserID != "ann-gh" {
		t.Errorf("after the reset, linked: %+v; want only the provider account of ann's address", ids)
	}
	if _, body := c.get(t, "/"); !strings.Contains(body, "were unlinked") {
		t.Error("the reset does not say it unlinked a provider account")
	}
}

func TestPasswordReset(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	other := e.client() // a session opened elsewhere before the reset
	resp, body := login(t, other, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")

	c := e.client()
	resp, body = c.get(t, "/password/forgot")
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = c.post(t, "/password/forgot", url.Values{"email": {"not an email"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "email") == "" || inputValue(t, body, "email") != "not an email" {
		t.Fatalf("bad email: no field error or value lost\n%s", body)
	}

	// Unknown and known addresses get the same answer.
	resp, body = c.post(t, "/password/forgot", url.Values{"email": {"nobody@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	resp, body = c.post(t, "/password/forgot", url.Values{"email": {"ANN@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	resp, body = c.get(t, "/password/forgot/sent")
	wantStatus(t, resp, body, http.StatusOK)

	m, link := e.waitMail(t, sink, 1)
	if m.To[0] != "ann@example.com" || !strings.HasPrefix(link, "/password/reset/") {
		t.Fatalf("reset mail to %v, link %q", m.To, link)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d mails; the unknown address must get none", n)
	}

	resp, body = c.get(t, link)
	wantStatus(t, resp, body, http.StatusOK)
	wantUsername(t, body, "reset-form", "ann@example.com")
	resp, body = c.post(t, link, url.Values{"password": {"short"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "password") == "" {
		t.Fatalf("no password error:\n%s", body)
	}
	wantUsername(t, body, "reset-form", "ann@example.com")
	resp, body = c.post(t, link, url.Values{"password": {"ann@example.com"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(fieldError(t, body, "password"), "email address") {
		t.Fatalf("the address accepted as the password:\n%s", body)
	}
	resp, body = c.post(t, link, url.Values{"password": {"a brand new secret"}})
	wantRedirect(t, resp, body, "/")
	resp, body = c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK) // signed in by the reset
	// The inbox is told of the change, in case it was not its owner's.
	if m, _ := e.waitMail(t, sink, 2); m.Header().Get("Subject") != "Your Rassylka password was changed" ||
		!strings.Contains(m.Body(), "was set with a reset link") || !strings.Contains(m.Body(), e.cfg.BaseURL+"/password/forgot") {
		t.Errorf("the mail after a reset: %q\n%s", m.Header().Get("Subject"), m.Body())
	}

	// Every other session ended.
	resp, body = other.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount")

	// The link works once.
	resp, body = e.client().get(t, link)
	wantStatus(t, resp, body, http.StatusGone)
	resp, body = e.client().post(t, link, url.Values{"password": {"yet another secret"}})
	wantStatus(t, resp, body, http.StatusGone)

	resp, body = login(t, e.client(), "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = login(t, e.client(), "ann@example.com", "a brand new secret")
	wantRedirect(t, resp, body, "/")
}

func TestPasswordResetExpiredAndForged(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()
	c.post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	_, link := e.waitMail(t, sink, 1)
	if _, err := e.db.ExecContext(context.Background(), "UPDATE tokens SET expires_at = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, "/password/reset/forged"} {
		resp, body := c.get(t, path)
		if resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		if !strings.Contains(body, "Ask for a new link") {
			t.Errorf("%s: no way to ask for a new link:\n%s", path, body)
		}
		resp, _ = c.post(t, path, url.Values{"password": {"a brand new secret"}})
		if resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("POST %s = %d", path, resp.StatusCode)
		}
	}
	resp, body := login(t, e.client(), "ann@example.com", "a brand new secret")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
}

func TestAccountPage(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()

	resp, body := c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK)
	if got := parseHTML(t, body).Find("[data-testid=account-email]").Text(); got != "ann@example.com" {
		t.Fatalf("account page email %q", got)
	}
	wantUsername(t, body, "password-form", "ann@example.com")

	resp, body = c.post(t, "/account", url.Values{"full_name": {"Ann Smith"}, "time_zone": {"Mars/Olympus"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "time_zone") == "" || inputValue(t, body, "full_name") != "Ann Smith" || inputValue(t, body, "time_zone") != "Mars/Olympus" {
		t.Fatalf("bad zone: error or typed values missing\n%s", body)
	}
	resp, body = c.post(t, "/account", url.Values{"full_name": {""}, "time_zone": {"UTC"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = c.post(t, "/account", url.Values{"full_name": {"Ann Smith"}, "time_zone": {"Asia/Tokyo"}})
	wantRedirect(t, resp, body, "/account")
	u, _ := e.store.UserByEmail(ctx, "ann@example.com")
	if u.FullName != "Ann Smith" || u.TimeZone != "Asia/Tokyo" {
		t.Fatalf("profile not saved: %+v", u)
	}
	_, body = c.get(t, "/account")
	if !strings.Contains(body, "profile is saved") {
		t.Error("no flash after saving")
	}

	other := e.client()
	login(t, other, "ann@example.com", goodPassword)

	resp, body = c.post(t, "/account/password", url.Values{"current_password": {"not it"}, "password": {"another fine secret"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "current_password") == "" {
		t.Fatalf("wrong current password not flagged\n%s", body)
	}
	// The refusal is shown at the form's address; opened from there, it
	// is the account page.
	resp, body = c.get(t, "/account/password")
	wantRedirect(t, resp, body, "/account")
	resp, body = c.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {"12345678"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = c.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {"another fine secret"}})
	wantRedirect(t, resp, body, "/account")
	resp, body = c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK) // this session continues
	resp, body = other.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount") // others end
	resp, body = login(t, e.client(), "ann@example.com", "another fine secret")
	wantRedirect(t, resp, body, "/")
	// The inbox is told of the change (once: the refusals changed nothing).
	if m, _ := e.waitMail(t, sink, 1); m.Header().Get("Subject") != "Your Rassylka password was changed" || !strings.Contains(m.Body(), "was changed on the account page") {
		t.Errorf("the mail after a change: %q\n%s", m.Header().Get("Subject"), m.Body())
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d mails after one change of password and refusals", n)
	}
}

// The account page's reply address: optional, checked as a recipient's
// address is, refused with more than ASCII before the @ (it goes in a
// header of every mail), kept as typed when refused. Another address than
// the account's own is used once its inbox opens the link mailed to it
// (the account's own, and none, at once); until then the page says it
// waits, and replies go where they went.
func TestAccountReplyTo(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	save := func(replyTo string) (*http.Response, string) {
		return c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {"UTC"}, "reply_to": {replyTo}})
	}
	user := func() *model.User {
		u, err := e.store.UserByEmail(ctx, "ann@example.com")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	_, body := c.get(t, "/account")
	if inputValue(t, body, "reply_to") != "" || !strings.Contains(body, "Left empty, to no-reply@rassylka.test, the address they come from.") {
		t.Fatalf("the reply address before one is set:\n%s", body)
	}
	for _, bad := range []string{"not an address", "ann@localhost", "юзер@example.com", "Ann <ann@example.com>"} {
		resp, body := save(bad)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, "reply_to") == "" || inputValue(t, body, "reply_to") != bad || inputValue(t, body, "full_name") != "Ann" {
			t.Errorf("%q: no error, or what was typed is lost\n%s", bad, body)
		}
	}
	if u := user(); u.ReplyTo != "" || u.ReplyToPending != "" {
		t.Fatalf("a refused address was saved: %q, %q", u.ReplyTo, u.ReplyToPending)
	}

	// Another address waits for its inbox.
	resp, body := save("  Replies@Пример.рф ")
	wantRedirect(t, resp, body, "/account")
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "We mailed replies@пример.рф a link to confirm it") {
		t.Errorf("flash %q", flash)
	}
	if u := user(); u.ReplyTo != "" || u.ReplyToPending != "replies@пример.рф" {
		t.Fatalf("before its confirmation: %q, pending %q", u.ReplyTo, u.ReplyToPending)
	}
	_, body = c.get(t, "/account")
	if inputValue(t, body, "reply_to") != "replies@пример.рф" || !strings.Contains(parseHTML(t, body).Find("[data-testid=reply-to-pending]").Text(), "until then replies go to no-reply@rassylka.test") {
		t.Fatalf("the page while it waits:\n%s", body)
	}
	m, link := e.waitMail(t, sink, 1)
	if m.To[0] != "replies@xn--e1afmkfd.xn--p1ai" || !strings.HasPrefix(link, "/account/reply-to/") || !strings.Contains(m.Body(), "the Rassylka account ann@example.com asks") {
		t.Fatalf("the mail to confirm: to %v, link %q\n%s", m.To, link, m.Body())
	}
	// Saving the profile again asks nothing new.
	resp, body = save("replies@пример.рф")
	wantRedirect(t, resp, body, "/account")
	// Opened by whoever reads that inbox, signed in or not: the link asks
	// (a mail scanner opening it changes nothing), the button agrees.
	reader := e.client()
	resp, body = reader.get(t, link)
	wantStatus(t, resp, body, http.StatusOK)
	if got := parseHTML(t, body).Find("[data-testid=reply-to-confirm]").Text(); !strings.Contains(got, "ann@example.com") || !strings.Contains(got, "replies@пример.рф") {
		t.Fatalf("the link's page:\n%s", body)
	}
	if u := user(); u.ReplyTo != "" {
		t.Fatalf("opening the link confirmed it: %q", u.ReplyTo)
	}
	resp, body = reader.post(t, link, nil)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "Replies to the mailings of the account ann@example.com now come to replies@пример.рф.") {
		t.Fatalf("the confirmation:\n%s", body)
	}
	if u := user(); u.ReplyTo != "replies@пример.рф" || u.ReplyToPending != "" {
		t.Fatalf("confirmed: %q, pending %q", u.ReplyTo, u.ReplyToPending)
	}
	if resp, body = reader.post(t, link, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("the link again: %d\n%s", resp.StatusCode, body)
	}

	// A second address asked for, then a third: the second's link no
	// longer works, and replies went to the first meanwhile.
	save("second@example.org")
	_, second := e.waitMail(t, sink, 2)
	save("third@example.org")
	_, third := e.waitMail(t, sink, 3)
	if resp, body = reader.post(t, second, nil); resp.StatusCode == http.StatusOK {
		t.Errorf("an address given up was confirmed by its link:\n%s", body)
	}
	if u := user(); u.ReplyTo != "replies@пример.рф" || u.ReplyToPending != "third@example.org" {
		t.Fatalf("while the third waits: %q, pending %q", u.ReplyTo, u.ReplyToPending)
	}
	// The page offers to give it up, which keeps the address in use.
	_, body = c.get(t, "/account")
	if parseHTML(t, body).Find("[data-testid=cancel-reply-to]").Length() != 1 {
		t.Fatalf("no way to give up the waiting address:\n%s", body)
	}
	resp, body = c.post(t, "/account/reply-to/cancel", nil)
	wantRedirect(t, resp, body, "/account")
	if u := user(); u.ReplyTo != "replies@пример.рф" || u.ReplyToPending != "" {
		t.Fatalf("given up: %q, pending %q", u.ReplyTo, u.ReplyToPending)
	}
	if resp, _ = c.post(t, third, nil); resp.StatusCode == http.StatusOK || user().ReplyTo != "replies@пример.рф" {
		t.Fatalf("the link of an address given up: %d, reply address %q", resp.StatusCode, user().ReplyTo)
	}
	// Asked again, the third gets a new link; signed in, it leads to the
	// account page.
	save("third@example.org")
	_, third = e.waitMail(t, sink, 4)
	resp, body = c.post(t, third, nil)
	wantRedirect(t, resp, body, "/account")
	if u := user(); u.ReplyTo != "third@example.org" {
		t.Fatalf("the third confirmed: %q", u.ReplyTo)
	}

	// The account's own address, and none, need no link.
	for _, now := range []string{"ann@example.com", ""} {
		resp, body = save(now)
		wantRedirect(t, resp, body, "/account")
		if u := user(); u.ReplyTo != now || u.ReplyToPending != "" {
			t.Fatalf("%q: %q, pending %q", now, u.ReplyTo, u.ReplyToPending)
		}
	}
	if n := len(sink.Messages()); n != 4 {
		t.Errorf("%d mails sent, want the 4 links", n)
	}
	if resp, body = e.client().get(t, "/account/reply-to/made-up"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a made-up link: %d\n%s", resp.StatusCode, body)
	}
}

// A link whose address still waits but that can no longer be used
// (expired) is mailed again when the address is saved again; a blocked
// account's link confirms nothing; a user asks at most a few new
// addresses an hour.
func TestAccountReplyToAgainBlockedAndLimited(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	save := func(replyTo string) (*http.Response, string) {
		return c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {"UTC"}, "reply_to": {replyTo}})
	}
	save("desk@example.org")
	_, first := e.waitMail(t, sink, 1)
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	// A link confirms the address it was mailed to, never another that
	// waits instead (as two saves at once could leave it).
	if err := e.store.SetReplyTo(ctx, ann.ID, "", "other@example.org"); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.client().post(t, first, nil); resp.StatusCode == http.StatusOK {
		t.Fatalf("desk's link confirmed another address:\n%s", body)
	}
	if u, _ := e.store.UserByEmail(ctx, "ann@example.com"); u.ReplyTo != "" {
		t.Fatalf("desk's link made %q the reply address", u.ReplyTo)
	}
	if err := e.store.SetReplyTo(ctx, ann.ID, "", "desk@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, `UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE purpose = 'confirm_reply_to'`); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.client().post(t, first, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("an expired link: %d\n%s", resp.StatusCode, body)
	}
	save("desk@example.org")
	_, again := e.waitMail(t, sink, 2)
	if again == first {
		t.Fatal("the same link mailed again")
	}

	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	if _, err := e.store.SetBlocked(ctx, boss.ID, ann.ID, true); err != nil {
		t.Fatal(err)
	}
	reader := e.client()
	if resp, body := reader.get(t, again); resp.StatusCode != http.StatusGone || !strings.Contains(body, "blocked") {
		t.Errorf("a blocked account's link: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := reader.post(t, again, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("a blocked account's link, agreed: %d\n%s", resp.StatusCode, body)
	}
	if u, _ := e.store.UserByEmail(ctx, "ann@example.com"); u.ReplyTo != "" {
		t.Fatalf("a blocked account's reply address was confirmed: %q", u.ReplyTo)
	}

	bob := signedIn(t, e, "bob@example.com", model.RoleUser)
	for i := range 6 {
		resp, body := bob.post(t, "/account", url.Values{"full_name": {"Bob"}, "time_zone": {"UTC"}, "reply_to": {fmt.Sprintf("a%d@example.org", i)}})
		if i < 5 {
			wantRedirect(t, resp, body, "/account")
			continue
		}
		wantStatus(t, resp, body, http.StatusTooManyRequests)
		if fieldError(t, body, "reply_to") == "" || inputValue(t, body, "reply_to") != "a5@example.org" {
			t.Errorf("over the limit: no error beside the field, or what was typed is lost\n%s", body)
		}
	}
}

// The account page's sender name: optional, one line of at most 100
// characters without an address or direction controls, kept as typed
// when refused, cleared when emptied.
func TestAccountSenderName(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	save := func(name string) (*http.Response, string) {
		return c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {"UTC"}, "sender_name": {name}})
	}
	saved := func() string {
		u, err := e.store.UserByEmail(ctx, "ann@example.com")
		if err != nil {
			t.Fatal(err)
		}
		return u.SenderName
	}
	if _, body := c.get(t, "/account"); !strings.Contains(body, "Left empty, they see “Rassylka”.") {
		t.Fatalf("the sender name's hint:\n%s", body)
	}
	for _, bad := range []string{strings.Repeat("й", 101), "Ann\r\nBcc: x@example.org", "PayPal <service@paypal.com>", "Bank\u202e", "\u2067Bank"} {
		resp, body := save(bad)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		// (An HTML parser reads a line break in an attribute as LF alone.)
		if fieldError(t, body, "sender_name") == "" || inputValue(t, body, "sender_name") != strings.ReplaceAll(bad, "\r\n", "\n") {
			t.Errorf("%q: no error, or what was typed is lost", bad)
		}
	}
	if got := saved(); got != "" {
		t.Fatalf("a refused name was saved: %q", got)
	}
	resp, body := save("  Пекарня «У Анны» ")
	wantRedirect(t, resp, body, "/account")
	if got := saved(); got != "Пекарня «У Анны»" {
		t.Fatalf("saved %q", got)
	}
	if _, body = c.get(t, "/account"); inputValue(t, body, "sender_name") != "Пекарня «У Анны»" {
		t.Fatalf("the page shows %q", inputValue(t, body, "sender_name"))
	}
	// Invisible characters alone are no name: MAIL_FROM's goes then.
	for _, empty := range []string{"", " ", "\u200b"} {
		if resp, body = save(empty); resp.StatusCode != http.StatusSeeOther || saved() != "" {
			t.Fatalf("emptied with %q: %d, it reads %q\n%s", empty, resp.StatusCode, saved(), body)
		}
	}
}

// A sign-in with the old password, checked just before the password is
// changed, does not outlive the change: the change ended the account's
// sessions before the sign-in's was added to them, and it ends too.
func TestSignInRacingAPasswordChange(t *testing.T) {
	e := newEnv(t)
	owner := signedIn(t, e, "ann@example.com", model.RoleUser)
	thief := e.client()
	// Right after the sign-in reads the account (its old password), the
	// owner changes it.
	change := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `FROM "users"`) || !strings.Contains(ev.Query, "ann@example.com") {
			return
		}
		e.hook.after.Store(nil)
		resp, body := owner.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {"another fine secret"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the owner's change: %d\n%.300s", resp.StatusCode, body)
		}
	}
	e.hook.after.Store(&change)
	t.Cleanup(func() { e.hook.after.Store(nil) })
	resp, body := login(t, thief, "ann@example.com", goodPassword)
	if e.hook.after.Load() != nil {
		t.Fatal("the sign-in never read the account")
	}
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = thief.get(t, "/account")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("after signing in with the password changed meanwhile, /account answers %d (%s), want the sign-in page\n%.300s",
			resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = owner.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK)
}

// The current-password check of the account page is a password oracle
// for whoever holds a session (a stolen cookie, an unlocked computer): it
// must be throttled like sign-in, else the session's holder guesses the
// password at full speed and takes the account over for good.
func TestChangePasswordGuessesThrottled(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	for i := 0; i < 10; i++ {
		resp, body := c.post(t, "/account/password", url.Values{"current_password": {"guess " + strconv.Itoa(i)}, "password": {"thief's new secret"}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	resp, body := c.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {"thief's new secret"}})
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if fieldError(t, body, "current_password") == "" {
		t.Errorf("the refusal says nothing beside the field\n%s", body)
	}
	resp, _ = login(t, e.client(), "ann@example.com", "thief's new secret")
	if resp.StatusCode == http.StatusSeeOther {
		t.Fatal("the guessed password was changed")
	}
}

// Mailed tokens are stored only as hashes, so that reading the database
// gives no way into an account; the request log must not hold them in
// the clear either (log shippers, support staff, a leaked log file).
func TestLogsHoldNoMailedTokens(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "new@example.com", "New")
	_, confirm := e.waitMail(t, sink, 1)
	resp, body := e.client().post(t, "/password/forgot", url.Values{"email": {"new@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	_, reset := e.waitMail(t, sink, 2)
	resp, body = c.get(t, reset) // opened, not yet used: a token still good for an hour
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = c.get(t, confirm)
	wantRedirect(t, resp, body, "/login")
	for _, link := range []string{confirm, reset} {
		token := link[strings.LastIndexByte(link, '/')+1:]
		if strings.Contains(e.logs.String(), token) {
			t.Errorf("the log holds the token of %s:\n%s", link, e.logs.String())
		}
	}
}

func TestUnlinkIdentity(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	u, _ := e.store.UserByEmail(ctx, "ann@example.com")
	gh := &model.Identity{UserID: u.ID, Provider: "github", ProviderUserID: "42", Email: u.Email}
	if err := e.store.CreateIdentity(ctx, gh); err != nil {
		t.Fatal(err)
	}
	intruder := signedIn(t, e, "eve@example.com", model.RoleUser)

	_, body := c.get(t, "/account")
	if parseHTML(t, body).Find("[data-testid=identities] tbody tr").Length() != 1 {
		t.Fatalf("linked account not listed:\n%s", body)
	}
	resp, body := intruder.post(t, "/account/identities/"+itoa(gh.ID)+"/delete", nil)
	wantStatus(t, resp, body, http.StatusNotFound)

	// Without a password, the only identity stays.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_hash = NULL WHERE id = ?", u.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, "/account/identities/"+itoa(gh.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/account")
	if ids, _ := e.store.IdentitiesOfUser(ctx, u.ID); len(ids) != 1 {
		t.Fatal("the only way to sign in was unlinked")
	}
	// Another's identity is not found, even by a user whose own is their
	// only way to sign in (it was told to set a password first).
	eve, err := e.store.UserByEmail(ctx, "eve@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateIdentity(ctx, &model.Identity{UserID: eve.ID, Provider: "github", ProviderUserID: "66", Email: eve.Email}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_hash = NULL WHERE id = ?", eve.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = intruder.post(t, "/account/identities/"+itoa(gh.ID)+"/delete", nil)
	wantStatus(t, resp, body, http.StatusNotFound)
	hash, _ := auth.HashPassword(goodPassword)
	if err := e.store.SetPassword(ctx, u.ID, hash); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, "/account/identities/"+itoa(gh.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/account")
	if ids, _ := e.store.IdentitiesOfUser(ctx, u.ID); len(ids) != 0 {
		t.Fatal("identity not unlinked")
	}
}

// The answer to a forgot-password request does not wait for the link to be
// stored and mailed (only a registered address has one, and the time
// taken would tell): it comes while the links' table is locked, and the
// mail follows.
func TestForgotAnswersBeforeTheLink(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	answersWhileTokensLocked(t, e, "/password/forgot", "ann@example.com")
	if m, link := e.waitMail(t, sink, 1); m.To[0] != "ann@example.com" || !strings.HasPrefix(link, "/password/reset/") {
		t.Fatalf("mail to %v with %q", m.To, link)
	}
}

// A password changed on the account page ends the reset links mailed
// before: one that leaked would undo the change.
func TestPasswordChangeEndsResetLinks(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	resp, body := e.client().post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	_, link := e.waitMail(t, sink, 1)

	resp, body = c.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {"another fine secret"}})
	wantRedirect(t, resp, body, "/account")
	resp, body = e.client().post(t, link, url.Values{"password": {"the finder's choice"}})
	wantStatus(t, resp, body, http.StatusGone)
	resp, body = login(t, e.client(), "ann@example.com", "another fine secret")
	wantRedirect(t, resp, body, "/")
}

// answersWhileTokensLocked posts email to path while the links' table is
// locked, and fails unless the answer (303) comes before the lock is
// released: the link is stored and mailed after the answer.
func answersWhileTokensLocked(t *testing.T, e *env, path, email string) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	if _, err := tx.ExecContext(ctx, "LOCK TABLE tokens"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan *http.Response, 1)
	go func() {
		resp, _ := e.client().post(t, path, url.Values{"email": {email}})
		answered <- resp
	}()
	select {
	case resp := <-answered:
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("answer %d", resp.StatusCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer waited for the link")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A time zone is an IANA name that every process resolves alike. Names the
// host's zoneinfo files happen to answer to — the same zone spelled as a
// path ("./UTC", "Europe//Berlin"), the host's own zone ("localtime"), its
// default rules and its posix/ and right/ copies — were saved, and then
// PostgreSQL refused the name and the dashboard and statistics answered
// 500 on every visit (or the zone followed whichever host read it).
func TestAccountTimeZoneOnlyIANANames(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	resp, body := c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {"Europe/Berlin"}})
	wantRedirect(t, resp, body, "/account")
	for _, tz := range []string{"./UTC", "Europe//Berlin", "Europe/./Berlin", "localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", "local", "", "  "} {
		resp, body := c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {tz}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, "time_zone") == "" {
			t.Errorf("%q: no message beside the field", tz)
		}
		if u, _ := e.store.UserByEmail(ctx, "ann@example.com"); u.TimeZone != "Europe/Berlin" {
			t.Fatalf("%q stored as %q", tz, u.TimeZone)
		}
	}
	for _, tz := range []string{"Etc/GMT+3", "America/Port-au-Prince", "UTC"} {
		resp, body := c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {tz}})
		wantRedirect(t, resp, body, "/account")
		for _, path := range []string{"/", "/stats"} {
			resp, body := c.get(t, path)
			wantStatus(t, resp, body, http.StatusOK)
		}
	}
	// Typed in another letter case, a name is stored as the database has it.
	for tz, want := range map[string]string{"utc": "UTC", "europe/berlin": "Europe/Berlin", "AMERICA/NEW_YORK": "America/New_York"} {
		resp, body := c.post(t, "/account", url.Values{"full_name": {"Ann"}, "time_zone": {tz}})
		wantRedirect(t, resp, body, "/account")
		if u, _ := e.store.UserByEmail(ctx, "ann@example.com"); u.TimeZone != want {
			t.Errorf("%q stored as %q, want %q", tz, u.TimeZone, want)
		}
	}
	// A name saved before is shown in UTC rather than breaking the pages.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET time_zone = 'Europe//Berlin' WHERE email = 'ann@example.com'"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/stats"} {
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
	}
}

// A full name is one visible line: DEL, the C1 controls (NEL among them)
// and the Unicode line and paragraph separators were stored as typed,
// invisible on the page or breaking the line where the name is shown.
func TestAccountNameRefusesInvisibleControls(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	for _, name := range []string{"Ann\x7fSmith", "Ann\u0085Smith", "Ann\u009bSmith", "Ann\u2028Smith", "Ann\u2029Smith"} {
		resp, body := c.post(t, "/account", url.Values{"full_name": {name}, "time_zone": {"UTC"}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, "full_name") == "" {
			t.Errorf("%q: no message beside the field", name)
		}
	}
	resp, body := c.post(t, "/account", url.Values{"full_name": {"Anna-Maria Ødegård 李"}, "time_zone": {"UTC"}})
	wantRedirect(t, resp, body, "/account")
}

// "Changing" the password to the one already set said it was changed and
// signed every other session out, while nothing was: the user who meant
// to replace a password they think leaked still has it.
func TestChangePasswordToTheSameRefused(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	resp, body := c.post(t, "/account/password", url.Values{"current_password": {goodPassword}, "password": {goodPassword}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "password") == "" {
		t.Fatalf("no message beside the new password\n%s", body)
	}
}

// wantUsername checks that a form setting a password names the account
// to password managers (autocomplete "username"), which a page that does
// not ask for the address must do for them to save the new password under
// it, and that the field is never sent.
func wantUsername(t *testing.T, body, form, email string) {
	t.Helper()
	in := parseHTML(t, body).Find("[data-testid=" + form + "] input[autocomplete=username]")
	if in.Length() != 1 || in.AttrOr("value", "") != email || in.AttrOr("name", "") != "" {
		t.Fatalf("%s: want one unnamed username field holding %s, got %d (value %q, name %q)", form, email, in.Length(), in.AttrOr("value", ""), in.AttrOr("name", ""))
	}
	if form == "reset-form" {
		if got := parseHTML(t, body).Find("[data-testid=reset-email]").Text(); got != email {
			t.Fatalf("the reset page is for %q, want %s", got, email)
		}
	}
}

// The reset mail of a blocked account says a new password will not let
// its owner in (they learned it only after setting one), and the reset
// still tells the inbox the password changed.
func TestPasswordResetOfABlockedAccount(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	if _, err := e.db.ExecContext(context.Background(), "UPDATE users SET blocked_at = now() WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	resp, body := c.post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	m, link := e.waitMail(t, sink, 1)
	if text := strings.Join(strings.Fields(m.Body()), " "); !strings.Contains(text, "has blocked the account") || !strings.Contains(text, "A new password will not let you in until then.") {
		t.Errorf("a blocked account's reset mail:\n%s", m.Body())
	}
	resp, body = c.post(t, link, url.Values{"password": {"a brand new secret"}})
	wantStatus(t, resp, body, http.StatusForbidden)
	if m, _ := e.waitMail(t, sink, 2); m.Header().Get("Subject") != "Your Rassylka password was changed" {
		t.Errorf("the mail after a blocked account's reset: %q", m.Header().Get("Subject"))
	}
}

// A user moves their account to another address from the account page:
// their password first, then a link mailed to the new address, whose page
// asks and whose button agrees (opening it changes nothing). Until then
// they sign in with the old one; after, with the new one only, and the
// old address is told. A later request, or "Give it up", ends a link; an
// address with an account of its own gets a mail saying so (the account
// that asked is told nothing else), and one registered since the request
// refuses the move; a blocked account's link moves nothing.
func TestAccountEmailChange(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	dayOldPassword(t, e, ann.ID)
	newUser(t, e, "bob@example.com", model.RoleUser)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	// mailTo waits for a mail to an address with a subject, not seen
	// before (the worker sends two mails of one request in either order),
	// and returns its body and its link's path.
	seen := map[int]bool{}
	mailTo := func(to, subject string) (string, string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, m := range sink.Messages() {
				if !seen[m.ID] && m.To[0] == to && m.Header().Get("Subject") == subject {
					seen[m.ID] = true
					link := linkRE.FindString(m.Body())
					if u, err := url.Parse(link); err == nil && link != "" {
						link = u.RequestURI()
					}
					return strings.Join(strings.Fields(m.Body()), " "), link
				}
			}
		}
		t.Fatalf("no mail to %s, %q", to, subject)
		return "", ""
	}
	const confirmNew, moveAsked = "Confirm your new sign-in address", "Your Rassylka account asked to change its address"
	ask := func(addr, password string) (*http.Response, string) {
		t.Helper()
		return c.post(t, "/account/email", url.Values{"new_email": {addr}, "email_password": {password}})
	}
	email := func() string {
		t.Helper()
		u, err := e.store.UserByID(ctx, ann.ID)
		if err != nil {
			t.Fatal(err)
		}
		return u.Email
	}

	// Refusals keep what was typed.
	for _, r := range []struct{ addr, password, field, msg string }{
		{"not an address", goodPassword, "new_email", "valid email"},
		{"ANN@example.com", goodPassword, "new_email", "your sign-in address already"},
		{"ann.new@example.com", "", "email_password", "Enter your password"},
		{"ann.new@example.com", "not it", "email_password", "not your password"},
	} {
		resp, body = ask(r.addr, r.password)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if !strings.Contains(fieldError(t, body, r.field), r.msg) || !strings.EqualFold(inputValue(t, body, "new_email"), r.addr) {
			t.Errorf("%q / %q: %s says %q, new_email %q", r.addr, r.password, r.field, fieldError(t, body, r.field), inputValue(t, body, "new_email"))
		}
	}

	// A refusal is shown at the form's address; opened from there, it is
	// the account page.
	resp, body = c.get(t, "/account/email")
	wantRedirect(t, resp, body, "/account")

	// Asked: a link to the new address; the account page says it waits.
	resp, body = ask("Ann.New@Example.com", goodPassword)
	wantRedirect(t, resp, body, "/account")
	_, first := mailTo("ann.new@example.com", confirmNew)
	if !strings.HasPrefix(first, "/account/email/") {
		t.Fatalf("link %q", first)
	}
	// The account's own address is told, with how to stop it.
	if text, link := mailTo("ann@example.com", moveAsked); !strings.Contains(text, "to sign in with ann.new@example.com") || link != "/password/forgot" {
		t.Errorf("the mail to the account's address: %s", text)
	}
	if got := c.page(t, "/account").Find("[data-testid=email-pending]").Text(); !strings.Contains(got, "Waiting for ann.new@example.com") {
		t.Errorf("the account page while the move waits: %q", got)
	}
	// Its page asks; opening it changes nothing.
	d := e.client().page(t, first)
	if d.Find("[data-testid=email-change-agree]").Length() != 1 || !strings.Contains(d.Text(), "ann@example.com") {
		t.Errorf("the link's page:\n%s", d.Text())
	}
	if email() != "ann@example.com" {
		t.Fatal("opening the link moved the account")
	}
	// Another request ends the first link; "Give it up" ends the second.
	resp, body = ask("ann2@example.com", goodPassword)
	wantRedirect(t, resp, body, "/account")
	_, second := mailTo("ann2@example.com", confirmNew)
	mailTo("ann@example.com", moveAsked)
	resp, body = e.client().get(t, first)
	wantStatus(t, resp, body, http.StatusGone)
	resp, body = c.post(t, "/account/email/cancel", nil)
	wantRedirect(t, resp, body, "/account")
	resp, body = e.client().get(t, second)
	wantStatus(t, resp, body, http.StatusGone)
	if c.page(t, "/account").Find("[data-testid=email-pending]").Length() != 0 {
		t.Error("the account page says a move waits after it was given up")
	}

	// Agreed, without a session: the account signs in with the new
	// address only, and the old one is told.
	resp, body = ask("ann.new@example.com", goodPassword)
	wantRedirect(t, resp, body, "/account")
	_, third := mailTo("ann.new@example.com", confirmNew)
	mailTo("ann@example.com", moveAsked)
	v := e.client()
	v.page(t, third)
	resp, body = v.post(t, third, nil)
	wantStatus(t, resp, body, http.StatusOK)
	if email() != "ann.new@example.com" {
		t.Fatalf("after agreeing the account signs in with %s", email())
	}
	if text, _ := mailTo("ann@example.com", "Your Rassylka sign-in address was changed"); !strings.Contains(text, "now signs in with ann.new@example.com") {
		t.Error("the old address's mail does not name the new one")
	}
	resp, body = v.post(t, third, nil)
	wantStatus(t, resp, body, http.StatusGone)
	resp, body = login(t, e.client(), "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = login(t, e.client(), "ann.new@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	if got := c.page(t, "/account").Find("[data-testid=account-email]").Text(); got != "ann.new@example.com" {
		t.Errorf("the open session's account page: %q", got)
	}
	// Within the week the address it left may move it back, it moves no
	// further; a week later it may.
	resp, body = ask("ann4@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := fieldError(t, body, "new_email"); !strings.Contains(msg, "less than a week ago") || !strings.Contains(msg, "It can move again from "+time.Now().UTC().Add(auth.RevertTokenTTL).Format("2006-01-02")) {
		t.Errorf("a second move within the week: %q", msg)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE user_id = ? AND purpose = 'revert_email'", ann.ID); err != nil {
		t.Fatal(err)
	}

	// An address with an account: its inbox is told, with no link, and
	// the account that asked sees what it sees for any address.
	resp, body = ask("bob@example.com", goodPassword)
	wantRedirect(t, resp, body, "/account")
	if text, _ := mailTo("bob@example.com", "Your Rassylka account"); strings.Contains(text, "/account/email/") || !strings.Contains(text, "has an account of its own") {
		t.Errorf("the mail to an address with an account:\n%s", text)
	}
	mailTo("ann.new@example.com", moveAsked)
	if c.page(t, "/account").Find("[data-testid=email-pending]").Length() != 1 {
		t.Error("asking for an address with an account shows otherwise than for any other")
	}

	// An address registered after the move was asked for refuses it.
	resp, body = ask("carol@example.com", goodPassword)
	wantRedirect(t, resp, body, "/account")
	_, carols := mailTo("carol@example.com", confirmNew)
	mailTo("ann.new@example.com", moveAsked)
	newUser(t, e, "carol@example.com", model.RoleUser)
	resp, body = e.client().get(t, carols) // its page says so, rather than offer a button that fails
	wantStatus(t, resp, body, http.StatusConflict)
	resp, body = e.client().post(t, carols, nil)
	wantStatus(t, resp, body, http.StatusConflict)
	if email() != "ann.new@example.com" {
		t.Fatalf("a taken address's link moved the account to %s", email())
	}

	// A sixth address in an hour is refused, with what was typed kept.
	resp, body = ask("ann3@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if !strings.Contains(fieldError(t, body, "new_email"), "in the last hour") || inputValue(t, body, "new_email") != "ann3@example.com" {
		t.Errorf("the sixth address in an hour: %q", fieldError(t, body, "new_email"))
	}

	// A blocked account's link moves nothing (carol's account gone, her
	// link would have moved it).
	if _, err := e.db.ExecContext(ctx, "DELETE FROM users WHERE email = 'carol@example.com'"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = now() WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = e.client().post(t, carols, nil)
	wantStatus(t, resp, body, http.StatusGone)
	if email() != "ann.new@example.com" {
		t.Fatalf("a blocked account's link moved it to %s", email())
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = NULL WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = e.client().post(t, carols, nil)
	wantStatus(t, resp, body, http.StatusOK)
	if email() != "carol@example.com" {
		t.Fatalf("carol's link, her account gone, moved it to %s", email())
	}
}

// A move to another address takes a password a day old (a session taken
// over that sets one, on an account without, or changes it, cannot move
// the account away before its owner is told), and a move asked for ends
// when the password is reset or changed, or the account blocked: whoever
// asked may not be its owner.
func TestAccountEmailChangeGuards(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	ask := func(password string) (*http.Response, string) {
		t.Helper()
		return c.post(t, "/account/email", url.Values{"new_email": {"eve@example.com"}, "email_password": {password}})
	}
	// The link mailed to eve for the latest request.
	link := func() string {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			msgs := sink.Messages()
			for i := len(msgs) - 1; i >= 0; i-- {
				if msgs[i].To[0] == "eve@example.com" {
					if u, err := url.Parse(linkRE.FindString(msgs[i].Body())); err == nil {
						return u.RequestURI()
					}
				}
			}
		}
		t.Fatal("no mail to eve")
		return ""
	}
	dead := func(what, link string) {
		t.Helper()
		if resp, body := e.client().post(t, link, nil); resp.StatusCode != http.StatusGone {
			t.Errorf("%s: the link answers %d\n%.300s", what, resp.StatusCode, body)
		}
		if u, _ := e.store.UserByID(ctx, ann.ID); u.Email != "ann@example.com" {
			t.Fatalf("%s: the account moved to %s", what, u.Email)
		}
	}

	// A password set or changed less than a day ago, or none, moves
	// nothing.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_changed_at = now() - interval '23 hours' WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = ask(goodPassword)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := fieldError(t, body, "new_email"); !strings.Contains(msg, "less than a day ago") || inputValue(t, body, "new_email") != "eve@example.com" {
		t.Errorf("a password 23 hours old: %q", msg)
	}
	dayOldPassword(t, e, ann.ID)
	resp, body = ask(goodPassword)
	wantRedirect(t, resp, body, "/account")
	byReset := link()

	// Reset: the move ends.
	v := e.client()
	resp, body = v.post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	var reset string
	for deadline := time.Now().Add(15 * time.Second); reset == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range sink.Messages() {
			if m.Header().Get("Subject") == "Reset your password" {
				u, _ := url.Parse(linkRE.FindString(m.Body()))
				reset = u.RequestURI()
			}
		}
	}
	resp, body = v.post(t, reset, url.Values{"password": {"a brand new secret"}})
	wantRedirect(t, resp, body, "/")
	dead("after a reset", byReset)

	// A change on the account page: the move ends (the password is a day
	// old again for the test).
	c = e.client()
	resp, body = login(t, c, "ann@example.com", "a brand new secret")
	wantRedirect(t, resp, body, "/")
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_changed_at = now() - interval '25 hours' WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = ask("a brand new secret")
	wantRedirect(t, resp, body, "/account")
	byChange := link()
	resp, body = c.post(t, "/account/password", url.Values{"current_password": {"a brand new secret"}, "password": {"yet another secret"}})
	wantRedirect(t, resp, body, "/account")
	dead("after a change of password", byChange)
	resp, body = ask("yet another secret")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity) // its password is new

	// A block: the move ends, and stays ended once unblocked.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_changed_at = now() - interval '25 hours' WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	// Anyone may spend the address's mails for the hour (asking to reset
	// its password): its notices are not among them, and it is told of
	// the move (the third it asks for).
	for range 6 {
		resp, body = e.client().post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
		wantRedirect(t, resp, body, "/password/forgot/sent")
	}
	resp, body = ask("yet another secret")
	wantRedirect(t, resp, body, "/account")
	byBlock := link()
	told := 0
	for deadline := time.Now().Add(15 * time.Second); told < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		told = 0
		for _, m := range sink.Messages() {
			if m.To[0] == "ann@example.com" && m.Header().Get("Subject") == "Your Rassylka account asked to change its address" {
				told++
			}
		}
	}
	if told != 3 {
		t.Errorf("the account's address was told of %d of 3 moves, after anyone asked to reset its password six times", told)
	}
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantRedirect(t, resp, body, "/users")
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/unblock", nil)
	wantRedirect(t, resp, body, "/users")
	dead("after a block", byBlock)

	// An account without a password (one a provider signs in to) sets
	// one first.
	c = e.client()
	resp, body = login(t, c, "ann@example.com", "yet another secret")
	wantRedirect(t, resp, body, "/")
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_hash = NULL, password_changed_at = NULL WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}
	if c.page(t, "/account").Find("input[name=email_password]").Length() != 0 {
		t.Error("the form asks a password of an account without one")
	}
	resp, body = ask("")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := fieldError(t, body, "new_email"); !strings.Contains(msg, "Set a password first") {
		t.Errorf("an account without a password: %q", msg)
	}
}

// A move asked for an address that has had its mails for the hour changes
// nothing: the link it was mailed before keeps working (it was ended, and
// the account page said it waited for it).
func TestAccountEmailChangeOverTheMailLimit(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ann, bob := e.client(), e.client()
	for c, addr := range map[*client]string{ann: "ann@example.com", bob: "bob@example.com"} {
		dayOldPassword(t, e, newUser(t, e, addr, model.RoleUser).ID)
		resp, body := login(t, c, addr, goodPassword)
		wantRedirect(t, resp, body, "/")
	}
	ask := func(c *client) (*http.Response, string) {
		return c.post(t, "/account/email", url.Values{"new_email": {"target@example.com"}, "email_password": {goodPassword}})
	}
	resp, body := ask(ann)
	wantRedirect(t, resp, body, "/account")
	for range 4 {
		resp, body = ask(bob)
		wantRedirect(t, resp, body, "/account")
	}
	var first string
	for deadline := time.Now().Add(15 * time.Second); first == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range sink.Messages() {
			if m.To[0] == "target@example.com" && strings.Contains(m.Body(), "ann@example.com") {
				u, _ := url.Parse(linkRE.FindString(m.Body()))
				first = u.RequestURI()
			}
		}
	}
	resp, body = ask(ann)
	wantRedirect(t, resp, body, "/account")
	if got := flashAfter(t, ann, resp); !strings.Contains(got, "mailed too many links in the last hour, so nothing changed") {
		t.Errorf("the sixth mail to an address in an hour says %q", got)
	}
	resp, body = e.client().get(t, first)
	wantStatus(t, resp, body, http.StatusOK)
}

// dayOldPassword makes the user's password a day old, as a move to another
// address asks.
func dayOldPassword(t *testing.T, e *env, userID int64) {
	t.Helper()
	if _, err := e.db.ExecContext(context.Background(), "UPDATE users SET password_changed_at = now() - interval '25 hours' WHERE id = ?", userID); err != nil {
		t.Fatal(err)
	}
}

// A reset, a change of password or a block that commits while a move is
// asked for (after its handler checked the password, before the move's
// link is made) refuses the move: the link would have outlived them.
func TestAccountEmailChangeRacingAReset(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	dayOldPassword(t, e, ann.ID)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	// Right after the request has read the account (its session's), the
	// owner's reset commits.
	reset := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `FROM "users"`) {
			return
		}
		e.hook.after.Store(nil)
		hash, err := auth.HashPassword("the owner's new secret")
		if err != nil {
			t.Error(err)
			return
		}
		if err := e.store.SetPassword(ctx, ann.ID, hash); err != nil {
			t.Error(err)
		}
		if _, err := e.db.ExecContext(ctx, "UPDATE users SET password_changed_at = now() - interval '25 hours' WHERE id = ?", ann.ID); err != nil {
			t.Error(err)
		}
	}
	e.hook.after.Store(&reset)
	t.Cleanup(func() { e.hook.after.Store(nil) })
	resp, body = c.post(t, "/account/email", url.Values{"new_email": {"eve@example.com"}, "email_password": {goodPassword}})
	if e.hook.after.Load() != nil {
		t.Fatal("the request never read the account")
	}
	wantRedirect(t, resp, body, "/account")
	if got := flashAfter(t, c, resp); !strings.Contains(got, "changed meanwhile, so nothing changed") {
		t.Errorf("a move racing a reset says %q", got)
	}
	if live, err := e.store.LiveToken(ctx, ann.ID, model.TokenChangeEmail); err != nil || live != nil {
		t.Errorf("a move racing a reset left a link (%v): %+v", err, live)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range sink.Messages() {
		if m.To[0] == "eve@example.com" {
			t.Errorf("eve was mailed %q", m.Header().Get("Subject"))
		}
	}
}

// Whoever knew the password moved the account away: the mail to the old
// address has a link (7 days, once) that moves it back with a new
// password, ending every session, even when the old address was
// registered meanwhile (never confirmed: that account goes).
func TestAccountEmailMoveBack(t *testing.T) {
	e, f := oidcEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	dayOldPassword(t, e, ann.ID)
	mal := e.client() // another account of the thief's
	dayOldPassword(t, e, newUser(t, e, "mal@example.com", model.RoleUser).ID)
	resp, body := login(t, mal, "mal@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	thief := e.client()
	resp, body = login(t, thief, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	// Four requests first spend the notices of ann's address for the hour
	// (each told it); the mail after the move, which carries the way
	// back, goes all the same.
	for i := range 4 {
		resp, body = thief.post(t, "/account/email", url.Values{"new_email": {fmt.Sprintf("x%d@example.com", i)}, "email_password": {goodPassword}})
		wantRedirect(t, resp, body, "/account")
	}
	resp, body = thief.post(t, "/account/email", url.Values{"new_email": {"eve@example.com"}, "email_password": {goodPassword}})
	wantRedirect(t, resp, body, "/account")
	find := func(to, subject string) string {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, m := range sink.Messages() {
				if m.To[0] == to && m.Header().Get("Subject") == subject {
					u, err := url.Parse(linkRE.FindString(m.Body()))
					if err != nil {
						t.Fatal(err)
					}
					return u.RequestURI()
				}
			}
		}
		t.Fatalf("no mail to %s, %q", to, subject)
		return ""
	}
	move := find("eve@example.com", "Confirm your new sign-in address")
	resp, body = thief.post(t, move, nil)
	wantRedirect(t, resp, body, "/account")
	back := find("ann@example.com", "Your Rassylka sign-in address was changed")
	if !strings.HasPrefix(back, "/account/email/revert/") {
		t.Fatalf("the old address's link %q", back)
	}
	// The thief cannot register the old address to keep its owner out
	// (and have a mail scanner confirm it): it is kept for the week, and
	// the answer is the same.
	resp, body = e.client().post(t, "/register", url.Values{"email": {"ann@example.com"}, "full_name": {"Squatter"}, "password": {"squatter secret 1"}})
	wantRedirect(t, resp, body, "/register/sent")
	if squatter, err := e.store.UserByEmail(ctx, "ann@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the old address was registered meanwhile: %v, %v", squatter, err)
	}
	// Nor move it again, beyond the link's reach.
	resp, body = thief.post(t, "/account/email", url.Values{"new_email": {"eve2@example.com"}, "email_password": {goodPassword}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := fieldError(t, body, "new_email"); !strings.Contains(msg, "less than a week ago") {
		t.Errorf("a second move within the week: %q", msg)
	}
	// Nor move another account of its own onto it: ann's inbox gets no
	// link for it (two mails say why: the registration's and this one's).
	resp, body = mal.post(t, "/account/email", url.Values{"new_email": {"ann@example.com"}, "email_password": {goodPassword}})
	wantRedirect(t, resp, body, "/account")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, m := range sink.Messages() {
			if m.To[0] == "ann@example.com" && m.Header().Get("Subject") == "Your Rassylka account" {
				n++
				if strings.Contains(m.Body(), "/account/email/") {
					t.Errorf("a move of another account onto the kept address mailed it a link:\n%s", m.Body())
				}
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails about the kept address, want 2", n)
		}
	}
	// Nor sign in to a new account with it through a provider.
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "g-ann", Email: "ann@example.com", Name: "Ann", Verified: true})
	wantStatus(t, resp, body, http.StatusConflict)
	if _, err := e.store.UserByEmail(ctx, "ann@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a provider's sign-in made an account of the kept address: %v", err)
	}
	// What it set as the reply address goes with it.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET reply_to = 'eve@example.com', reply_to_pending = 'eve3@example.com' WHERE id = ?", ann.ID); err != nil {
		t.Fatal(err)
	}

	owner := e.client()
	d := owner.page(t, back)
	if !strings.Contains(d.Find("h1").Text(), "Move your account back") || d.Find("[data-testid=reset-email]").Text() != "ann@example.com" {
		t.Errorf("the move back's page:\n%s", d.Text())
	}
	resp, body = owner.post(t, back, url.Values{"password": {"short"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = owner.post(t, back, url.Values{"password": {"the owner's own again"}})
	wantRedirect(t, resp, body, "/account")
	if u, _ := e.store.UserByID(ctx, ann.ID); u.Email != "ann@example.com" || u.EmailConfirmedAt == nil {
		t.Fatalf("after moving back the account signs in with %s", u.Email)
	}
	if got := owner.page(t, "/account").Find("[data-testid=account-email]").Text(); got != "ann@example.com" {
		t.Errorf("the owner, signed in by moving back, sees %q", got)
	}
	resp, body = thief.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount")
	for addr, pass := range map[string]string{"ann@example.com": goodPassword, "eve@example.com": goodPassword} {
		if resp, _ := login(t, e.client(), addr, pass); resp.StatusCode == http.StatusSeeOther {
			t.Errorf("%s signs in with the thief's password", addr)
		}
	}
	resp, body = login(t, e.client(), "ann@example.com", "the owner's own again")
	wantRedirect(t, resp, body, "/")
	resp, body = e.client().post(t, back, url.Values{"password": {"yet another one"}})
	wantStatus(t, resp, body, http.StatusGone)
	if u, _ := e.store.UserByID(ctx, ann.ID); u.ReplyTo != "" || u.ReplyToPending != "" {
		t.Errorf("after moving back replies go to %q (waiting: %q)", u.ReplyTo, u.ReplyToPending)
	}
	// The address moved away from is told.
	find("eve@example.com", "Your Rassylka account moved back")
}
