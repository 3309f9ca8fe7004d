package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/model"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

type oneUser struct{ u *model.User }

func (o oneUser) UserByID(context.Context, int64) (*model.User, error) { return o.u, nil }

// A session ended while a request that keeps a value in it runs (a
// password change elsewhere ends every session of the user) stays ended:
// the request's save wrote it again in full, and it came back, out of the
// user's index, for a week.
func TestSetValuesDoesNotBringBackAnEndedSession(t *testing.T) {
	rdb := testkit.Redis(t)
	s := NewSessions(rdb, oneUser{&model.User{ID: 7, Email: "ann@example.com"}}, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	app := fiber.New()
	app.Use(s.Load)
	app.Post("/signin", func(c *fiber.Ctx) error { return s.SignIn(c, &model.User{ID: 7}) })
	app.Post("/set", func(c *fiber.Ctx) error { return s.SetValues(c, map[string]string{"oauth_state": "x"}) })
	app.Get("/who", func(c *fiber.Ctx) error {
		if u := CurrentUser(c); u != nil {
			return c.SendString(u.Email)
		}
		return c.SendString("nobody")
	})
	do := func(method, path, cookie string) (*http.Response, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, _ := do("POST", "/signin", "")
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			cookie = c.Name + "=" + c.Value
		}
	}
	if _, who := do("GET", "/who", cookie); who != "ann@example.com" {
		t.Fatalf("after sign-in: %q", who)
	}
	s.beforeSave = func() {
		if err := s.EndAll(context.Background(), 7); err != nil {
			t.Error(err)
		}
	}
	do("POST", "/set", cookie)
	s.beforeSave = nil
	if _, who := do("GET", "/who", cookie); who != "nobody" {
		t.Errorf("a session ended while a request kept a value in it is back: signed in as %q", who)
	}
}
