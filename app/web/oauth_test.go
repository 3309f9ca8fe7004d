package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/markbates/goth"
	"github.com/markbates/goth/providers/github"

	"rassylka/app/auth"
	"rassylka/app/config"
	"rassylka/app/model"
	"rassylka/app/testkit"
)

// fakeOIDC is an OpenID Connect provider: discovery, authorize (the test
// plays the user's consent), token and userinfo endpoints.
type fakeOIDC struct {
	srv *httptest.Server

	mu       sync.Mutex
	codes    map[string]oidcUser // code -> who consented
	exchange int
}

type oidcUser struct {
	Sub, Email, Name string
	Verified         bool
	BadExp           bool // the id_token's exp is no number
}

const oidcClientID, oidcSecret = "rassylka-client", "rassylka-secret"

func newFakeOIDC(t testing.TB) *fakeOIDC {
	t.Helper()
	f := &fakeOIDC{codes: map[string]oidcUser{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                 f.srv.URL,
			"authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint":         f.srv.URL + "/token",
			"userinfo_endpoint":      f.srv.URL + "/userinfo",
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if id == "" {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		f.mu.Lock()
		u, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		f.exchange++
		f.mu.Unlock()
		if !ok || id != oidcClientID || secret != oidcSecret {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]string{"error": "invalid_grant"})
			return
		}
		claims := map[string]any{"iss": f.srv.URL, "aud": oidcClientID, "sub": u.Sub, "exp": time.Now().Add(time.Hour).Unix(),
			"email": u.Email, "email_verified": u.Verified, "name": u.Name}
		if u.BadExp {
			claims["exp"] = "soon"
		}
		writeJSON(w, map[string]any{"access_token": "at-" + u.Sub, "token_type": "Bearer", "expires_in": 3600, "id_token": jwt(claims)})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		sub := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer at-")
		writeJSON(w, map[string]any{"sub": sub})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + ".sig"
}

// consent plays the user at the provider: it checks the authorization
// request and returns the callback path the provider redirects to.
func (f *fakeOIDC) consent(t testing.TB, authURL string, u oidcUser) string {
	t.Helper()
	au, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, f.srv.URL+"/authorize") {
		t.Fatalf("sent to %q, not the provider", authURL)
	}
	q := au.Query()
	if q.Get("client_id") != oidcClientID || q.Get("state") == "" || q.Get("redirect_uri") != testBaseURL+"/auth/oidc/callback" {
		t.Fatalf("authorization request %v", q)
	}
	code := "code-" + u.Sub + "-" + q.Get("state")[:8]
	f.mu.Lock()
	f.codes[code] = u
	f.mu.Unlock()
	return "/auth/oidc/callback?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(q.Get("state"))
}

func oidcEnv(t testing.TB) (*env, *fakeOIDC) {
	t.Helper()
	f := newFakeOIDC(t)
	cfg := testConfig(t)
	cfg.OAuth = append(cfg.OAuth, config.OAuthProvider{Name: "oidc", Key: oidcClientID, Secret: oidcSecret, Issuer: f.srv.URL})
	return newEnvWith(t, cfg, testkit.Redis(t), auth.NewProviders(cfg, nil)), f
}

// A provider that does not answer (its discovery document asked for, the
// connection open, no answer) holds up its own sign-ins only: the sign-in
// page and a password's sign-in go on meanwhile (they waited for it, as
// long as the connection stayed open). Its sign-in then says it cannot
// be reached, and for a while says so at once, without asking it again.
func TestOAuthProviderNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	asked, release := make(chan struct{}, 10), make(chan struct{})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			asked <- struct{}{}
			go func() { <-release; conn.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	cfg := testConfig(t)
	providers := auth.NewProviders(cfg, nil)
	providers.Add("oidc", func() (goth.Provider, error) {
		return auth.OpenIDConnect(&http.Client{Timeout: time.Minute}, oidcClientID, oidcSecret, cfg.BaseURL+"/auth/oidc/callback", "http://"+ln.Addr().String())
	})
	e := newEnvWith(t, cfg, testkit.Redis(t), providers)
	newUser(t, e, "pat@example.com", model.RoleUser)

	type answer struct {
		resp *http.Response
		body string
	}
	began := make(chan answer, 1)
	go func() {
		resp, body := e.client().get(t, "/auth/oidc")
		began <- answer{resp, body}
	}()
	<-asked // the provider is being asked, and keeps its answer
	signedIn := make(chan struct{})
	go func() {
		defer close(signedIn)
		c := e.client()
		if d := c.page(t, "/login"); d.Find(`a[href="/auth/oidc"]`).Length() != 1 {
			t.Error("the sign-in page does not offer the provider")
		}
		resp, body := c.post(t, "/login", url.Values{"email": {"pat@example.com"}, "password": {goodPassword}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a password's sign-in: %d\n%s", resp.StatusCode, body)
		}
	}()
	select {
	case <-signedIn:
	case <-time.After(time.Minute): // rather than wait forever
		t.Error("the sign-in page and a password's sign-in wait for a provider that does not answer")
	}
	select {
	case <-began:
		t.Fatal("the provider's sign-in ended before it answered")
	default:
	}
	close(release)
	<-signedIn
	a := <-began
	wantStatus(t, a.resp, a.body, http.StatusServiceUnavailable)
	if !strings.Contains(a.body, "The sign-in provider cannot be reached right now") {
		t.Errorf("a sign-in whose provider does not answer says:\n%s", parseHTML(t, a.body).Find("main").Text())
	}
	resp, body := e.client().get(t, "/auth/oidc")
	wantStatus(t, resp, body, http.StatusServiceUnavailable)
	if n := accepted.Load(); n != 1 {
		t.Errorf("the provider was asked %d times, want once", n)
	}
}

// oauthSignIn runs the whole round trip and returns the final answer.
func oauthSignIn(t testing.TB, c *client, f *fakeOIDC, next string, u oidcUser) (*http.Response, string) {
	t.Helper()
	path := "/auth/oidc"
	if next != "" {
		path += "?next=" + url.QueryEscape(next)
	}
	resp, body := c.get(t, path)
	wantStatus(t, resp, body, http.StatusSeeOther)
	return c.get(t, f.consent(t, resp.Header.Get("Location"), u))
}

func TestOAuthSignIn(t *testing.T) {
	e, f := oidcEnv(t)
	ctx := context.Background()

	_, body := e.client().get(t, "/login")
	if !strings.Contains(parseHTML(t, body).Find("[data-testid=oauth-providers]").Text(), "single sign-on") {
		t.Fatalf("login page has no button for the enabled provider:\n%s", body)
	}

	// First sign-in with a verified email creates a confirmed account.
	c := e.client()
	resp, body := oauthSignIn(t, c, f, "/account", oidcUser{Sub: "u1", Email: "Olga@Example.com", Name: "Olga", Verified: true})
	wantRedirect(t, resp, body, "/account")
	u, err := e.store.UserByEmail(ctx, "olga@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.EmailConfirmedAt == nil || u.PasswordHash != nil || u.FullName != "Olga" {
		t.Fatalf("created %+v", u)
	}
	resp, body = c.get(t, "/account")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "oidc") {
		t.Error("the linked identity is not listed on the account page")
	}

	// Later sign-ins find the identity, even when the email changed there.
	c2 := e.client()
	resp, body = oauthSignIn(t, c2, f, "", oidcUser{Sub: "u1", Email: "olga.new@example.com", Name: "Olga", Verified: true})
	wantRedirect(t, resp, body, "/")
	if _, err := e.store.UserByEmail(ctx, "olga.new@example.com"); err == nil {
		t.Fatal("a second account was created for a known identity")
	}

	// A verified email of a confirmed password account does not join it:
	// its password may be a planter's (see TestOAuthPlantedConfirmed).
	// Its owner signs in with the password and links from there.
	existing := newUser(t, e, "pat@example.com", model.RoleUser)
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "u2", Email: "pat@example.com", Verified: true})
	wantStatus(t, resp, body, http.StatusConflict)
	if !strings.Contains(body, "Sign in with your password first") {
		t.Errorf("the refusal does not say what to do:\n%s", body)
	}
	if ids, _ := e.store.IdentitiesOfUser(ctx, existing.ID); len(ids) != 0 {
		t.Fatalf("a provider's sign-in joined a password account: %+v", ids)
	}
	pc := e.client()
	resp, body = login(t, pc, "pat@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = oauthSignIn(t, pc, f, "/account", oidcUser{Sub: "u2", Email: "pat@example.com", Verified: true})
	wantRedirect(t, resp, body, "/account")
	ids, _ := e.store.IdentitiesOfUser(ctx, existing.ID)
	if len(ids) != 1 || ids[0].Provider != "oidc" || ids[0].ProviderUserID != "u2" {
		t.Fatalf("identities of the existing account: %+v", ids)
	}

	// An unverified email neither links nor creates.
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "u3", Email: "pat@example.com", Verified: false})
	wantStatus(t, resp, body, http.StatusForbidden)
	if ids, _ := e.store.IdentitiesOfUser(ctx, existing.ID); len(ids) != 1 {
		t.Fatal("an unverified email was linked")
	}

	// A blocked user cannot get in this way either.
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = now() WHERE id = ?", existing.ID); err != nil {
		t.Fatal(err)
	}
	bc := e.client()
	resp, body = oauthSignIn(t, bc, f, "", oidcUser{Sub: "u2", Email: "pat@example.com", Verified: true})
	wantStatus(t, resp, body, http.StatusForbidden)
	if resp, _ := bc.get(t, "/account"); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("blocked user signed in through OAuth")
	}
}

func TestOAuthStateMismatchRefused(t *testing.T) {
	e, f := oidcEnv(t)
	victim := e.client()
	resp, body := victim.get(t, "/auth/oidc")
	wantStatus(t, resp, body, http.StatusSeeOther)

	// An attacker's own callback (their code, their state) replayed into
	// the victim's browser.
	attacker := e.client()
	resp, _ = attacker.get(t, "/auth/oidc")
	cb := f.consent(t, resp.Header.Get("Location"), oidcUser{Sub: "evil", Email: "evil@example.com", Verified: true})
	resp, body = victim.get(t, cb)
	wantStatus(t, resp, body, http.StatusForbidden)
	if !strings.Contains(body, "could not be verified") {
		t.Errorf("refusal not explained:\n%s", body)
	}
	// A callback with no stored state at all.
	resp, body = e.client().get(t, cb)
	wantStatus(t, resp, body, http.StatusForbidden)
	if resp, _ := victim.get(t, "/account"); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("signed in despite the state mismatch")
	}
	if _, err := e.store.UserByEmail(context.Background(), "evil@example.com"); err == nil {
		t.Fatal("an account was created despite the state mismatch")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchange != 0 {
		t.Fatalf("the code was exchanged %d times before the state was checked", f.exchange)
	}
}

func TestOAuthUnknownProvider(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/auth/facebook", "/auth/oidc", "/auth/github/callback?code=x&state=y"} {
		resp, body := e.client().get(t, path)
		wantStatus(t, resp, body, http.StatusNotFound)
	}
}

// TestOAuthPlantedAccount: a password account planted with someone's
// address, never confirmed, loses its password when the address's owner
// signs in through a provider that verified it.
func TestOAuthPlantedAccount(t *testing.T) {
	e, f := oidcEnv(t)
	attacker := e.client()
	resp, body := attacker.post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"},
		"time_zone": {"Asia/Tokyo"}})
	wantRedirect(t, resp, body, "/register/sent")

	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "v1", Email: "victim@example.com", Name: "Vic Tim", Verified: true})
	wantRedirect(t, resp, body, "/")
	u, err := e.store.UserByEmail(context.Background(), "victim@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash != nil || u.EmailConfirmedAt == nil {
		t.Fatalf("planted account after the owner's OAuth sign-in: password kept %v, confirmed %v", u.PasswordHash != nil, u.EmailConfirmedAt != nil)
	}
	// Nor does the planter's profile stay: the account is the provider's.
	if u.FullName != "Vic Tim" || u.TimeZone != "UTC" {
		t.Errorf("planted account after the owner's OAuth sign-in: name %q, time zone %q", u.FullName, u.TimeZone)
	}
	// The planter's password no longer opens the account.
	resp, body = login(t, e.client(), "victim@example.com", "attacker secret 1")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
}

// TestOAuthPlantedConfirmed: an account registered with someone's
// address is confirmed by anything that opens the mailed link (a mail
// scanner does). The address's owner signing in through a provider is not
// joined to it, so the registrant's password never opens what the owner
// keeps there.
func TestOAuthPlantedConfirmed(t *testing.T) {
	e, f := oidcEnv(t)
	ctx := context.Background()
	// Registered by the attacker with their password, and confirmed by
	// the victim's mail scanner.
	newUser(t, e, "victim@example.com", model.RoleUser)

	victim := e.client()
	resp, body := oauthSignIn(t, victim, f, "", oidcUser{Sub: "v1", Email: "victim@example.com", Verified: true})
	wantStatus(t, resp, body, http.StatusConflict)
	if resp, _ := victim.get(t, "/account"); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("the address's owner was signed in to the planted account")
	}
	u, _ := e.store.UserByEmail(ctx, "victim@example.com")
	if ids, _ := e.store.IdentitiesOfUser(ctx, u.ID); len(ids) != 0 {
		t.Fatalf("the owner's provider account was linked to the planted account: %+v", ids)
	}
}

// A provider's malformed answer is a failed sign-in, not a crash of the
// request (goth's claim checks panic on an exp that is no number).
func TestOAuthMalformedAnswer(t *testing.T) {
	e, f := oidcEnv(t)
	resp, body := oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "m1", Email: "m@example.com", Verified: true, BadExp: true})
	wantStatus(t, resp, body, http.StatusBadGateway)
	if !strings.Contains(body, "Sign-in failed") {
		t.Errorf("a malformed answer of the provider shows:\n%s", body)
	}
	if _, err := e.store.UserByEmail(context.Background(), "m@example.com"); err == nil {
		t.Error("an account was made from a malformed answer")
	}
}

// Every sign-in started with a provider keeps its state in a session of
// its own: a network starting them by the thousand is stopped, and told.
func TestOAuthStartsLimited(t *testing.T) {
	e, _ := oidcEnv(t)
	c := e.client()
	for i := range 60 {
		if resp, body := c.get(t, "/auth/oidc"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("start %d: %d\n%s", i+1, resp.StatusCode, body)
		}
	}
	keys := func() int64 { n, _ := e.redis.DBSize(context.Background()).Result(); return n }
	before := keys()
	resp, body := e.client().get(t, "/auth/oidc")
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if !strings.Contains(body, "Too many sign-ins") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the 61st start: Retry-After %q\n%s", resp.Header.Get("Retry-After"), body)
	}
	if after := keys(); after > before {
		t.Errorf("a refused start stored %d keys", after-before)
	}
}

func TestOAuthNextStaysOnSite(t *testing.T) {
	e, f := oidcEnv(t)
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example"} {
		resp, body := oauthSignIn(t, e.client(), f, next, oidcUser{Sub: "n1", Email: "n1@example.com", Verified: true})
		wantRedirect(t, resp, body, "/")
	}
	resp, body := oauthSignIn(t, e.client(), f, "/account", oidcUser{Sub: "n1", Email: "n1@example.com", Verified: true})
	wantRedirect(t, resp, body, "/account")
}

// fakeGitHub answers GitHub's token, user and user/emails endpoints for one
// user whose only address is primary but not verified.
func fakeGitHub(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"access_token": "gh-token", "token_type": "bearer"})
	})
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"id": 4242, "login": "octo", "name": "Octo Cat", "email": nil})
	})
	mux.HandleFunc("GET /user/emails", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []map[string]any{{"email": "octo@example.com", "primary": true, "verified": false}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestOAuthGitHubWithoutVerifiedEmail: goth's GitHub provider fails to
// fetch a user whose primary address is unverified. That is no outage: a
// new user is told the provider gave no verified address (not to "try
// again in a moment"), and a user whose GitHub account is already linked
// still signs in (the identity, not the address, finds the account).
func TestOAuthGitHubWithoutVerifiedEmail(t *testing.T) {
	gh := fakeGitHub(t)
	cfg := testConfig(t)
	providers := auth.NewProviders(cfg, nil)
	providers.Add("github", func() (goth.Provider, error) {
		return github.NewCustomisedURL("gh-key", "gh-secret", cfg.BaseURL+"/auth/github/callback",
			gh.URL+"/login/oauth/authorize", gh.URL+"/login/oauth/access_token", gh.URL+"/user", gh.URL+"/user/emails",
			"read:user", "user:email"), nil
	})
	e := newEnvWith(t, cfg, testkit.Redis(t), providers)
	roundTrip := func(c *client) (*http.Response, string) {
		t.Helper()
		resp, body := c.get(t, "/auth/github")
		wantStatus(t, resp, body, http.StatusSeeOther)
		au, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return c.get(t, "/auth/github/callback?code=c1&state="+url.QueryEscape(au.Query().Get("state")))
	}

	resp, body := roundTrip(e.client())
	wantStatus(t, resp, body, http.StatusForbidden)
	if !strings.Contains(body, "No verified email address") {
		t.Errorf("a GitHub user without a verified address is not told so:\n%s", parseHTML(t, body).Find("[data-testid=notice]").Text())
	}

	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	if err := e.store.CreateIdentity(context.Background(), &model.Identity{UserID: ann.ID, Provider: "github", ProviderUserID: "4242", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	resp, body = roundTrip(c)
	wantRedirect(t, resp, body, "/")
	if resp, _ := c.get(t, "/account"); resp.StatusCode != http.StatusOK {
		t.Fatal("the linked GitHub user is not signed in")
	}
}

// TestOAuthWhileSignedIn: a signed-in user who goes through a provider
// links that identity to their own account (the account page sends them to
// the providers to link one). It must neither create a second account
// and switch the session to it, nor switch the session to whichever other
// account already holds the identity.
func TestOAuthWhileSignedIn(t *testing.T) {
	e, f := oidcEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	c := e.client()
	resp, body := login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	_, body = c.get(t, "/account")
	if href, _ := parseHTML(t, body).Find("[data-testid=link-providers] a").Attr("href"); href != "/auth/oidc?next=%2Faccount" {
		t.Errorf("the account page offers no way to link the enabled provider (signed in, /login only redirects): %q", href)
	}

	// A provider account with another (verified) address links to Ann.
	resp, body = oauthSignIn(t, c, f, "", oidcUser{Sub: "ann-sso", Email: "ann.work@example.com", Name: "Ann", Verified: true})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("link: %d\n%s", resp.StatusCode, body)
	}
	_, body = c.get(t, "/account")
	if got := parseHTML(t, body).Find("[data-testid=account-email]").Text(); got != "ann@example.com" {
		t.Fatalf("after going through the provider the session is %q's, not Ann's", got)
	}
	if _, err := e.store.UserByEmail(ctx, "ann.work@example.com"); err == nil {
		t.Error("a second account was created for a signed-in user")
	}
	if ids, _ := e.store.IdentitiesOfUser(ctx, ann.ID); len(ids) != 1 || ids[0].ProviderUserID != "ann-sso" {
		t.Errorf("identities of Ann: %+v", ids)
	}

	// An identity that is Bob's is refused; Ann stays Ann.
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "bob-sso", Email: "bob@example.com", Verified: true})
	wantRedirect(t, resp, body, "/")
	resp, body = oauthSignIn(t, c, f, "", oidcUser{Sub: "bob-sso", Email: "bob@example.com", Verified: true})
	wantStatus(t, resp, body, http.StatusConflict)
	_, body = c.get(t, "/account")
	if got := parseHTML(t, body).Find("[data-testid=account-email]").Text(); got != "ann@example.com" {
		t.Fatalf("an identity linked to another account switched the session to %q", got)
	}
}

// A visitor's session that holds only an OAuth round trip is kept as long
// as the round trip may take, not a signed-in session's week, and a
// callback without a round trip keeps none: both are answered to anyone,
// so each request stored a session in Redis for a week.
func TestOAuthRoundTripSessionsShortLived(t *testing.T) {
	e, f := oidcEnv(t)
	ctx := context.Background()
	sessions := func() int {
		t.Helper()
		keys, err := e.redis.Keys(ctx, "session:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}

	for _, path := range []string{"/auth/oidc/callback?code=x&state=y", "/auth/oidc/callback"} {
		c := e.client()
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, http.StatusForbidden)
		if n := sessions(); n != 0 || c.cookies[auth.CookieName] != "" {
			t.Fatalf("GET %s with no round trip stored %d sessions (cookie %q)", path, n, c.cookies[auth.CookieName])
		}
	}

	c := e.client()
	resp, body := c.get(t, "/auth/oidc")
	wantStatus(t, resp, body, http.StatusSeeOther)
	ttl, err := e.redis.TTL(ctx, "session:"+c.cookies[auth.CookieName]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Hour {
		t.Fatalf("a visitor's round-trip session lives %v, want at most an hour", ttl)
	}

	// The round trip still signs in, into a session of the usual lifetime.
	resp, body = c.get(t, f.consent(t, resp.Header.Get("Location"), oidcUser{Sub: "s-1", Email: "short@example.com", Verified: true}))
	wantRedirect(t, resp, body, "/")
	ttl, err = e.redis.TTL(ctx, "session:"+c.cookies[auth.CookieName]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < auth.IdleTimeout-time.Hour {
		t.Fatalf("the signed-in session lives %v, want %v", ttl, auth.IdleTimeout)
	}
}

// A provider's account that gives the address of an account signs in to
// it, and is linked to it: the address's owner is told of every such new
// way in, and of one linked from the account page. An account a
// provider's sign-in creates gets no such mail.
func TestOAuthNewWayInIsMailed(t *testing.T) {
	e, f := oidcEnv(t)
	sink := e.withWorker(t)

	resp, body := oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "o1", Email: "olga@example.com", Name: "Olga", Verified: true})
	wantRedirect(t, resp, body, "/")
	pat := newUser(t, e, "pat@example.com", model.RoleUser)
	pc := e.client()
	resp, body = login(t, pc, "pat@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = oauthSignIn(t, pc, f, "/account", oidcUser{Sub: "p1", Email: "pat.work@example.com", Verified: true})
	wantRedirect(t, resp, body, "/account")
	m, _ := e.waitMail(t, sink, 1)
	if m.To[0] != pat.Email || m.Header().Get("Subject") != "A new way to sign in to Rassylka" ||
		!strings.Contains(m.Body(), "with single sign-on\r\n(pat.work@example.com)") || !strings.Contains(m.Body(), testBaseURL+"/account") {
		t.Fatalf("the mail about a linked provider, to %v:\n%s", m.To, m.Body())
	}

	// Another account at the provider with Olga's address gets in: Olga
	// is told.
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "o2", Email: "OLGA@example.com", Verified: true})
	wantRedirect(t, resp, body, "/")
	m, _ = e.waitMail(t, sink, 2)
	if m.To[0] != "olga@example.com" || !strings.HasPrefix(m.Body(), "Hello Olga,") || !strings.Contains(m.Body(), "(olga@example.com)") {
		t.Fatalf("the mail about a second provider account, to %v:\n%s", m.To, m.Body())
	}
	// Signing in again with either is no news.
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "o2", Email: "olga@example.com", Verified: true})
	wantRedirect(t, resp, body, "/")
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "o1", Email: "olga@example.com", Verified: true})
	wantRedirect(t, resp, body, "/")
	time.Sleep(500 * time.Millisecond)
	if got := sink.Messages(); len(got) != 2 {
		t.Fatalf("%d mails, want 2", len(got))
	}
}

// The registrant's link confirms the address while its owner signs in
// through a provider: the sign-in read the account as unconfirmed, then
// reset it for the provider's user. It is now as if the account had been
// confirmed before: a confirmed account with a password is not joined.
func TestOAuthWhileTheAddressIsConfirmed(t *testing.T) {
	e, f := oidcEnv(t)
	ctx := context.Background()
	resp, body := e.client().post(t, "/register", url.Values{"email": {"victim@example.com"}, "full_name": {"Planted"}, "password": {"attacker secret 1"}})
	wantRedirect(t, resp, body, "/register/sent")
	confirm := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `FROM "users"`) || !strings.Contains(ev.Query, "victim@example.com") {
			return
		}
		e.hook.after.Store(nil)
		if _, err := e.db.ExecContext(ctx, "UPDATE users SET email_confirmed_at = now() WHERE email = 'victim@example.com'"); err != nil {
			t.Error(err)
		}
	}
	e.hook.after.Store(&confirm)
	t.Cleanup(func() { e.hook.after.Store(nil) })
	resp, body = oauthSignIn(t, e.client(), f, "", oidcUser{Sub: "v1", Email: "victim@example.com", Name: "Vic Tim", Verified: true})
	wantStatus(t, resp, body, http.StatusConflict)
	if e.hook.after.Load() != nil {
		t.Fatal("the sign-in never read the account")
	}
	u, err := e.store.UserByEmail(ctx, "victim@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash == nil || u.FullName != "Planted" {
		t.Errorf("the account confirmed meanwhile was reset for the provider's user: password %v, name %q", u.PasswordHash != nil, u.FullName)
	}
	if ids, _ := e.store.IdentitiesOfUser(ctx, u.ID); len(ids) != 0 {
		t.Errorf("the provider's account was linked: %+v", ids)
	}
}
