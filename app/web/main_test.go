package web_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"rassylka/app/auth"
	"rassylka/app/config"
	"rassylka/app/mail"
	"rassylka/app/mail/mailsink"
	"rassylka/app/sending"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
	"rassylka/app/web"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// env is a web app wired to a fresh database and Redis database.
type env struct {
	app   *fiber.App
	redis *redis.Client
	db    *bun.DB
	store *store.Store
	logs  *testkit.Buffer
	cfg   config.Config
	hook  *queryHook
	deps  web.Deps // what app was built from
}

// queryHook calls its function, when one is set, after each query: a
// test's way to change data between two queries of one request.
type queryHook struct {
	after atomic.Pointer[func(*bun.QueryEvent)]
}

func (h *queryHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *queryHook) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	if f := h.after.Load(); f != nil {
		(*f)(ev)
	}
}

const testBaseURL = "http://rassylka.test"

func testConfig(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"BASE_URL": testBaseURL}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, testConfig(t), testkit.Redis(t), nil)
}

func newEnvWith(t testing.TB, cfg config.Config, rdb *redis.Client, providers *auth.Providers, opts ...func(*web.Deps)) *env {
	t.Helper()
	logs := &testkit.Buffer{}
	queue := asynq.NewClientFromRedisClient(rdb)
	hook := &queryHook{}
	db := testkit.DB(t).WithQueryHook(hook)
	st := store.New(db)
	log := slog.New(slog.NewTextHandler(logs, nil))
	deps := web.Deps{
		Config:    cfg,
		Store:     st,
		Redis:     rdb,
		Queue:     queue,
		Log:       log,
		Providers: providers,
		// The answer to an import waits for its report, however slow the
		// machine: the tests of the background set their own.
		ImportWait: time.Minute,
	}
	for _, o := range opts {
		o(&deps)
	}
	app := web.New(deps)
	return &env{app: app, redis: rdb, db: db, store: st, logs: logs, cfg: cfg, hook: hook, deps: deps}
}

// withWorker runs the task handlers on the env's queue, delivering mail to
// an in-process SMTP server, as the worker process does.
func (e *env) withWorker(t testing.TB) *mailsink.Server {
	t.Helper()
	sink := testkit.SMTP(t)
	sender, err := mail.NewSender(sink.URL(), "Rassylka <no-reply@rassylka.test>", "rassylka.test")
	if err != nil {
		t.Fatal(err)
	}
	o := e.redis.Options()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB})
	t.Cleanup(func() { client.Close() })
	pool := mail.NewPool(sender, 2, nil)
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &task.Handler{Mailer: sender, Store: e.store, Log: log, Sending: &sending.Service{
		Store: e.store, Queue: task.Queue{Client: client}, Sender: pool, Log: log,
		BaseURL: e.cfg.BaseURL, Secret: e.cfg.SessionSecret, Concurrency: 2,
		Stats: &stats.Service{Store: e.store, Redis: e.redis, Log: log},
	}}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB}, asynq.Config{
		Concurrency: 2, Queues: task.Queues, LogLevel: asynq.ErrorLevel, TaskCheckInterval: 50 * time.Millisecond,
	})
	mux := asynq.NewServeMux()
	h.Register(mux)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	// Started: told to Redis, where the pages look for a worker (a page
	// asked first said none runs).
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB})
	defer insp.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if servers, err := insp.Servers(); err == nil && len(servers) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker is not told to Redis")
		}
	}
	return sink
}

// do sends req to the app and returns the answer with its body read.
func (e *env) do(t testing.TB, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := e.app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func (e *env) get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, req)
}

func parseHTML(t testing.TB, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
