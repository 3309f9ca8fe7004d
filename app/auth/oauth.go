package auth

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

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
	failed  map[string]failedBuild
	log     *slog.Logger
}

// failedBuild is a provider's last build, which failed: it is tried again
// from retryBuild after.
type failedBuild struct {
	at  time.Time
	err error
}

// retryBuild is how long a provider that could not be built (its discovery
// document not read) is answered with that failure before it is tried again.
const retryBuild = 30 * time.Second

// ProviderTimeout bounds each request to a sign-in provider (its discovery
// document, the code's exchange, the user's profile): one that does not
// answer fails its own sign-ins, rather than leave them waiting forever.
const ProviderTimeout = 10 * time.Second

// NewProviders prepares every provider of cfg.OAuth with its callback at
// baseURL/auth/<name>/callback. An OpenID Connect provider reads its
// discovery document on first use, so a provider that is down does not stop
// the web process from starting.
func NewProviders(cfg config.Config, log *slog.Logger) *Providers {
	p := &Providers{built: map[string]goth.Provider{}, pending: map[string]func() (goth.Provider, error){}, failed: map[string]failedBuild{}, log: log}
	client := &http.Client{Timeout: ProviderTimeout}
	for _, o := range cfg.OAuth {
		callback := cfg.BaseURL + "/auth/" + o.Name + "/callback"
		var build func() (goth.Provider, error)
		switch o.Name {
		case "github":
			build = func() (goth.Provider, error) {
				gp := github.New(o.Key, o.Secret, callback, "read:user", "user:email")
				gp.HTTPClient = client
				return gp, nil
			}
		case "google":
			build = func() (goth.Provider, error) {
				gp := google.New(o.Key, o.Secret, callback, "email", "profile")
				gp.HTTPClient = client
				return gp, nil
			}
		case "gitlab":
			build = func() (goth.Provider, error) {
				// goth's default profile URL is GitLab's API v3, removed in 2018.
				gp := gitlab.NewCustomisedURL(o.Key, o.Secret, callback, gitlab.AuthURL, gitlab.TokenURL, gitlabProfileURL, "read_user")
				gp.HTTPClient = client
				return gp, nil
			}
		case "oidc":
			build = func() (goth.Provider, error) { return OpenIDConnect(client, o.Key, o.Secret, callback, o.Issuer) }
		default:
			continue
		}
		p.Add(o.Name, build)
	}
	return p
}

// OpenIDConnect is the OpenID Connect provider of issuer, its discovery
// document read through client. (goth's own reads it through Go's default
// client, which waits for an answer as long as the connection stays open.)
func OpenIDConnect(client *http.Client, key, secret, callback, issuer string) (goth.Provider, error) {
	resp, err := client.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery document: %s", resp.Status)
	}
	var d openidConnect.OpenIDConfig
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	if d.AuthEndpoint == "" || d.TokenEndpoint == "" {
		return nil, fmt.Errorf("discovery document: no authorization or token endpoint")
	}
	gp, err := openidConnect.NewCustomisedURL(key, secret, callback, d.AuthEndpoint, d.TokenEndpoint, d.Issuer,
		d.UserInfoEndpoint, d.EndSessionEndpoint, "openid", "email", "profile")
	if err != nil {
		return nil, err
	}
	gp.HTTPClient = client
	return gp, nil
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

// Get returns the enabled provider called name, building it if needed. A
// provider is built outside the lock: one whose discovery document is slow
// to come holds up its own sign-ins, not the sign-in page, which lists
// the providers. One that failed is answered with its failure for a while
// (retryBuild), rather than asked again on every visit.
func (p *Providers) Get(name string) (goth.Provider, error) {
	p.mu.Lock()
	if gp, ok := p.built[name]; ok {
		p.mu.Unlock()
		return gp, nil
	}
	var key string // our own string; name may live in a request buffer reused once the request is over
	for _, info := range p.order {
		if info.Name == name {
			key = info.Name
		}
	}
	if key == "" {
		p.mu.Unlock()
		return nil, ErrUnknownProvider
	}
	if f, ok := p.failed[key]; ok && time.Since(f.at) < retryBuild {
		p.mu.Unlock()
		return nil, f.err
	}
	build := p.pending[key]
	p.mu.Unlock()

	gp, err := build()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("provider %s: %w", key, err)
		p.failed[key] = failedBuild{time.Now(), err}
		return nil, err
	}
	if built, ok := p.built[key]; ok {
		return built, nil // built meanwhile by another request
	}
	gp.SetName(key)
	p.built[key] = gp
	delete(p.failed, key)
	return gp, nil
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
