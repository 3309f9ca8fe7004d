package auth

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/markbates/goth"
	"github.com/markbates/goth/providers/github"
	"github.com/markbates/goth/providers/gitlab"
	"github.com/markbates/goth/providers/google"
	"github.com/markbates/goth/providers/openidConnect"

	"rassylka/app/config"
	"rassylka/app/model"
)

// ProviderInfo is an enabled sign-in provider as the login page lists it.
type ProviderInfo struct {
	Name  string // route name: /auth/<Name>
	Label string
}

var labels = map[string]string{
	"github": "GitHub",
	"google": "Google",
	"gitlab": "GitLab",
	"oidc":   "single sign-on",
}

// label is how a provider is named to people ("GitHub").
func label(provider string) string {
	if l, ok := labels[provider]; ok {
		return l
	}
	return provider
}

// Providers holds the OAuth providers enabled by configuration. goth's
// providers are used directly (no gothic, no global registry); the OAuth
// state lives in our own Redis session.
type Providers struct {
	mu      sync.Mutex
	order   []ProviderInfo
	built   map[string]goth.Provider
	pending map[string]func() (goth.Provider, error)
	log     *slog.Logger
}

// NewProviders prepares every provider of cfg.OAuth with its callback at
// baseURL/auth/<name>/callback. An OpenID Connect provider reads its
// discovery document on first use, so a provider that is down does not stop
// the web process from starting.
func NewProviders(cfg config.Config, log *slog.Logger) *Providers {
	p := &Providers{built: map[string]goth.Provider{}, pending: map[string]func() (goth.Provider, error){}, log: log}
	for _, o := range cfg.OAuth {
		callback := cfg.BaseURL + "/auth/" + o.Name + "/callback"
		var build func() (goth.Provider, error)
		switch o.Name {
		case "github":
			build = func() (goth.Provider, error) {
				return github.New(o.Key, o.Secret, callback, "read:user", "user:email"), nil
			}
		case "google":
			build = func() (goth.Provider, error) { return google.New(o.Key, o.Secret, callback, "email", "profile"), nil }
		case "gitlab":
			build = func() (goth.Provider, error) {
				// goth's default profile URL is GitLab's API v3, removed in 2018.
				return gitlab.NewCustomisedURL(o.Key, o.Secret, callback, gitlab.AuthURL, gitlab.TokenURL, gitlabProfileURL, "read_user"), nil
			}
		case "oidc":
			build = func() (goth.Provider, error) {
				return openidConnect.New(o.Key, o.Secret, callback, o.Issuer+"/.well-known/openid-configuration", "openid", "email", "profile")
			}
		default:
			continue
		}
		p.Add(o.Name, build)
	}
	return p
}

// Add enables a provider under name, built on first use (tests add ones
// pointing at a fake server).
func (p *Providers) Add(name string, build func() (goth.Provider, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.order = append(p.order, ProviderInfo{Name: name, Label: label(name)})
	p.pending[name] = build
}

// Enabled lists the enabled providers in configuration order.
func (p *Providers) Enabled() []ProviderInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProviderInfo(nil), p.order...)
}

// ErrUnknownProvider is returned by Get for a provider that is not enabled.
var ErrUnknownProvider = fmt.Errorf("unknown sign-in provider")

// Get returns the enabled provider called name, building it if needed.
func (p *Providers) Get(name string) (goth.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gp, ok := p.built[name]; ok {
		return gp, nil
	}
	for _, info := range p.order {
		if info.Name != name {
			continue
		}
		// info.Name is our own string; name may live in a request buffer
		// that is reused once the request is over.
		gp, err := p.pending[info.Name]()
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", info.Name, err)
		}
		gp.SetName(info.Name)
		p.built[info.Name] = gp
		return gp, nil
	}
	return nil, ErrUnknownProvider
}

// gitlabProfileURL is GitLab's current user in its API v4.
const gitlabProfileURL = "https://gitlab.com/api/v4/user"

// VerifiedEmail returns the provider's email for the user when the provider
// vouches that the user owns it. GitHub only exposes verified addresses
// (goth's GitHub provider picks the verified primary one); GitLab says when
// the user confirmed it (confirmed_at); Google and OpenID Connect say so in
// a claim. The address is canonical (model.CanonicalEmail).
func VerifiedEmail(provider string, gu goth.User) (string, bool) {
	addr, ok := verifiedEmail(provider, gu)
	return model.CanonicalEmail(addr), ok
}

func verifiedEmail(provider string, u goth.User) (string, bool) {
	if u.Email == "" {
		return "", false
	}
	switch provider {
	case "github":
		return u.Email, true
	case "gitlab":
		confirmed, _ := u.RawData["confirmed_at"].(string)
		return u.Email, confirmed != ""
	}
	for _, claim := range []string{"email_verified", "verified_email"} {
		switch v := u.RawData[claim].(type) {
		case bool:
			if v {
				return u.Email, true
			}
		case string:
			if v == "true" {
				return u.Email, true
			}
		}
	}
	return u.Email, false
}
