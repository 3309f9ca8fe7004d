package web_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/config"
	"rassylka/app/store"
	"rassylka/app/testkit"
	"rassylka/app/web"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// env is a web app wired to a fresh database and Redis database.
type env struct {
	app   *fiber.App
	redis *redis.Client
	logs  *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	rdb := testkit.Redis(t)
	return newEnvWith(t, cfg, rdb)
}

func newEnvWith(t *testing.T, cfg config.Config, rdb *redis.Client) *env {
	t.Helper()
	logs := &syncBuffer{}
	queue := asynq.NewClientFromRedisClient(rdb)
	app := web.New(web.Deps{
		Config: cfg,
		Store:  store.New(testkit.DB(t)),
		Redis:  rdb,
		Queue:  queue,
		Log:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	return &env{app: app, redis: rdb, logs: logs}
}

// do sends req to the app and returns the answer with its body read.
func (e *env) do(t *testing.T, req *http.Request) (*http.Response, string) {
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

func (e *env) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, req)
}

func parseHTML(t *testing.T, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
