package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"

	"github.com/gofiber/fiber/v2"
	"github.com/markbates/goth"
	"github.com/markbates/goth/providers/github"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/views/account"
	"rassylka/views/layout"
)

// Session keys of an OAuth round trip.
const (
	oauthState    = "oauth_state"
	oauthProvider = "oauth_provider"
	oauthSession  = "oauth_session"
	oauthNext     = "oauth_next"
)

// oauthBegin sends the browser to the provider with a fresh state kept in
// our session.
func (s *Server) oauthBegin(c *fiber.Ctx) error {
	name := c.Params("provider")
	gp, err := s.providers.Get(name)
	if errors.Is(err, auth.ErrUnknownProvider) {
		return fiber.ErrNotFound
	}
	if err != nil {
		s.log.ErrorContext(c.UserContext(), "oauth provider unavailable", "provider", name, "error", err.Error(), "request_id", RequestID(c))
		return s.providerDown(c)
	}
	// Each round trip keeps its state in a session: a visitor starting
	// them by the thousand would fill Redis.
	wait, err := take(c, s.oauthLimit, s.clientKey(c))
	if err != nil {
		return err
	}
	if wait > 0 {
		return s.oauthRefused(c, fiber.StatusTooManyRequests, "Too many sign-ins",
			fmt.Sprintf("Too many sign-ins were started from your network in the last hour. Please try again in %s.", minutes(wait)))
	}
	state := auth.RandomString(32)
	gs, err := gp.BeginAuth(state)
	if err != nil {
		return fmt.Errorf("oauth begin %s: %w", name, err)
	}
	authURL, err := gs.GetAuthURL()
	if err != nil {
		return fmt.Errorf("oauth begin %s: %w", name, err)
	}
	if err := s.sessions.SetValues(c, map[string]string{
		oauthState: state, oauthProvider: gp.Name(), oauthSession: gs.Marshal(),
		oauthNext: auth.SafeNext(c.Query("next")),
	}); err != nil {
		return err
	}
	return c.Redirect(authURL, fiber.StatusSeeOther)
}

// oauthCallback checks the state, trades the code for the provider's user,
// and signs the matching account in.
func (s *Server) oauthCallback(c *fiber.Ctx) error {
	name := c.Params("provider")
	gp, err := s.providers.Get(name)
	if errors.Is(err, auth.ErrUnknownProvider) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return s.providerDown(c)
	}
	state, _ := s.sessions.Value(c, oauthState)
	provider, _ := s.sessions.Value(c, oauthProvider)
	stored, _ := s.sessions.Value(c, oauthSession)
	next, _ := s.sessions.Value(c, oauthNext)
	// The round trip is over whatever happens next.
	if err := s.sessions.SetValues(c, map[string]string{oauthState: "", oauthProvider: "", oauthSession: "", oauthNext: ""}); err != nil {
		return err
	}
	got := c.Query("state")
	if state == "" || provider != gp.Name() || subtle.ConstantTimeCompare([]byte(got), []byte(state)) != 1 {
		return s.oauthRefused(c, fiber.StatusForbidden, "Sign-in could not be verified",
			"The answer from the sign-in provider did not match the request we sent. Please start again from the sign-in page.")
	}
	if c.Query("error") != "" {
		return s.oauthRefused(c, fiber.StatusUnauthorized, "Sign-in was cancelled",
			"The sign-in provider did not let you in. You can try again or sign in with your password.")
	}
	gs, err := gp.UnmarshalSession(stored)
	if err != nil {
		return fmt.Errorf("oauth session: %w", err)
	}
	// Only the code goes on: goth would also honour a redirect_uri or
	// code_verifier smuggled into the callback's query.
	if _, err := gs.Authorize(gp, url.Values{"code": {c.Query("code")}}); err != nil {
		s.log.WarnContext(c.UserContext(), "oauth authorize failed", "provider", name, "error", err.Error(), "request_id", RequestID(c))
		return s.oauthRefused(c, fiber.StatusBadGateway, "Sign-in failed",
			"We could not complete the sign-in with the provider. Please try again in a moment.")
	}
	gu, err := fetchUser(gp, gs)
	if errors.Is(err, github.ErrNoVerifiedGitHubPrimaryEmail) && gu.UserID != "" {
		// Not an outage: the user is known, only without a verified
		// address. A linked identity still signs in; otherwise
		// OAuthSignIn answers ErrNoVerifiedEmail.
		gu.Email, err = "", nil
	}
	if err != nil {
		s.log.WarnContext(c.UserContext(), "oauth fetch user failed", "provider", name, "error", err.Error(), "request_id", RequestID(c))
		return s.oauthRefused(c, fiber.StatusBadGateway, "Sign-in failed",
			"The sign-in provider did not tell us who you are. Please try again in a moment.")
	}
	if cur := auth.CurrentUser(c); cur != nil {
		return s.oauthLink(c, cur, gp.Name(), gu, next)
	}
	u, err := s.accounts.OAuthSignIn(c.UserContext(), gp.Name(), gu)
	switch {
	case errors.Is(err, auth.ErrNoVerifiedEmail):
		return s.oauthRefused(c, fiber.StatusForbidden, "No verified email address",
			"The sign-in provider did not give us a verified email address, so we cannot match or create your account. Verify your address with the provider, or register with your email.")
	case errors.Is(err, auth.ErrPasswordAccount):
		return s.oauthRefused(c, fiber.StatusConflict, "Sign in with your password first",
			"An account with this address already exists and signs in with a password. Sign in with it, then link this provider from your account page. Forgot the password? Reset it from the sign-in page: the link goes to this address.")
	case errors.Is(err, auth.ErrBlocked):
		return s.oauthRefused(c, fiber.StatusForbidden, "Your account is blocked",
			"You cannot sign in while a manager keeps your account blocked.")
	case errors.Is(err, auth.ErrAddressKept):
		return s.oauthRefused(c, fiber.StatusConflict, "This address's account moved",
			"The account that signed in with this address moved to another one within the last week. If it is yours, the mail sent to this address after the move has a link that moves it back; no other account takes this address until the week is over.")
	case err != nil:
		return err
	}
	s.stats.SiteChanged(c.UserContext()) // the account may be new
	if err := s.sessions.SignIn(c, u); err != nil {
		return err
	}
	s.forgetSentTo(c)
	return c.Redirect(auth.SafeNext(next), fiber.StatusSeeOther)
}

// fetchUser is gp.FetchUser, with a malformed answer of the provider's an
// error like any other: goth's checks of an id_token panic on some (an
// "exp" that is no number).
func fetchUser(gp goth.Provider, gs goth.Session) (gu goth.User, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the provider's answer could not be read: %v", r)
		}
	}()
	return gp.FetchUser(gs)
}

// oauthLink links the provider's account to the signed-in user, who stays
// signed in as themself.
func (s *Server) oauthLink(c *fiber.Ctx, u *model.User, provider string, gu goth.User, next string) error {
	err := s.accounts.OAuthLink(c.UserContext(), u, provider, gu)
	switch {
	case errors.Is(err, auth.ErrIdentityTaken):
		return s.oauthRefused(c, fiber.StatusConflict, "Linked to another account",
			"This account of the sign-in provider is already linked to another Rassylka account. Sign in to that one and unlink it there first.")
	case errors.Is(err, auth.ErrNoVerifiedEmail):
		return s.oauthRefused(c, fiber.StatusForbidden, "No verified email address",
			"The sign-in provider did not give us a verified email address, so we cannot link it. Verify your address with the provider and try again.")
	case err != nil:
		return err
	}
	s.setFlash(c, layout.FlashSuccess, "The account is linked: you can sign in with it too.")
	if next = auth.SafeNext(next); next == "/" {
		next = "/account"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// providerDown answers a sign-in whose provider cannot be reached.
func (s *Server) providerDown(c *fiber.Ctx) error {
	return s.oauthRefused(c, fiber.StatusServiceUnavailable, "Sign-in provider unavailable",
		"The sign-in provider cannot be reached right now. Please try again in a minute, or sign in with your password.")
}

func (s *Server) oauthRefused(c *fiber.Ctx, status int, title, text string) error {
	n := account.Notice{Title: title, Text: text, LinkHref: "/login", LinkLabel: "Back to sign in"}
	return render(c, status, account.NoticePage(s.page(c, title), n))
}
