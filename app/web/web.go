// Package web is the HTTP face of Rassylka: the Fiber app, the route table
// (routes.go), middleware, the one error handler, and a file per resource.
// Handlers parse, validate, call app/store or a domain package, and render
// views; they never talk SMTP (mail goes through app/task).
package web

import (
	"context"
	"log/slog"
	netmail "net/mail"
	"net/netip"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/config"
	"rassylka/app/mail"
	"rassylka/app/metrics"
	"rassylka/app/sending"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/task"
)

// Deps is everything the web app is built from, wired in cmd/web.
type Deps struct {
	Config config.Config
	Store  *store.Store
	Redis  redis.UniversalClient
	Queue  *asynq.Client
	Log    *slog.Logger
	// Providers are the OAuth sign-in providers; nil builds them from Config.
	Providers *auth.Providers
	// ImportWait is how long the answer to a CSV import waits for its
	// report before it answers with the import's progress page instead
	// (0: DefaultImportWait; below 0: it does not wait).
	ImportWait time.Duration
}

// Server holds the dependencies shared by the handlers.
type Server struct {
	cfg   config.Config
	store *store.Store
	redis redis.UniversalClient
	queue *asynq.Client
	log   *slog.Logger

	sending     *sending.Service
	mailHealth  *mail.Health // what the workers say of the mail server
	inspector   *asynq.Inspector
	workersSeen workersSeen // whether a worker runs, as last asked (workerRuns)
	stats       *stats.Service
	metrics     *metrics.Registry
	sessions    *auth.Sessions
	accounts    *auth.Accounts
	providers   *auth.Providers
	loginLimit  *auth.Limiter
	formLimit   *auth.Limiter
	testLimit   *auth.Limiter   // tests of a message a user mails themselves
	replyLimit  *auth.Limiter   // reply addresses a user has mailed a link to confirm
	mailFrom    netmail.Address // MAIL_FROM, parsed (the address alone when it does not parse)
	oauthLimit  *auth.Limiter   // sign-ins with a provider started
	// proxies are the TrustedProxies, parsed (see clientIP).
	proxies []netip.Prefix
	// after is the work done after an answer (account mails, imports),
	// waited for on shutdown before the caller closes PostgreSQL and Redis.
	after sync.WaitGroup
	// background ends on shutdown: imports stop after the batch under way.
	background     context.Context
	stopBackground context.CancelFunc
	// importTurn lets one import at a time run in the process;
	// importsHeld bounds those running and waiting.
	importTurn, importsHeld chan struct{}
	importWait              time.Duration
}

// afterAnswer runs fn in the background, with a context of its own bounded
// by afterAnswerTimeout, and logs its error as what failed; the app's
// shutdown waits for it.
func (s *Server) afterAnswer(what string, fn func(ctx context.Context) error) {
	s.after.Add(1)
	go func() {
		defer s.after.Done()
		ctx, cancel := context.WithTimeout(context.Background(), afterAnswerTimeout)
		defer cancel()
		if err := fn(ctx); err != nil {
			s.log.ErrorContext(ctx, what, "error", err.Error())
		}
	}()
}

// afterAnswerTimeout bounds the work a request leaves for after its answer.
const afterAnswerTimeout = 30 * time.Second

// Sign-in throttling: failures per IP and per account.
const (
	loginFailures = 10
	loginWindow   = 15 * time.Minute
	// mails about one account (confirmation, reset) per hour
	accountMails = 5
	// sign-ups, reset and confirmation requests per client address per hour
	accountForms = 20
	// tests of their messages a user mails themselves per hour
	testMails = 10
	// new reply addresses a user asks to confirm (each mailed a link) per hour
	replyToMails = 5
	// sign-ins with a provider started per client address per hour
	oauthStarts = 60
)

// New builds the Fiber app with every route mounted.
func New(d Deps) *fiber.App {
	s := &Server{cfg: d.Config, store: d.Store, redis: d.Redis, queue: d.Queue, log: d.Log, providers: d.Providers,
		importTurn: make(chan struct{}, 1), importsHeld: make(chan struct{}, importsHeld), importWait: d.ImportWait}
	if s.importWait == 0 {
		s.importWait = DefaultImportWait
	}
	s.background, s.stopBackground = context.WithCancel(context.Background())
	if s.providers == nil {
		s.providers = auth.NewProviders(d.Config, d.Log)
	}
	s.sessions = auth.NewSessions(d.Redis, d.Store, d.Config.SecureCookies(), d.Log)
	s.accounts = &auth.Accounts{
		Store: d.Store, Queue: d.Queue, BaseURL: d.Config.BaseURL, Log: d.Log,
		MailLimit: auth.NewLimiter(d.Redis, "account-mail", accountMails, time.Hour),
	}
	s.loginLimit = auth.NewLimiter(d.Redis, "login", loginFailures, loginWindow)
	s.formLimit = auth.NewLimiter(d.Redis, "account-form", accountForms, time.Hour)
	s.testLimit = auth.NewLimiter(d.Redis, "test-mail", testMails, time.Hour)
	s.replyLimit = auth.NewLimiter(d.Redis, "reply-to-mail", replyToMails, time.Hour)
	s.mailFrom = netmail.Address{Address: d.Config.MailFrom}
	if a, err := netmail.ParseAddress(d.Config.MailFrom); err == nil {
		s.mailFrom = *a
	}
	s.oauthLimit = auth.NewLimiter(d.Redis, "oauth-start", oauthStarts, time.Hour)
	s.proxies = parseProxies(d.Config.TrustedProxies)
	// The web process starts runs and plans occurrences; it never sends.
	s.stats = &stats.Service{Store: d.Store, Redis: d.Redis, Log: d.Log}
	inspector := asynq.NewInspectorFromRedisClient(d.Redis)
	s.sending = &sending.Service{Store: d.Store, Queue: task.Queue{Client: d.Queue, Inspector: inspector}, Log: d.Log,
		BaseURL: d.Config.BaseURL, Secret: d.Config.SessionSecret, Stats: s.stats}
	s.metrics = metrics.New(inspector)
	s.mailHealth = mail.NewHealth(d.Redis)
	s.inspector = inspector
	app := fiber.New(fiber.Config{
		AppName:               "rassylka",
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		// A body is read as it is sent, once bodyLimit let it through (a
		// request only claiming a large one costs nothing); an upload is
		// read only by its route (the import's, for a signed-in user).
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// The request line and headers: fasthttp's 4 KB refused (431) a
		// search of 600 Cyrillic letters, 6 bytes each in the address.
		ReadBufferSize: 16 << 10,
		// Behind a reverse proxy, believe its header only from the proxy.
		ProxyHeader:             d.Config.ProxyHeader,
		EnableTrustedProxyCheck: d.Config.ProxyHeader != "",
		TrustedProxies:          d.Config.TrustedProxies,
		EnableIPValidation:      true,
	})
	app.Use(s.requestID, s.metrics.HTTP(), s.accessLog, recover.New(), s.pageHeaders, s.bodyLimit)
	// Assets are answered before sessions and CSRF: a response that shared
	// caches may keep ("public, immutable") must not set or clear cookies.
	app.Get(assetsRoute, s.asset)
	// So are the health answers: sessions live in Redis and name a user in
	// PostgreSQL, and a probe or a browser sending a session cookie while
	// either is down must still hear "ok" or what is down, not an error.
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Use(s.sessions.Load,
		auth.CSRF(d.Config.SessionSecret, d.Config.SecureCookies()),
		s.invalidateStats, s.etag)
	s.routes(app)
	s.mountOps(app)
	// Shutdown returns once the links asked for are made and queued, and
	// the imports under way have stopped (each after its batch).
	app.Hooks().OnShutdown(func() error { s.stopBackground(); s.after.Wait(); return nil })
	return app
}
