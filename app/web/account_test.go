package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/gob"
	"fmt"
	"github.com/uptrace/bun"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/testkit"
)

const goodPassword = "violet tiger mirror"

func register(t testing.TB, c *client, email, name string) {
	t.Helper()
	resp, body := c.post(t, "/register", url.Values{"email": {email}, "full_name": {name}, "password": {goodPassword}, "time_zone": {"Europe/Berlin"}})
	wantRedirect(t, resp, body, "/register/sent")
}

func login(t testing.TB, c *client, email, password string) (*http.Response, string) {
	t.Helper()
	return c.post(t, "/login", url.Values{"email": {email}, "password": {password}})
}

// newUser creates a confirmed user directly, for tests about other things.
func newUser(t testing.TB, e *env, email string, role model.Role) *model.User {
	t.Helper()
	hash, err := auth.HashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	u := &model.User{Email: email, FullName: strings.Split(email, "@")[0], PasswordHash: &hash, Role: role, EmailConfirmedAt: &now}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func signedIn(t testing.TB, e *env, email string, role model.Role) *client {
	t.Helper()
	newUser(t, e, email, role)
	c := e.client()
	resp, body := login(t, c, email, goodPassword)
	wantRedirect(t, resp, body, "/")
	return c
}

func TestRegisterConfirmSignIn(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()

	resp, body := c.get(t, "/register")
	wantStatus(t, resp, body, http.StatusOK)
	if _, ok := parseHTML(t, body).Find(`input[name="time_zone"][data-browser-time-zone]`).Attr("name"); !ok {
		t.Error("registration form lacks the browser time-zone field")
	}
	register(t, c, "New.Person@Example.com", "New Person")
	resp, body = c.get(t, "/register/sent")
	wantStatus(t, resp, body, http.StatusOK)

	m, link := e.waitMail(t, sink, 1)
	if m.To[0] != "new.person@example.com" || !strings.HasPrefix(link, "/confirm/") {
		t.Fatalf("confirmation mail to %v with link %q", m.To, link)
	}
	// Anyone can register any address: the name given is not put in the
	// mail to it (a registrant's words, in a mail from us), until the
	// address is confirmed.
	if to := m.Header().Get("To"); strings.Contains(to, "New Person") || strings.Contains(m.Body(), "New Person") {
		t.Errorf("the mail to an unconfirmed address carries the name given: To %q\n%s", to, m.Body())
	}
	u, err := e.store.UserByEmail(context.Background(), "new.person@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.EmailConfirmedAt != nil || u.TimeZone != "Europe/Berlin" || u.FullName != "New Person" || u.Role != model.RoleUser {
		t.Fatalf("new user %+v", u)
	}
	var stored []byte
	if err := e.db.NewRaw("SELECT token_hash FROM tokens WHERE user_id = ?", u.ID).Scan(context.Background(), &stored); err != nil {
		t.Fatal(err)
	}
	plain := strings.TrimPrefix(link, "/confirm/")
	if strings.Contains(string(stored), plain) || len(stored) != 32 {
		t.Fatal("the token is stored as it was mailed, not hashed")
	}

	// Not confirmed yet: told why, with a way to get a new link.
	resp, body = login(t, c, "new.person@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusForbidden)
	doc := parseHTML(t, body)
	if !strings.Contains(doc.Find("[data-testid=form-error]").Text(), "confirm your email") || doc.Find("[data-testid=resend-form]").Length() != 1 {
		t.Fatalf("unconfirmed sign-in page does not explain or offer a resend:\n%s", body)
	}
	resp, body = c.post(t, "/confirm/resend", url.Values{"email": {"new.person@example.com"}})
	wantRedirect(t, resp, body, "/register/sent")
	_, newLink := e.waitMail(t, sink, 2)
	if newLink == link {
		t.Fatal("resend mailed the same link")
	}

	// The link opened in another browser (a phone) leads to a sign-in
	// form with the address filled in.
	phone := e.client()
	resp, body = phone.get(t, newLink)
	wantRedirect(t, resp, body, "/login")
	_, body = phone.get(t, "/login")
	if !strings.Contains(body, "confirmed") {
		t.Errorf("no flash after confirming:\n%s", body)
	}
	if v := parseHTML(t, body).Find("#field-email").AttrOr("value", ""); v != "new.person@example.com" {
		t.Errorf("the sign-in form after confirming has the address %q", v)
	}
	// Once signed in, and out, the screen no longer shows it to whoever
	// comes next.
	resp, body = login(t, phone, "new.person@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	resp, body = phone.post(t, "/logout", nil)
	wantRedirect(t, resp, body, "/")
	if _, body = phone.get(t, "/login"); parseHTML(t, body).Find("#field-email").AttrOr("value", "") != "" {
		t.Error("the sign-in form after a sign-out shows the address confirmed before")
	}
	// Using one link retires the others.
	resp, body = c.get(t, link)
	wantStatus(t, resp, body, http.StatusGone)
	resp, body = c.get(t, newLink)
	wantStatus(t, resp, body, http.StatusGone)
	if !strings.Contains(body, "already used") {
		t.Errorf("second use of the link is not explained:\n%s", body)
	}

	resp, body = login(t, c, "NEW.PERSON@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	resp, body = c.get(t, "/")
	wantStatus(t, resp, body, http.StatusOK)
	doc = parseHTML(t, body)
	if doc.Find("[data-testid=dashboard]").Length() != 1 || !strings.Contains(doc.Find("[data-testid=viewer]").Text(), "New Person") ||
		strings.TrimSpace(doc.Find("[data-testid=viewer-role]").Text()) != "user" || doc.Find("[data-testid=sign-out]").Length() != 1 {
		t.Fatalf("signed-in layout does not show who, the role and sign-out:\n%s", body)
	}
}

// One mailbox is one account however its domain is written: registering
// the ASCII form of an internationalized domain after its Unicode form
// finds the account, and either form signs in, as does an account saved
// under the ASCII form before addresses were made canonical. A new
// account's address is one mail can reach.
func TestAccountAddressesOneFormPerMailbox(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "idn@Пример.рф", "Idn")
	m, link := e.waitMail(t, sink, 1)
	if m.To[0] != "idn@xn--e1afmkfd.xn--p1ai" {
		t.Errorf("the confirmation went to %v", m.To)
	}
	resp, body := c.post(t, "/register", url.Values{"email": {"idn@xn--e1afmkfd.xn--p1ai"}, "full_name": {"Other"}, "password": {"another one 123"}})
	wantRedirect(t, resp, body, "/register/sent")
	m, choose := e.waitMail(t, sink, 2)
	if subject := m.Header().Get("Subject"); subject != "Your Rassylka account" {
		t.Errorf("registering the ASCII form mailed %q, want the mail for an address that has an account", subject)
	}
	var n int
	if err := e.db.NewRaw("SELECT count(*) FROM users WHERE email LIKE 'idn@%'").Scan(context.Background(), &n); err != nil || n != 1 {
		t.Fatalf("%d accounts, %v; want 1", n, err)
	}

	// The second registration was another password: the inbox chooses one.
	if choose == link || !strings.HasPrefix(choose, "/password/reset/") {
		t.Fatalf("the second mail's link %q", choose)
	}
	resp, body = c.post(t, choose, url.Values{"password": {"the owner's own"}})
	wantRedirect(t, resp, body, "/")
	for _, addr := range []string{"idn@пример.рф", "IDN@XN--E1AFMKFD.XN--P1AI"} {
		resp, body = login(t, e.client(), addr, "the owner's own")
		wantRedirect(t, resp, body, "/")
	}

	newUser(t, e, "old@xn--bcher-kva.de", model.RoleUser)
	resp, body = login(t, e.client(), "old@Bücher.de", goodPassword)
	wantRedirect(t, resp, body, "/")

	long := strings.Repeat("a", 65) + "@example.com"
	for _, addr := range []string{long, "a@[127.0.0.1]"} {
		resp, body = c.post(t, "/register", url.Values{"email": {addr}, "full_name": {"X"}, "password": {goodPassword}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if inputValue(t, body, "email") != addr {
			t.Errorf("the rejected address %q is not kept", addr)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	cases := []struct {
		name, field, email, fullName, password string
	}{
		{"missing email", "email", "", "Ann", goodPassword},
		{"bad email", "email", "ann@", "Ann", goodPassword},
		{"display name in email", "email", "Ann <ann@example.com>", "Ann", goodPassword},
		{"long email", "email", strings.Repeat("a", 250) + "@example.com", "Ann", goodPassword},
		{"missing name", "full_name", "ann@example.com", " ", goodPassword},
		{"long name", "full_name", "ann@example.com", strings.Repeat("n", 201), goodPassword},
		{"short password", "password", "ann@example.com", "Ann", "short1"},
		{"common password", "password", "ann@example.com", "Ann", "password123"},
		{"password is the email", "password", "ann@example.com", "Ann", "ann@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := c.post(t, "/register", url.Values{"email": {tc.email}, "full_name": {tc.fullName}, "password": {tc.password}})
			wantStatus(t, resp, body, http.StatusUnprocessableEntity)
			if fieldError(t, body, tc.field) == "" {
				t.Fatalf("no error beside %s:\n%s", tc.field, body)
			}
			if tc.field != "full_name" && inputValue(t, body, "full_name") != strings.TrimSpace(tc.fullName) {
				t.Errorf("typed name lost: %q", inputValue(t, body, "full_name"))
			}
			if tc.field != "email" && inputValue(t, body, "email") != tc.email {
				t.Errorf("typed email lost: %q", inputValue(t, body, "email"))
			}
			if inputValue(t, body, "password") != "" {
				t.Error("the password is echoed back")
			}
		})
	}
	var n int
	if err := e.db.NewRaw("SELECT count(*) FROM users").Scan(context.Background(), &n); err != nil || n != 0 {
		t.Fatalf("users after rejected forms: %d, %v", n, err)
	}
}

func TestRegisterExistingEmailDoesNotTell(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	newUser(t, e, "taken@example.com", model.RoleUser)
	c := e.client()
	resp, body := c.post(t, "/register", url.Values{"email": {"TAKEN@example.com"}, "full_name": {"Impostor"}, "password": {goodPassword}})
	wantRedirect(t, resp, body, "/register/sent")
	m, _ := e.waitMail(t, sink, 1)
	if m.To[0] != "taken@example.com" || !strings.Contains(m.Body(), "already has one") || !strings.Contains(m.Body(), "sign in at") {
		t.Fatalf("owner not told: to %v\n%s", m.To, m.Body())
	}
	var n int
	if err := e.db.NewRaw("SELECT count(*) FROM users").Scan(context.Background(), &n); err != nil || n != 1 {
		t.Fatalf("users = %d, %v; want the one", n, err)
	}
	// A blocked account's owner is told why signing in will not do, in
	// this mail and in the one a confirmation asked for gets.
	if _, err := e.db.ExecContext(context.Background(), "UPDATE users SET blocked_at = now()"); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, "/register", url.Values{"email": {"taken@example.com"}, "full_name": {"Impostor"}, "password": {goodPassword}})
	wantRedirect(t, resp, body, "/register/sent")
	resp, body = c.post(t, "/confirm/resend", url.Values{"email": {"taken@example.com"}})
	wantRedirect(t, resp, body, "/register/sent")
	for i := 2; i <= 3; i++ {
		m, _ = e.waitMail(t, sink, i)
		if body := m.Body(); !strings.Contains(body, "has blocked the account") || strings.Contains(body, "sign in at") || strings.Contains(body, "Sign in at") {
			t.Errorf("mail %d to a blocked account's owner:\n%s", i, body)
		}
	}
}

func TestConfirmBadLinks(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()

	resp, body := c.get(t, "/confirm/forged-token-that-was-never-issued")
	wantStatus(t, resp, body, http.StatusNotFound)
	if parseHTML(t, body).Find("[data-testid=resend-form]").Length() != 1 {
		t.Errorf("a forged link does not offer to resend:\n%s", body)
	}

	register(t, c, "late@example.com", "Late")
	_, link := e.waitMail(t, sink, 1)
	if _, err := e.db.ExecContext(context.Background(), "UPDATE tokens SET expires_at = now() - interval '1 minute'"); err != nil {
		t.Fatal(err)
	}
	resp, body = c.get(t, link)
	wantStatus(t, resp, body, http.StatusGone)
	if !strings.Contains(body, "expired") || parseHTML(t, body).Find("[data-testid=resend-form]").Length() != 1 {
		t.Errorf("an expired link is not explained with a resend form:\n%s", body)
	}
	if u, _ := e.store.UserByEmail(context.Background(), "late@example.com"); u.EmailConfirmedAt != nil {
		t.Fatal("an expired link confirmed the address")
	}
}

// TestExpiredConfirmLinkOfAConfirmedAccount: an address confirmed another
// way (a password reset link confirms it too) makes an old, expired
// confirmation link moot. Its page must not send the owner to ask for a
// new link: the resend answers "we mailed you a link" but mails nothing
// to a confirmed account, and the owner waits for a mail that never comes.
func TestExpiredConfirmLinkOfAConfirmedAccount(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "late@example.com", "Late")
	_, confirmLink := e.waitMail(t, sink, 1)
	resp, body := c.post(t, "/password/forgot", url.Values{"email": {"late@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	_, resetLink := e.waitMail(t, sink, 2)
	resp, body = c.post(t, resetLink, url.Values{"password": {"a brand new secret"}})
	wantRedirect(t, resp, body, "/")
	if u, _ := e.store.UserByEmail(context.Background(), "late@example.com"); u.EmailConfirmedAt == nil {
		t.Fatal("the reset did not confirm the address")
	}
	if _, err := e.db.ExecContext(context.Background(), "UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE purpose = 'confirm_email'"); err != nil {
		t.Fatal(err)
	}

	fresh := e.client()
	resp, body = fresh.get(t, confirmLink)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired link of a confirmed account: %d %q, offering a resend: %v; want the sign-in page saying the address is confirmed",
			resp.StatusCode, parseHTML(t, body).Find("h1").Text(), parseHTML(t, body).Find("[data-testid=resend-form]").Length() == 1)
	}
	wantRedirect(t, resp, body, "/login")
	_, body = fresh.get(t, "/login")
	if !strings.Contains(body, "is confirmed") {
		t.Errorf("the sign-in page does not say the address is confirmed:\n%s", body)
	}
}

// Asking for a confirmation link of an address confirmed already (from an
// old "check your inbox" page) mails where to sign in: the answer says a
// mail is on its way, so one comes, and it holds no confirmation link.
func TestResendForAConfirmedAddress(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	resp, body := e.client().post(t, "/confirm/resend", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/register/sent")
	m, link := e.waitMail(t, sink, 1)
	if m.To[0] != "ann@example.com" || link != "/login" || strings.Contains(m.Body(), "/confirm/") {
		t.Fatalf("mail to %v, first link %q:\n%s", m.To, link, m.Body())
	}
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()

	resp, body := login(t, c, "ann@example.com", "wrong password")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	wrongPassword := parseHTML(t, body).Find("[data-testid=form-error]").Text()
	if inputValue(t, body, "email") != "ann@example.com" {
		t.Error("typed email lost")
	}
	resp, body = login(t, c, "nobody@example.com", "wrong password")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if got := parseHTML(t, body).Find("[data-testid=form-error]").Text(); got != wrongPassword || got == "" {
		t.Errorf("unknown email answers %q, wrong password %q: they must not differ", got, wrongPassword)
	}
	resp, body = login(t, c, "", "")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "email") == "" || fieldError(t, body, "password") == "" {
		t.Errorf("empty form: no field errors\n%s", body)
	}
	if _, ok := c.cookies[auth.CookieName]; ok {
		t.Fatal("a failed sign-in left a session cookie")
	}
}

// throttleEnv trusts the test's "proxy" so each client can come from its
// own address.
func throttleEnv(t testing.TB) *env {
	t.Helper()
	cfg := testConfig(t)
	cfg.ProxyHeader = "X-Forwarded-For"
	cfg.TrustedProxies = []string{"0.0.0.0", "127.0.0.1", "::1"}
	return newEnvWith(t, cfg, testkit.Redis(t), nil)
}

// Over the limit of account forms from one network, a sign-up, a reset or
// a new confirmation link is refused (429) on its own form, with what was
// typed and the wait that Retry-After gives, not on an error page that
// loses the form and says "a few minutes" for most of an hour.
func TestAccountFormsOverTheLimitKeepWhatWasTyped(t *testing.T) {
	e := throttleEnv(t)
	c := e.client()
	c.ip = "198.51.100.60"
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("no limit after 100 sign-ups")
		}
		resp, body := c.post(t, "/register", url.Values{"email": {"flood" + strconv.Itoa(i) + "@example.com"}, "full_name": {"Keep Me"},
			"password": {goodPassword}, "time_zone": {"Asia/Tokyo"}})
		if resp.StatusCode == http.StatusSeeOther {
			continue
		}
		wantStatus(t, resp, body, http.StatusTooManyRequests)
		wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || wait < 60 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		minutes := (wait + 59) / 60
		if v := inputValue(t, body, "email"); v != "flood"+strconv.Itoa(i)+"@example.com" {
			t.Errorf("the refused sign-up lost the address typed: %q", v)
		}
		if v := inputValue(t, body, "full_name"); v != "Keep Me" {
			t.Errorf("the refused sign-up lost the name typed: %q", v)
		}
		if v := inputValue(t, body, "time_zone"); v != "Asia/Tokyo" {
			t.Errorf("the refused sign-up lost the time zone: %q", v)
		}
		want := "Please try again in " + strconv.Itoa(minutes) + " minutes."
		if !strings.Contains(body, want) {
			t.Errorf("the refused sign-up does not say %q:\n%s", want, body)
		}
		break
	}
	resp, body := c.post(t, "/password/forgot", url.Values{"email": {"someone@example.com"}})
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if v := inputValue(t, body, "email"); v != "someone@example.com" || !strings.Contains(body, "Please try again in") {
		t.Errorf("the refused reset keeps %q and says:\n%s", v, body)
	}
	resp, body = c.post(t, "/confirm/resend", url.Values{"email": {"someone@example.com"}})
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if v := inputValue(t, body, "email"); v != "someone@example.com" || !strings.Contains(body, "Please try again in") {
		t.Errorf("the refused confirmation link keeps %q and says:\n%s", v, body)
	}
	// Another network is not held up.
	c.ip = "198.51.100.61"
	resp, body = c.post(t, "/password/forgot", url.Values{"email": {"someone@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
}

func TestLoginThrottledPerAccount(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "target@example.com", model.RoleUser)
	newUser(t, e, "other@example.com", model.RoleUser)

	// Successful sign-ins are not throttled.
	for i := 0; i < 12; i++ {
		c := e.client()
		c.ip = "198.51.100.200"
		resp, body := login(t, c, "other@example.com", goodPassword)
		wantRedirect(t, resp, body, "/")
	}
	// Ten wrong guesses, each from another address.
	for i := 0; i < 10; i++ {
		c := e.client()
		c.ip = "203.0.113." + strconv.Itoa(i+1)
		resp, body := login(t, c, "target@example.com", "guess "+strconv.Itoa(i))
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	c := e.client()
	c.ip = "203.0.113.99"
	resp, body := login(t, c, "target@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if !strings.Contains(body, "Too many failed sign-ins") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("429 page is not readable or lacks Retry-After:\n%s", body)
	}
	// Another account from that address is fine.
	resp, body = login(t, c, "other@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")

	// The window passes (here: the counters are dropped).
	if err := e.redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	resp, body = login(t, c, "target@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

// Someone who keeps failing to sign in as an account from elsewhere,
// holding its count over the limit, does not lock its owner out of a
// browser that signed in to it with the password before.
func TestLoginLockoutSparesTheOwnersBrowser(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "target@example.com", model.RoleUser)
	owner := e.client()
	owner.ip = "198.51.100.7"
	resp, body := login(t, owner, "target@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	owner.post(t, "/logout", nil)
	for i := 0; i < 11; i++ {
		c := e.client()
		c.ip = "203.0.113." + strconv.Itoa(i+1)
		login(t, c, "target@example.com", "guess "+strconv.Itoa(i))
	}
	fresh := e.client()
	fresh.ip = "198.51.100.8"
	resp, body = login(t, fresh, "target@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	// Another account's device cookie, or a forged one, is no way round.
	fresh.cookies["rassylka_device"] = "abc.forged"
	resp, body = login(t, fresh, "target@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)

	resp, body = login(t, owner, "target@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

// Sign-ins with the right password do not count as guesses even while the
// account cannot sign in: a new user trying before confirming is not
// locked out once confirmed.
func TestUnconfirmedSignInsAreNotGuesses(t *testing.T) {
	e := throttleEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "new@example.com", "New")
	_, link := e.waitMail(t, sink, 1)
	for i := 0; i < 12; i++ {
		resp, body := login(t, c, "new@example.com", goodPassword)
		wantStatus(t, resp, body, http.StatusForbidden)
	}
	resp, body := c.get(t, link)
	wantRedirect(t, resp, body, "/login")
	resp, body = login(t, c, "new@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

func TestLoginThrottledPerAddress(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	for i := 0; i < 10; i++ {
		c := e.client()
		c.ip = "192.0.2.7"
		resp, body := login(t, c, "user"+strconv.Itoa(i)+"@example.com", "some guess")
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	c := e.client()
	c.ip = "192.0.2.7"
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	c.ip = "192.0.2.8"
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

// An IPv6 client holds a whole /64 (privacy addresses rotate inside it,
// and any host may take as many as it likes): the throttles count the
// network, not each address, or a guesser would take a new address per
// guess.
func TestThrottlesCountAnIPv6Network(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	for i := 0; i < 10; i++ {
		c := e.client()
		c.ip = "2001:db8:7:1::" + strconv.FormatInt(int64(i+1), 16)
		resp, body := login(t, c, "user"+strconv.Itoa(i)+"@example.com", "some guess")
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	c := e.client()
	c.ip = "2001:db8:7:1:a:b:c:d"
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	// Another network is not affected.
	c.ip = "2001:db8:7:2::1"
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")

	// The same for sign-ups, resets and confirmations.
	var status int
	for i := 0; i < 100 && status != http.StatusTooManyRequests; i++ {
		c := e.client()
		c.ip = "2001:db8:7:3:" + strconv.FormatInt(int64(i+1), 16) + "::1"
		resp, body = c.post(t, "/password/forgot", url.Values{"email": {"flood" + strconv.Itoa(i) + "@example.com"}})
		if status = resp.StatusCode; status != http.StatusTooManyRequests {
			wantStatus(t, resp, body, http.StatusSeeOther)
		}
	}
	wantStatus(t, resp, body, http.StatusTooManyRequests)
}

// Behind a reverse proxy that appends the peer to X-Forwarded-For (nginx's
// $proxy_add_x_forwarded_for, Caddy, Traefik), the leftmost entries are
// whatever the client sent: the throttle must key on the address the
// trusted proxy saw, not on one the guesser picks per request.
func TestLoginThrottledPerAddressBehindAppendingProxy(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	guess := func(i int) (*http.Response, string) {
		c := e.client()
		// what the proxy forwards: the client's forged value, then the peer
		c.ip = "10.9." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ", 192.0.2.7"
		return login(t, c, "user"+strconv.Itoa(i)+"@example.com", "some guess")
	}
	for i := 0; i < 10; i++ {
		resp, body := guess(i)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	resp, body := guess(10)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	// Another client behind the same proxy is not affected.
	c := e.client()
	c.ip = "192.0.2.8"
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

// A proxy may append the peer it saw as a header line of its own
// (HAProxy's option forwardfor) rather than to the client's line: the
// lines are one list (RFC 9110, 5.3), so the client's forged line is
// still the leftmost part and must not pick the throttle's key.
func TestLoginThrottledPerAddressBehindProxyAddingALine(t *testing.T) {
	e := throttleEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	guess := func(i int) (*http.Response, string) {
		c := e.client()
		c.ip = "10.9." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) // the client's own line
		req, _ := http.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{
			"email": {"user" + strconv.Itoa(i) + "@example.com"}, "password": {"some guess"}, "_csrf": {c.csrf(t)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range c.cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		req.Header.Add("X-Forwarded-For", c.ip)
		req.Header.Add("X-Forwarded-For", "192.0.2.7") // the proxy's line
		return e.do(t, req)
	}
	for i := 0; i < 10; i++ {
		resp, body := guess(i)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	}
	resp, body := guess(10)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
}

// Registering, asking for a reset link and asking for a new confirmation
// link are throttled per address: each sign-up costs an argon2id hash (64
// MiB) and each of them can queue a mail to an address of the sender's
// choice.
func TestAccountFormsThrottledPerAddress(t *testing.T) {
	e := throttleEnv(t)
	for _, tc := range []struct{ path string }{{"/register"}, {"/password/forgot"}, {"/confirm/resend"}} {
		t.Run(tc.path, func(t *testing.T) {
			ip := "198.51.100." + strconv.Itoa(len(tc.path))
			var resp *http.Response
			var body string
			for i := 0; i < 100; i++ {
				c := e.client()
				c.ip = ip
				addr := "flood" + strconv.Itoa(i) + tc.path[1:3] + "@example.com"
				resp, body = c.post(t, tc.path, url.Values{"email": {addr}, "full_name": {"Flood"}, "password": {goodPassword}})
				if resp.StatusCode == http.StatusTooManyRequests {
					break
				}
				wantStatus(t, resp, body, http.StatusSeeOther)
			}
			wantStatus(t, resp, body, http.StatusTooManyRequests)
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			// Someone else may still sign up.
			c := e.client()
			c.ip = "203.0.113.77"
			resp, body = c.post(t, tc.path, url.Values{"email": {"else" + tc.path[1:3] + "@example.com"}, "full_name": {"Else"}, "password": {goodPassword}})
			wantStatus(t, resp, body, http.StatusSeeOther)
		})
	}
}

// Asking for a new confirmation link answers before any link is made, as
// the forgot-password form does: only an unconfirmed account gets a link
// stored and a mail queued, so an answer that waits for them tells by its
// timing which addresses have an account awaiting confirmation.
func TestResendAnswersBeforeTheLink(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	register(t, e.client(), "new@example.com", "New")
	e.waitMail(t, sink, 1)
	answersWhileTokensLocked(t, e, "/confirm/resend", "new@example.com")
	if m, link := e.waitMail(t, sink, 2); m.To[0] != "new@example.com" || !strings.HasPrefix(link, "/confirm/") {
		t.Fatalf("mail to %v with %q", m.To, link)
	}
}

func TestSessionRotationAndLogout(t *testing.T) {
	e := newEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	first := c.cookies[auth.CookieName]
	if n, _ := e.redis.Exists(context.Background(), "session:"+first).Result(); n != 1 {
		t.Fatal("the session is not stored")
	}
	// Signing in again with a live session gets a new id; the old one dies.
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	sid := c.cookies[auth.CookieName]
	if sid == "" || sid == first {
		t.Fatalf("session id after sign-in = %q, before %q: not rotated", sid, first)
	}
	if n, _ := e.redis.Exists(context.Background(), "session:"+first).Result(); n != 0 {
		t.Fatal("the session from before sign-in still exists")
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == auth.CookieName && (!ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure) {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on http", ck)
		}
	}
	ttl, err := e.redis.TTL(context.Background(), "session:"+sid).Result()
	if err != nil || ttl <= 0 || ttl > auth.IdleTimeout {
		t.Errorf("session TTL in Redis = %v, %v; want the idle lifetime", ttl, err)
	}

	// The pages carry the mark of this sign-in, which the browser keeps
	// in a cookie scripts can read (app.js compares them on "Back").
	firstMark := c.cookies[auth.MarkCookieName]
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	sid = c.cookies[auth.CookieName]
	mark := c.cookies[auth.MarkCookieName]
	if firstMark == "" || mark == "" || mark == firstMark {
		t.Errorf("sign-in marks %q then %q: want a new mark each time", firstMark, mark)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == auth.MarkCookieName && (ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode) {
			t.Errorf("mark cookie %+v: want it readable by scripts, SameSite=Lax", ck)
		}
	}
	_, body = c.get(t, "/clients")
	if got, _ := parseHTML(t, body).Find("body").Attr("data-signed-in"); got != mark {
		t.Errorf("a signed-in page carries the mark %q, want %q", got, mark)
	}

	resp, body = c.post(t, "/logout", nil)
	wantRedirect(t, resp, body, "/")
	if n, _ := e.redis.Exists(context.Background(), "session:"+sid).Result(); n != 0 {
		t.Fatal("session still in Redis after sign-out")
	}
	if c.cookies[auth.MarkCookieName] != "" {
		t.Error("the mark outlives the sign-out")
	}
	if _, body = c.get(t, "/"); strings.Contains(body, "data-signed-in") {
		t.Error("a page after the sign-out carries a mark")
	}
	replay := e.client()
	replay.cookies[auth.CookieName] = sid
	resp, body = replay.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount")
}

// The browser's cookies live as long as the session does: each signed-in
// request renews them (the session cookie used to expire IdleTimeout after
// signing in, however active the user), and a session that ended without
// a sign-out (ended elsewhere, gone idle) takes the mark with it, so that
// app.js reloads the pages kept of it.
func TestSessionCookiesFollowTheSession(t *testing.T) {
	e := newEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	mark := c.cookies[auth.MarkCookieName]
	resp, _ = c.get(t, "/clients")
	renewed := map[string]*http.Cookie{}
	for _, ck := range resp.Cookies() {
		renewed[ck.Name] = ck
	}
	for _, name := range []string{auth.CookieName, auth.MarkCookieName} {
		ck := renewed[name]
		if ck == nil || ck.MaxAge != int(auth.IdleTimeout.Seconds()) {
			t.Errorf("a signed-in request renews %s as %+v, want Max-Age of the idle lifetime", name, ck)
		}
	}
	if ck := renewed[auth.CookieName]; ck != nil && (ck.Value != c.cookies[auth.CookieName] || !ck.HttpOnly) {
		t.Errorf("the session cookie renewed as %+v", ck)
	}
	if ck := renewed[auth.MarkCookieName]; ck != nil && ck.Value != mark {
		t.Errorf("the mark changed within a session: %q, then %q", mark, ck.Value)
	}

	// Ended elsewhere (a manager blocked her): the mark goes on the next
	// request.
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	c.get(t, "/clients")
	if c.cookies[auth.MarkCookieName] != "" {
		t.Error("the mark outlives a session ended elsewhere")
	}
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/unblock", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)

	// Gone idle (its key expired in Redis).
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	if c.cookies[auth.MarkCookieName] == "" || c.cookies[auth.MarkCookieName] == mark {
		t.Fatalf("a new sign-in's mark %q (the last one %q)", c.cookies[auth.MarkCookieName], mark)
	}
	if err := e.redis.Del(context.Background(), "session:"+c.cookies[auth.CookieName]).Err(); err != nil {
		t.Fatal(err)
	}
	c.get(t, "/")
	if c.cookies[auth.MarkCookieName] != "" {
		t.Error("the mark outlives a session gone idle")
	}
}

func TestSecureCookieOnHTTPS(t *testing.T) {
	cfg := testConfig(t)
	cfg.BaseURL = "https://mail.example.com"
	e := newEnvWith(t, cfg, testkit.Redis(t), nil)
	newUser(t, e, "ann@example.com", model.RoleUser)
	resp, _ := login(t, e.client(), "ann@example.com", goodPassword)
	sid := ""
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, auth.CookieName) {
			sid = ck.Value
			if !ck.Secure {
				t.Error("session cookie not Secure when BASE_URL is https")
			}
			// A __Host- cookie cannot be planted by a sibling subdomain or
			// a plain-http answer (a network attacker's), as the CSRF
			// cookie cannot.
			if ck.Name != "__Host-"+auth.CookieName || ck.Path != "/" || ck.Domain != "" {
				t.Errorf("session cookie %s (path %q, domain %q) on https, want __Host-%s on / with no domain", ck.Name, ck.Path, ck.Domain, auth.CookieName)
			}
		}
	}
	if sid == "" {
		t.Fatal("no session cookie")
	}
	// Someone's own session planted, under the plain name, into another
	// browser does not sign that browser in as them (sign-in CSRF).
	planted := e.client()
	planted.cookies[auth.CookieName] = sid
	resp, body := planted.get(t, "/account")
	wantStatus(t, resp, body, http.StatusSeeOther)

	// So are the cookies of the site's notes (a flash, the address a link
	// went to) and of the sign-in mark: every cookie the site sets.
	c := e.client()
	names := map[string]bool{}
	set := func(resp *http.Response) {
		for _, ck := range resp.Cookies() {
			names[ck.Name] = true
		}
	}
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	set(resp)
	resp, _ = c.post(t, "/logout", nil)
	set(resp)
	resp, _ = c.post(t, "/register", url.Values{"email": {"bob@example.com"}, "full_name": {"Bob"}, "password": {goodPassword}})
	set(resp)
	for name := range names {
		if !strings.HasPrefix(name, "__Host-") {
			t.Errorf("cookie %s on https is not __Host-", name)
		}
	}
	if !names["__Host-rassylka_flash"] || !names["__Host-rassylka_signed_in"] || !names["__Host-rassylka_sent_to"] {
		t.Errorf("cookies seen %v, want the notes and the mark among them", names)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()
	form := url.Values{"email": {"ann@example.com"}, "password": {goodPassword}}

	resp, body := c.postRaw(t, "/login", form)
	wantStatus(t, resp, body, http.StatusForbidden)
	if parseHTML(t, body).Find("[data-testid=error-page]").Length() != 1 || !strings.Contains(body, "Reload the page") {
		t.Fatalf("CSRF refusal is not a readable page that says what to do:\n%s", body)
	}
	// A refusal for who one is does not send one to reload the page.
	_, body = signedIn(t, e, "bob@example.com", model.RoleUser).get(t, "/users")
	if !strings.Contains(body, "You are not allowed to do that.") || strings.Contains(body, "eload the page") {
		t.Errorf("a plain user's /users says:\n%s", body)
	}
	tok := c.csrf(t)
	for _, bad := range []string{"x", tok + "x", strings.Replace(tok, ".", ".A", 1)} {
		f := url.Values{"email": form["email"], "password": form["password"], "_csrf": {bad}}
		resp, body = c.postRaw(t, "/login", f)
		wantStatus(t, resp, body, http.StatusForbidden)
	}
	// A token from another browser does not match this browser's cookie.
	other := e.client().csrf(t)
	f := url.Values{"email": form["email"], "password": form["password"], "_csrf": {other}}
	resp, body = c.postRaw(t, "/login", f)
	wantStatus(t, resp, body, http.StatusForbidden)

	// The htmx way: the header.
	req, _ := http.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", tok)
	resp, body = c.send(t, req)
	wantRedirect(t, resp, body, "/")

	// Signing in gave the browser a token of its own: the anonymous
	// pages' no longer works.
	if c.csrf(t) == tok {
		t.Fatal("the token did not change at sign-in")
	}
	resp, body = c.postRaw(t, "/clients", url.Values{"_csrf": {tok}, "email": {"x@example.com"}, "full_name": {"X"}})
	wantStatus(t, resp, body, http.StatusForbidden)
	tok = c.csrf(t)
	// The token counts in the body, not in the URL (kept by histories and
	// logs); a multipart body is a body too.
	resp, body = c.postRaw(t, "/clients?_csrf="+url.QueryEscape(tok), url.Values{"email": {"x@example.com"}})
	wantStatus(t, resp, body, http.StatusForbidden)
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("_csrf", tok)
	_ = w.WriteField("email", "x@example.com")
	_ = w.Close()
	req, _ = http.NewRequest(http.MethodPost, "/clients", &mp)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, body = c.send(t, req)
	wantStatus(t, resp, body, http.StatusSeeOther)

	// The page carries the same token in the meta tag and the forms.
	_, body = c.get(t, "/account")
	doc := parseHTML(t, body)
	meta, _ := doc.Find(`meta[name="csrf-token"]`).Attr("content")
	field, _ := doc.Find(`input[name="_csrf"]`).First().Attr("value")
	if meta != tok || field != tok {
		t.Fatalf("meta %q, field %q, cookie %q: want all equal", meta, field, tok)
	}

	// So does signing out.
	resp, body = c.post(t, "/logout", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	if c.csrf(t) == tok {
		t.Error("the token did not change at sign-out")
	}
}

// Every state-changing route refuses a request without the token, but the
// one-click unsubscribe, which mail providers post with none. The token is
// checked after routing: a path or method the site does not have is told
// so, token or not.
func TestEveryStateChangingRouteChecksCSRF(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleManager)
	c.csrf(t) // the cookie is there; only the token is left out
	params := strings.NewReplacer(":id", "1", ":token", "x", ":provider", "github")
	checked := 0
	for _, r := range e.app.GetRoutes(true) {
		if r.Method == fiber.MethodGet || r.Method == fiber.MethodHead || r.Method == fiber.MethodOptions {
			continue
		}
		req, _ := http.NewRequest(r.Method, params.Replace(r.Path), strings.NewReader("a=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := c.send(t, req)
		refused := resp.StatusCode == http.StatusForbidden && strings.Contains(body, "Reload the page")
		if exempt := r.Path == "/u/:token"; refused == exempt {
			t.Errorf("%s %s without a token = %d (exempt: %v)", r.Method, r.Path, resp.StatusCode, exempt)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d state-changing routes found", checked)
	}
	for _, r := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/no-such-page", http.StatusNotFound},
		{"DELETE", "/clients/1/no-such-thing", http.StatusNotFound},
		{"POST", "/stats", http.StatusMethodNotAllowed},
		{"DELETE", "/clients", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(r.method, r.path, nil)
		resp, body := c.send(t, req)
		wantStatus(t, resp, body, r.want)
	}
}

func TestNextRedirects(t *testing.T) {
	e := newEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)

	c := e.client()
	resp, body := c.get(t, "/account?tab=1")
	wantRedirect(t, resp, body, "/login?next=%2Faccount%3Ftab%3D1")
	_, body = c.get(t, "/login?next=%2Faccount%3Ftab%3D1")
	if inputValue(t, body, "next") != "/account?tab=1" {
		t.Fatalf("login form lost next: %q", inputValue(t, body, "next"))
	}
	// The page says why it is shown; opened by itself it does not.
	if !strings.Contains(parseHTML(t, body).Find("[data-testid=login-notice]").Text(), "Sign in to see that page") {
		t.Errorf("the sign-in page a protected page sent to does not say why:\n%.1500s", body)
	}
	if _, body := c.get(t, "/login"); strings.Contains(body, "login-notice") {
		t.Errorf("the sign-in page opened by itself explains a redirect")
	}
	resp, body = c.post(t, "/login", url.Values{"email": {"ann@example.com"}, "password": {goodPassword}, "next": {"/account?tab=1"}})
	wantRedirect(t, resp, body, "/account?tab=1")

	req, _ := http.NewRequest(http.MethodGet, "/account", nil)
	req.Header.Set("HX-Request", "true")
	resp, _ = e.client().send(t, req)
	if resp.Header.Get("HX-Redirect") != "/login?next=%2Faccount" {
		t.Errorf("htmx request of an anonymous visitor: HX-Redirect %q", resp.Header.Get("HX-Redirect"))
	}

	for _, evil := range []string{"//evil.example", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)", "http:/evil.example", "/%0d%0aSet-Cookie:x=y", "evil.example"} {
		t.Run(evil, func(t *testing.T) {
			c := e.client()
			resp, body := c.post(t, "/login", url.Values{"email": {"ann@example.com"}, "password": {goodPassword}, "next": {evil}})
			wantStatus(t, resp, body, http.StatusSeeOther)
			if loc := resp.Header.Get("Location"); loc != "/" && !strings.HasPrefix(loc, "/%") {
				t.Fatalf("next=%q redirected to %q", evil, loc)
			}
			if loc := resp.Header.Get("Location"); strings.Contains(loc, "evil") && !strings.HasPrefix(loc, "/%") {
				t.Fatalf("next=%q redirected off-site to %q", evil, loc)
			}
		})
	}
}

// TestNextAfterSignedOutPost: a form posted after the session ended goes to
// the sign-in page with the page the form was on as next, not the form's
// action: after signing in the browser GETs next, and a POST-only route
// (delete, send now, disable) would answer 405.
func TestNextAfterSignedOutPost(t *testing.T) {
	e := newEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	for _, tc := range []struct{ name, referer, want string }{
		{"from a page of the site", "http://rassylka.test/clients/7?tab=1", "/login?next=%2Fclients%2F7%3Ftab%3D1"},
		{"from another site", "http://evil.example/clients/7", "/login?next=%2F"},
		{"with no referer", "", "/login?next=%2F"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client()
			form := url.Values{"_csrf": {c.csrf(t)}}
			req, _ := http.NewRequest(http.MethodPost, "/clients/7/delete", strings.NewReader(form.Encode()))
			req.Host = "rassylka.test"
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.referer != "" {
				req.Header.Set("Referer", tc.referer)
			}
			resp, body := c.send(t, req)
			wantRedirect(t, resp, body, tc.want)
		})
	}
	// After signing in, next is a page that answers.
	c := e.client()
	form := url.Values{"_csrf": {c.csrf(t)}}
	req, _ := http.NewRequest(http.MethodPost, "/account/password", strings.NewReader(form.Encode()))
	req.Host = "rassylka.test"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", "http://rassylka.test/account")
	resp, body := c.send(t, req)
	wantRedirect(t, resp, body, "/login?next=%2Faccount")
	resp, body = c.post(t, "/login", url.Values{"email": {"ann@example.com"}, "password": {goodPassword}, "next": {"/account"}})
	wantRedirect(t, resp, body, "/account")
	resp, body = c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK)

	// A GET keeps its own address as next.
	resp, body = e.client().get(t, "/clients/7/edit")
	wantRedirect(t, resp, body, "/login?next=%2Fclients%2F7%2Fedit")
}

func TestBlockedUser(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	resp, body := c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK)

	if _, err := e.db.ExecContext(context.Background(), "UPDATE users SET blocked_at = now() WHERE email = 'ann@example.com'"); err != nil {
		t.Fatal(err)
	}
	// The open session ends on its next request.
	resp, body = c.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount&ended=blocked")
	if _, ok := c.cookies[auth.CookieName]; ok {
		t.Error("the blocked user's session cookie was not cleared")
	}
	_, body = c.get(t, resp.Header.Get("Location"))
	if !strings.Contains(body, "blocked") {
		t.Errorf("sign-in page does not say why:\n%s", body)
	}
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusForbidden)
	if !strings.Contains(body, "blocked") {
		t.Errorf("blocked sign-in not told:\n%s", body)
	}
	if _, ok := c.cookies[auth.CookieName]; ok {
		t.Error("a blocked user got a session")
	}
}

func TestRequireManager(t *testing.T) {
	e := newEnv(t)
	e.app.Get("/test/managers-only", auth.RequireUser, auth.RequireManager, func(c *fiber.Ctx) error {
		return c.SendString("secret of " + auth.CurrentUser(c).Email)
	})
	resp, body := e.client().get(t, "/test/managers-only")
	wantRedirect(t, resp, body, "/login?next=%2Ftest%2Fmanagers-only")

	user := signedIn(t, e, "user@example.com", model.RoleUser)
	resp, body = user.get(t, "/test/managers-only")
	wantStatus(t, resp, body, http.StatusForbidden)
	if strings.Contains(body, "secret") {
		t.Fatal("a user saw the manager's page")
	}

	manager := signedIn(t, e, "boss@example.com", model.RoleManager)
	resp, body = manager.get(t, "/test/managers-only")
	wantStatus(t, resp, body, http.StatusOK)
	_, body = manager.get(t, "/")
	if strings.TrimSpace(parseHTML(t, body).Find("[data-testid=viewer-role]").Text()) != "manager" {
		t.Error("layout does not show the manager role")
	}
}

// TestAbsoluteSessionLifetime ages a session past the absolute lifetime by
// rewriting its sign-in time in Redis; however recently used, it ends.
func TestAbsoluteSessionLifetime(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	key := "session:" + c.cookies[auth.CookieName]
	raw, err := e.redis.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{}
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&data); err != nil {
		t.Fatal(err)
	}
	if _, ok := data["auth_at"].(int64); !ok {
		t.Fatalf("session data %v has no sign-in time", data)
	}
	data["auth_at"] = time.Now().Add(-auth.AbsoluteTimeout - time.Minute).Unix()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&data); err != nil {
		t.Fatal(err)
	}
	if err := e.redis.Set(ctx, key, buf.Bytes(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(t, "/account")
	wantRedirect(t, resp, body, "/login?next=%2Faccount&ended=expired")
	if n, _ := e.redis.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("the expired session is still stored")
	}
}

// TestRegisterAgainBeforeConfirmation: registering an address nobody has
// confirmed yet, in either order (a planter before the owner, or after),
// never lets a registrant's password in through the owner's click: the mail
// for the second registration lets the inbox choose the password (which
// confirms the address), and the first registration's link stops working.
func TestRegisterAgainBeforeConfirmation(t *testing.T) {
	for _, plantedFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("planted first %v", plantedFirst), func(t *testing.T) {
			e := newEnv(t)
			sink := e.withWorker(t)
			owner, attacker := e.client(), e.client()
			plant := func() {
				resp, body := attacker.post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"}})
				wantRedirect(t, resp, body, "/register/sent")
			}
			if plantedFirst {
				plant()
			} else {
				register(t, owner, "victim@example.com", "Real Owner")
			}
			_, first := e.waitMail(t, sink, 1)
			if plantedFirst {
				register(t, owner, "victim@example.com", "Real Owner")
			} else {
				plant()
			}
			m, second := e.waitMail(t, sink, 2)
			if !strings.HasPrefix(first, "/confirm/") || !strings.HasPrefix(second, "/password/reset/") {
				t.Fatalf("links %q then %q; the second mail:\n%s", first, second, m.Body())
			}
			// Neither registrant's name is the owner's for sure: the mail
			// greets no one by it, and the account keeps none.
			if !strings.HasPrefix(m.Body(), "Hello,") {
				t.Errorf("the mail to the inbox greets %.40q", m.Body())
			}
			if u, _ := e.store.UserByEmail(context.Background(), "victim@example.com"); u.FullName != "" {
				t.Errorf("the contested account keeps the name %q", u.FullName)
			}
			resp, body := owner.get(t, first)
			wantStatus(t, resp, body, http.StatusGone)
			if doc := parseHTML(t, body); !strings.Contains(body, "newer link") || doc.Find("[data-testid=resend-form]").Length() != 1 {
				t.Fatalf("the replaced link's page does not say so, or offers no new link:\n%s", body)
			}
			resp, body = owner.post(t, second, url.Values{"password": {"the owner's own"}})
			wantRedirect(t, resp, body, "/")

			for _, password := range []string{"attacker secret 1", goodPassword} {
				resp, body = login(t, e.client(), "victim@example.com", password)
				wantStatus(t, resp, body, http.StatusUnprocessableEntity)
			}
			resp, body = login(t, e.client(), "victim@example.com", "the owner's own")
			wantRedirect(t, resp, body, "/")
		})
	}
}

// A blocked account's confirmation link confirms the address and says
// the account is blocked, rather than invite a sign-in that is refused.
func TestConfirmBlockedAccount(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "held@example.com", "Held")
	_, link := e.waitMail(t, sink, 1)
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	u, err := e.store.UserByEmail(context.Background(), "held@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetBlocked(context.Background(), boss.ID, u.ID, true); err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(t, link)
	wantRedirect(t, resp, body, "/login")
	_, body = c.get(t, "/login")
	if !strings.Contains(body, "account is blocked") || strings.Contains(body, "You can sign in now") {
		t.Errorf("confirming a blocked account's address says:\n%s", body)
	}
	if u, _ = e.store.UserByEmail(context.Background(), "held@example.com"); u.EmailConfirmedAt == nil {
		t.Error("the address is not confirmed")
	}
}

// Registering twice with the same password (a second click, a retry) is
// the first registrant again: a second confirmation link comes, the first
// still works, and the password chosen signs in. It used to end the first
// link and drop the password, as for a contested address.
func TestRegisterTwiceWithTheSamePassword(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := e.client()
	register(t, c, "twice@example.com", "Twice")
	_, first := e.waitMail(t, sink, 1)
	register(t, c, "twice@example.com", "Twice")
	m, second := e.waitMail(t, sink, 2)
	if !strings.HasPrefix(first, "/confirm/") || !strings.HasPrefix(second, "/confirm/") || first == second {
		t.Fatalf("links %q then %q; the second mail:\n%s", first, second, m.Body())
	}
	resp, body := c.get(t, first)
	wantRedirect(t, resp, body, "/login")
	resp, body = login(t, e.client(), "twice@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	resp, body = c.get(t, second) // using one ends the others
	wantStatus(t, resp, body, http.StatusGone)
}

// A new confirmation link asked for after the address was registered
// again lets the inbox choose the password too: the stored one may be a
// planter's.
func TestResendAfterRegisteringAgain(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	attacker, owner := e.client(), e.client()
	resp, body := attacker.post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"}})
	wantRedirect(t, resp, body, "/register/sent")
	register(t, owner, "victim@example.com", "Real Owner")
	e.waitMail(t, sink, 2)
	// However long ago: old links are purged in time, which must not matter.
	if _, err := e.db.ExecContext(context.Background(), "DELETE FROM tokens"); err != nil {
		t.Fatal(err)
	}
	resp, body = attacker.post(t, "/confirm/resend", url.Values{"email": {"victim@example.com"}})
	wantRedirect(t, resp, body, "/register/sent")
	m, link := e.waitMail(t, sink, 3)
	if !strings.HasPrefix(link, "/password/reset/") {
		t.Fatalf("the new link %q confirms the stored password:\n%s", link, m.Body())
	}
	resp, body = owner.post(t, link, url.Values{"password": {"the owner's own"}})
	wantRedirect(t, resp, body, "/")
	resp, body = login(t, e.client(), "victim@example.com", "attacker secret 1")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
}

// Registering again once the address has had its mails for the hour
// changes nothing: the owner's latest link keeps working.
func TestRegisterAgainOverTheMailLimit(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	owner := e.client()
	register(t, owner, "ann@example.com", "Ann")
	for i := 2; i <= 5; i++ {
		resp, body := owner.post(t, "/confirm/resend", url.Values{"email": {"ann@example.com"}})
		if resp.StatusCode != http.StatusSeeOther {
			wantStatus(t, resp, body, http.StatusSeeOther)
		}
	}
	_, last := e.waitMail(t, sink, 5)
	register(t, e.client(), "ann@example.com", "Someone") // a sixth mail: it does not go
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != 5 {
		t.Fatalf("%d mails, want 5", n)
	}
	resp, body := owner.get(t, last)
	wantRedirect(t, resp, body, "/login")
}

// The "Check your inbox" pages say which address the link went to, so a
// mistyped address shows, and the resend form has it filled in.
func TestCheckYourInboxNamesTheAddress(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	register(t, c, "typo@exmaple.com", "Typo")
	resp, body := c.get(t, "/register/sent")
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if text := doc.Find("[data-testid=notice] > p").First().Text(); !strings.Contains(text, "typo@exmaple.com") {
		t.Errorf("the page after registering says %q, without the address", text)
	}
	if v := inputValue(t, body, "email"); v != "typo@exmaple.com" {
		t.Errorf("the resend form has %q, want the address registered", v)
	}

	resp, body = c.post(t, "/password/forgot", url.Values{"email": {"Someone@Example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")
	resp, body = c.get(t, "/password/forgot/sent")
	wantStatus(t, resp, body, http.StatusOK)
	if text := parseHTML(t, body).Find("[data-testid=notice] > p").First().Text(); !strings.Contains(text, "someone@example.com") {
		t.Errorf("the page after asking for a reset link says %q, without the address", text)
	}

	// Another browser, which typed nothing, is told nothing of it.
	resp, body = e.client().get(t, "/register/sent")
	wantStatus(t, resp, body, http.StatusOK)
	if strings.Contains(body, "exmaple") {
		t.Error("another browser sees the address")
	}
}

// The notes a browser carries in cookies (a flash, the address a link
// went to) are the site's words only when the site signed them: a cookie
// planted by someone else shows nothing.
func TestNotesAreSigned(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	register(t, c, "ann@example.com", "Ann")
	signedSentTo := c.cookies["rassylka_sent_to"]
	if signedSentTo == "" {
		t.Fatal("registering left no note of the address")
	}

	plain := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	// laterLimit moves a note's time limit (value.limit.signature) on a year.
	laterLimit := func(note string) string {
		parts := strings.Split(note, ".")
		if len(parts) != 3 {
			t.Fatalf("a note of %d parts: %q", len(parts), note)
		}
		exp, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return parts[0] + "." + strconv.FormatInt(exp+365*24*3600, 10) + "." + parts[2]
	}
	for _, tc := range []struct{ name, cookie, value, page, unwanted string }{
		{"forged flash", "rassylka_flash", plain("error\x00Your account is closed: call +1 555 0100"), "/login", "+1 555 0100"},
		{"forged flash with a made-up signature", "rassylka_flash", plain("error\x00Call +1 555 0100") + ".c2lnbmVk", "/login", "+1 555 0100"},
		{"forged address", "rassylka_sent_to", plain("mallory@example.net"), "/register/sent", "mallory@example.net"},
		{"the site's address note under the flash's name", "rassylka_flash", signedSentTo, "/login", "ann@example.com"},
		{"the site's address note with its time limit moved", "rassylka_sent_to", laterLimit(signedSentTo), "/register/sent", "ann@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := e.client()
			other.cookies[tc.cookie] = tc.value
			resp, body := other.get(t, tc.page)
			wantStatus(t, resp, body, http.StatusOK)
			if strings.Contains(body, tc.unwanted) {
				t.Errorf("%s shows the planted %q", tc.page, tc.unwanted)
			}
		})
	}

	// The site's own note still works, in another browser too.
	other := e.client()
	other.cookies["rassylka_sent_to"] = signedSentTo
	resp, body := other.get(t, "/register/sent")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "ann@example.com") {
		t.Error("the site's signed note is not shown")
	}
}

// The owner confirms the address while someone registers it again: the
// confirmed account keeps its password and name (the registration read
// the account as unconfirmed, then dropped them), and the registration
// mails the plain "already registered" word: sign in, or reset.
func TestRegisterAgainWhileTheOwnerConfirms(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	owner := e.client()
	ctx := context.Background()
	register(t, owner, "victim@example.com", "Real Owner")
	_, link := e.waitMail(t, sink, 1)
	// Right after the registration reads the account, the owner's click.
	confirm := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `FROM "users"`) || !strings.Contains(ev.Query, "victim@example.com") {
			return
		}
		e.hook.after.Store(nil)
		resp, body := owner.get(t, link)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the owner's confirmation: %d\n%.300s", resp.StatusCode, body)
		}
	}
	e.hook.after.Store(&confirm)
	t.Cleanup(func() { e.hook.after.Store(nil) })
	resp, body := e.client().post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"}})
	wantRedirect(t, resp, body, "/register/sent")
	if e.hook.after.Load() != nil {
		t.Fatal("the registration never read the account")
	}
	u, err := e.store.UserByEmail(ctx, "victim@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.EmailConfirmedAt == nil || u.PasswordHash == nil || u.FullName != "Real Owner" {
		t.Fatalf("the account confirmed meanwhile: confirmed %v, password %v, name %q", u.EmailConfirmedAt != nil, u.PasswordHash != nil, u.FullName)
	}
	m, second := e.waitMail(t, sink, 2)
	if second != "/login" {
		t.Errorf("the mail after a confirmation meanwhile has the link %q, not the sign-in page:\n%s", second, m.Body())
	}
	resp, body = login(t, e.client(), "victim@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

// The owner confirms with the newer of two links while someone registers
// the address again: neither deadlocks (a confirmation took its link, then
// the older one; the registration took the older, then the newer), each
// waits for the other, and the account stays as its owner confirmed it.
func TestConfirmWithTwoLinksWhileRegisteringAgain(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	owner := e.client()
	ctx := context.Background()
	register(t, owner, "victim@example.com", "Real Owner")
	e.waitMail(t, sink, 1)
	register(t, owner, "victim@example.com", "Real Owner") // the same password: a second link, the first still works
	_, newer := e.waitMail(t, sink, 2)
	registered := make(chan int, 1)
	// Right after the confirmation takes its link, the registration.
	again := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `UPDATE "tokens"`) || !strings.Contains(ev.Query, "used_at IS NULL") {
			return
		}
		e.hook.after.Store(nil)
		go func() {
			resp, _ := e.client().post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"}})
			registered <- resp.StatusCode
		}()
		// The registration has come to the locks the confirmation holds.
		if waiting, err := testkit.AwaitLockWait(e.db, nil); err != nil || !waiting {
			t.Errorf("the registration never waited for the confirmation (%v)", err)
		}
	}
	e.hook.after.Store(&again)
	t.Cleanup(func() { e.hook.after.Store(nil) })
	resp, body := owner.get(t, newer)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the owner's confirmation: %d\n%.500s", resp.StatusCode, body)
	}
	if code := <-registered; code != http.StatusSeeOther {
		t.Fatalf("the registration meanwhile: %d", code)
	}
	u, err := e.store.UserByEmail(ctx, "victim@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.EmailConfirmedAt == nil || u.PasswordHash == nil || u.FullName != "Real Owner" {
		t.Fatalf("the account: confirmed %v, password %v, name %q", u.EmailConfirmedAt != nil, u.PasswordHash != nil, u.FullName)
	}
}
