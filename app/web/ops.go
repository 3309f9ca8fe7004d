package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/task"
)

// queuesPath is where managers find the Asynq dashboard.
const queuesPath = "/ops/queues"

// mountOps mounts the operators' tools: the Asynq dashboard for managers
// (read-only unless OPS_QUEUES_WRITABLE is set) and the Prometheus
// metrics (behind METRICS_TOKEN when it is set).
func (s *Server) mountOps(app *fiber.App) {
	mon := asynqmon.New(asynqmon.Options{
		RootPath:     queuesPath, // must equal the mount path: the adaptor passes the full path
		RedisConnOpt: sharedRedis{s.redis},
		ReadOnly:     !s.cfg.QueuesWritable,
		// A mail's text may hold a sign-in link (reset, confirmation):
		// managers read everyone's data but must never act as anyone.
		PayloadFormatter: asynqmon.PayloadFormatterFunc(redactPayload),
	})
	// A browser asks for the page's web-app manifest without cookies: it
	// is the dashboard's own static file, and would otherwise be the
	// sign-in page (a "syntax error" in the console).
	manifest := adaptor.HTTPHandler(mon)
	app.Get(queuesPath+"/manifest.json", func(c *fiber.Ctx) error {
		if c.Path() != queuesPath+"/manifest.json" { // routes match in any letter case
			return c.Next()
		}
		return manifest(c)
	})
	app.Use(queuesPath, onlyUnder(queuesPath), auth.RequireUser, auth.RequireManager, s.queueCSRF, adaptor.HTTPHandler(dashboardPage(mon)))
	app.Get("/metrics", adaptor.HTTPHandler(s.metrics.Handler(s.cfg.MetricsToken)))
}

// remoteFonts are the dashboard page's stylesheets from Google's fonts,
// which would tell Google of every manager who opens it (and fail on a
// host without internet): the page is drawn in the system's fonts.
var remoteFonts = regexp.MustCompile(`<link rel="stylesheet" href="https://fonts\.googleapis\.com/[^"]*"/>`)

// backLink leads from the dashboard back to the site, at the right of its
// top bar (the dashboard has no way back of its own).
const backLink = `<a href="/" data-testid="queues-back" style="position:fixed;top:14px;right:16px;z-index:1300;` +
	`padding:8px 14px;border-radius:6px;background:#1f2937;color:#fff;font:15px system-ui,sans-serif;text-decoration:none">` +
	`← Back to Rassylka</a>`

// dashboardPage serves the dashboard with its page's remote fonts left
// out and a link back to the site added. Its API's answers (every
// refresh of its tables) pass as they are, unread.
func dashboardPage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, queuesPath+"/api/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			body = remoteFonts.ReplaceAll(body, nil)
			body = bodyTag.ReplaceAll(body, []byte("${0}"+backLink))
			rec.Header().Del("Content-Length")
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// bodyTag is the page's opening body tag.
var bodyTag = regexp.MustCompile(`<body[^>]*>`)

// onlyUnder answers 404 for a path that merely starts like prefix
// (/ops/queuesX), which Fiber's Use matches too: only prefix itself and
// the paths under it are the mount's.
func onlyUnder(prefix string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if p := c.Path(); p != prefix && !strings.HasPrefix(p, prefix+"/") {
			return fiber.ErrNotFound
		}
		return c.Next()
	}
}

// redactPayload shows a task's payload on the dashboard, with the text of
// transactional mail left out.
func redactPayload(taskType string, payload []byte) string {
	if taskType == task.TypeEmailDeliver {
		var p task.EmailDeliverPayload
		if err := json.Unmarshal(payload, &p); err != nil {
			return "(mail: unreadable payload)"
		}
		p.Text = "(hidden: may hold a sign-in link)"
		b, _ := json.Marshal(p)
		return string(b)
	}
	return asynqmon.DefaultPayloadFormatter.FormatPayload(taskType, payload)
}

// sharedRedis hands the web's Redis client to the queue dashboard (an
// asynq.RedisConnOpt), instead of a second pool of connections.
type sharedRedis struct{ c redis.UniversalClient }

func (r sharedRedis) MakeRedisClient() any { return r.c }

// queueCSRF checks the CSRF token of the dashboard's writes, except its
// own (queueAction).
func (s *Server) queueCSRF(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if s.queueAction(c) {
		return c.Next()
	}
	return auth.CheckCSRF(c)
}

// queueAction reports whether a request is one of the dashboard's own
// writes (retry, delete, pause…): its script sends them without our CSRF
// token, so they are let through when they come from a page of this site.
// The session cookie is SameSite=Lax, and the Origin (or Referer) header
// of a cross-site request names the other site, which is refused.
func (s *Server) queueAction(c *fiber.Ctx) bool {
	if !s.cfg.QueuesWritable || !strings.HasPrefix(c.Path(), queuesPath+"/api/") {
		return false
	}
	from := c.Get(fiber.HeaderOrigin)
	if from == "" {
		from = c.Get(fiber.HeaderReferer)
	}
	u, err := url.Parse(from)
	if err != nil || from == "" {
		return false
	}
	base, err := url.Parse(s.cfg.BaseURL)
	return err == nil && u.Scheme == base.Scheme && u.Host == base.Host
}
