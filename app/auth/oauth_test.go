package auth

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/markbates/goth/providers/gitlab"

	"rassylka/app/config"
)

// roundTrip answers every request with one response, and remembers the
// last request.
type roundTrip struct {
	body string
	last *http.Request
}

func (r *roundTrip) RoundTrip(req *http.Request) (*http.Response, error) {
	r.last = req
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(r.body)), Request: req}, nil
}

// GitLab sign-in reads the user from GitLab's API v4 (v3 is gone), and an
// address counts as verified only once GitLab says it was confirmed.
func TestGitLabUser(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ps := NewProviders(config.Config{BaseURL: "https://mail.example.com", OAuth: []config.OAuthProvider{{Name: "gitlab", Key: "k", Secret: "s"}}}, log)
	gp, err := ps.Get("gitlab")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		confirmedAt string
		verified    bool
	}{{`"2024-05-01T10:00:00Z"`, true}, {`null`, false}} {
		rt := &roundTrip{body: `{"id": 7, "username": "ann", "name": "Ann", "email": "ann@example.com", "confirmed_at": ` + c.confirmedAt + `}`}
		gp.(*gitlab.Provider).HTTPClient = &http.Client{Transport: rt}
		u, err := gp.FetchUser(&gitlab.Session{AccessToken: "token"})
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.last.URL.Scheme + "://" + rt.last.URL.Host + rt.last.URL.Path; got != "https://gitlab.com/api/v4/user" {
			t.Errorf("profile read from %s", got)
		}
		if addr, ok := VerifiedEmail("gitlab", u); addr != "ann@example.com" || ok != c.verified {
			t.Errorf("confirmed_at %s: %q verified %v, want %v", c.confirmedAt, addr, ok, c.verified)
		}
	}
}

// A provider's name is kept to one line of printable text.
func TestOneLine(t *testing.T) {
	if got := oneLine(" Ann\r\nB\x00b\t "); got != "Ann  B b" {
		t.Errorf("%q", got)
	}
}
