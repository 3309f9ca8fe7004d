package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func TestCommands(t *testing.T) {
	dsn := testkit.EmptyDB(t)
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": testkit.RedisURL(t), "ADDR": "127.0.0.1:0"}
	getenv := func(k string) string { return vars[k] }
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, getenv, &out)
		return out.String(), err
	}

	out, err := cmd("migrate", "status")
	if err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("status on an empty database = %q, %v", out, err)
	}

	_, err = cmd("serve")
	var behind *store.ErrSchemaBehind
	if !errors.As(err, &behind) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "migrate up") {
		t.Fatalf("serve with the schema behind = %v, want one line telling to migrate", err)
	}

	// So does a user command: its statements would fail on tables not made.
	for _, args := range [][]string{
		{"user", "create", "--email", "early@example.com", "--password", "long enough pass"},
		{"user", "role", "--email", "early@example.com", "--role", "manager"},
	} {
		if _, err = cmd(args...); !errors.As(err, &behind) {
			t.Fatalf("%s with the schema behind = %v, want one line telling to migrate", strings.Join(args[:2], " "), err)
		}
	}

	if out, err := cmd("migrate", "up"); err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("migrate up = %q, %v", out, err)
	}
	if out, err := cmd("migrate", "up"); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate up = %q, %v", out, err)
	}

	if out, err := cmd("user", "create", "--email", "Boss@Example.com", "--password", "long enough pass", "--role", "manager", "--name", "Boss"); err != nil || !regexp.MustCompile(`^created boss@example\.com, a manager \(id \d+\)\n$`).MatchString(out) {
		t.Fatalf("user create = %q, %v", out, err)
	}
	// The managers' cached statistics list every user: they are renewed.
	opts, err := redis.ParseURL(vars["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	siteGeneration := func() int {
		n, _ := rdb.Get(context.Background(), "stats:gen:all").Int()
		return n
	}
	if n := siteGeneration(); n != 1 {
		t.Errorf("site statistics generation after user create = %d, want 1", n)
	}
	db := store.Open(dsn)
	defer db.Close()
	st := store.New(db)
	u, err := st.UserByEmail(context.Background(), "boss@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != model.RoleManager || u.FullName != "Boss" || u.EmailConfirmedAt == nil || u.PasswordHash == nil {
		t.Fatalf("created user %+v", u)
	}
	if err := auth.CheckPassword(*u.PasswordHash, "long enough pass"); err != nil {
		t.Fatalf("stored password does not check: %v", err)
	}

	for _, args := range [][]string{
		{"user", "create", "--email", "boss@example.com", "--password", "long enough pass"},
		{"user", "create", "--email", "x@example.com", "--password", "short"},
		{"user", "create", "--email", "x@example.com", "--password", "long enough pass", "--role", "root"},
		{"user", "create", "--password", "long enough pass"},
		{"user", "role", "--email", "nobody@example.com", "--role", "manager"},
		{"user", "role", "--email", "boss@example.com", "--role", "admin"},
		{"migrate", "sideways"},
		{"user", "create", "--email", "nopass@example.com"},
		{"frobnicate"},
	} {
		if _, err := cmd(args...); err == nil {
			t.Errorf("%v succeeded, want an error", args)
		}
	}

	if _, err := cmd("user", "create", "--email", "nopass@example.com"); err == nil || err.Error() != "--password is required" {
		t.Errorf("user create without --password = %v", err)
	}
	if out, err := cmd("user", "create", "-h"); err != nil || !strings.Contains(out, "-email") {
		t.Errorf("user create -h = %q, %v; want the flags listed, and no error", out, err)
	}

	// An unknown subcommand is named as such, whatever flags come with it.
	for _, args := range [][]string{{"user", "delete"}, {"user", "delete", "--email", "boss@example.com"}} {
		if _, err := cmd(args...); err == nil || !strings.Contains(err.Error(), `unknown user command "delete"`) {
			t.Errorf("%v = %v, want the unknown user command named", args, err)
		}
	}

	if out, err := cmd("user", "role", "--email", "BOSS@example.com", "--role", "user"); err != nil || !strings.Contains(out, "now a user") {
		t.Fatalf("user role = %q, %v", out, err)
	}
	if u, _ := st.UserByEmail(context.Background(), "boss@example.com"); u.Role != model.RoleUser {
		t.Fatalf("role after change = %s", u.Role)
	}
	if n := siteGeneration(); n != 2 {
		t.Errorf("site statistics generation after user role = %d, want 2", n)
	}
	if out, err := cmd("user", "role", "--email", "boss@example.com", "--role", "user"); err != nil || out != "boss@example.com is already a user\n" {
		t.Errorf("user role to the role held = %q, %v; want it said so", out, err)
	}
	if _, err := cmd("user", "role", "--email", "boss@example.com"); err == nil || err.Error() != "--role is required: user or manager" {
		t.Errorf("user role without --role = %v", err)
	}

	// Down rolls back the last migration alone, though the schema was
	// migrated at once; up applies it again.
	status, err := cmd("migrate", "status")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(status), "\n")
	last := strings.TrimSpace(strings.TrimPrefix(lines[len(lines)-1], "applied"))
	out, err = cmd("migrate", "down")
	if err != nil || out != "rolled back "+last+"\n" {
		t.Fatalf("migrate down = %q, %v; want the last migration (%s) alone rolled back", out, err, last)
	}
	if out, err := cmd("migrate", "status"); err != nil || !strings.HasPrefix(out, "applied  0001\napplied  0002\n") || !strings.HasSuffix(out, "pending  "+last+"\n") {
		t.Fatalf("status after down = %q, %v; want all applied but the last, oldest first", out, err)
	}
	if out, err := cmd("migrate", "up"); err != nil || out != "applied "+last+"\n" {
		t.Fatalf("migrate up after down = %q, %v", out, err)
	}
	out, err = cmd("migrate", "down", "--all")
	if err != nil || !strings.Contains(out, "rolled back") {
		t.Fatalf("migrate down --all = %q, %v", out, err)
	}
	if first, last := strings.Index(out, "0006"), strings.Index(out, "0001"); first < 0 || last < first {
		t.Errorf("migrate down --all lists %q: want the last migration, rolled back first, first", out)
	}
	if out, err := cmd("migrate", "status"); err != nil || strings.Contains(out, "applied ") {
		t.Fatalf("status after down = %q, %v", out, err)
	}
}

func TestProductionConfigErrorIsClear(t *testing.T) {
	err := run(context.Background(), []string{"serve"}, func(k string) string {
		return map[string]string{"APP_ENV": "production"}[k]
	}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "SESSION_SECRET is required in production") {
		t.Fatalf("err = %v", err)
	}
}

// Help is given on a machine not configured yet, where an operator is
// most likely to ask for it.
func TestHelpNeedsNoConfiguration(t *testing.T) {
	unconfigured := func(k string) string { return map[string]string{"APP_ENV": "production"}[k] }
	for args, want := range map[string]string{
		"help": "web migrate up|down [--all]|status", "-h": "web migrate up|down [--all]|status", "--help": "web migrate up|down [--all]|status",
		"migrate -h": "usage: web migrate up|down [--all]|status", "migrate --help": "usage: web migrate up|down [--all]|status",
		"user -h": "usage: web user create|role", "user create -h": "-email", "user role --help": "-role",
	} {
		var out bytes.Buffer
		err := run(context.Background(), strings.Fields(args), unconfigured, &out)
		if err != nil || !strings.Contains(out.String(), want) {
			t.Errorf("web %s = %q, %v; want the usage", args, out.String(), err)
		}
	}
	// So are mistakes, with the usage that mends them, in the error (for
	// stderr) and nothing for stdout.
	for args, want := range map[string]string{
		"frobnicate": `unknown command "frobnicate"`, "migrate sideways": `unknown migrate command "sideways"`,
		"user delete": `unknown user command "delete"`, "serve now": `unexpected argument "now"`,
		"user create --email nobody": `--email "nobody"`,
		"user create --bogus":        "flag provided but not defined: -bogus",
	} {
		var out bytes.Buffer
		err := run(context.Background(), strings.Fields(args), unconfigured, &out)
		if err == nil || !strings.Contains(err.Error(), want) || out.Len() != 0 {
			t.Errorf("web %s = %v, printing %q; want %s, and nothing printed", args, err, out.String(), want)
		}
	}
	if err := run(context.Background(), []string{"frobnicate"}, unconfigured, io.Discard); err == nil || !strings.Contains(err.Error(), "web migrate up|down") {
		t.Errorf("an unknown command's error lacks the usage: %v", err)
	}
	if err := run(context.Background(), []string{"user", "create", "--bogus"}, unconfigured, io.Discard); err == nil || !strings.Contains(err.Error(), "-email") {
		t.Errorf("a bad flag's error lacks the flags: %v", err)
	}
}

func TestServeStopsGracefully(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": testkit.RedisURL(t), "ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard) }()

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("web never became ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v on shutdown", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// A Redis that answers but refuses REDIS_URL (a database number it does
// not have) is a mistake in the configuration: serve says so and exits,
// instead of answering 503 for ever. (One out of reach is waited for: see
// TestJSONLogsStayJSONWhenRedisIsDown.)
func TestServeRefusesARedisThatRefuses(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	vars := map[string]string{"DATABASE_URL": dsn, "ADDR": fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		"REDIS_URL": "redis://" + testkit.RedisOptions(t).Addr + "/99999"}
	// Bounded: serving on instead would end here, without the refusal.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "DB index") {
		t.Fatalf("serve on a Redis database that does not exist: %v, want a refusal of REDIS_URL", err)
	}
}

// user create must refuse what the sign-in and registration forms refuse:
// an address the login form rejects makes an account no one can sign in
// to, and a password the web forbids should not get in by the back door.
func TestUserCreateValidatesLikeTheWeb(t *testing.T) {
	dsn := testkit.EmptyDB(t)
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": testkit.RedisURL(t)}
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return vars[k] }, &out)
		return out.String(), err
	}
	if _, err := cmd("migrate", "up"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--email", "not an email", "--password", "long enough pass"},
		{"--email", "Boss <boss@example.com>", "--password", "long enough pass"},
		{"--email", "a@example.com", "--password", "          "},
		{"--email", "b@example.com", "--password", "password123"},
		{"--email", "c@example.com", "--password", "c@example.com"},
		{"--email", "d@example.com", "--password", "long enough pass", "--name", "two\nlines"},
		{"--email", "e@example.com", "--password", "long enough pass", "stray"},
	} {
		if out, err := cmd(append([]string{"user", "create"}, args...)...); err == nil {
			t.Errorf("user create %q = %q, want an error", args, out)
		}
	}
}

// With LOG_FORMAT=json every line the process writes must be JSON, also
// when Redis is down (the libraries' own loggers wrote plain text then).
func TestJSONLogsStayJSONWhenRedisIsDown(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	vars := map[string]string{"DATABASE_URL": dsn, "ADDR": addr, "LOG_FORMAT": "json",
		"REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", testkit.FreePort(t))}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The libraries' loggers hold os.Stderr's file: capture descriptor 2.
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() { _ = syscall.Dup3(saved, 2, 0) }
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	defer restore()
	logged := make(chan string)
	go func() { b, _ := io.ReadAll(r); logged <- string(b) }()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	restore()
	w.Close()
	for _, line := range strings.Split(strings.TrimSpace(<-logged), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not a JSON log line: %s", line)
		}
	}
}

// A reset link asked for just before a deploy is still mailed: the forgot
// password answer comes first and the link is made after it, so stopping
// the server must wait for that work before it closes PostgreSQL and
// Redis (or the person waits for a mail that never comes).
func TestServeFinishesAccountMailsOnShutdown(t *testing.T) {
	db, dsn := testkit.DBWithURL(t)
	redisURL := testkit.RedisURL(t)
	ctx := context.Background()
	if err := store.New(db).CreateUser(ctx, &model.User{Email: "ann@example.com", FullName: "Ann", TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	base := "http://" + addr
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": redisURL, "ADDR": addr, "BASE_URL": base}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard) }()

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var page string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(base + "/password/forgot")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				page = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("web never became ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no csrf token on the forgot page")
	}
	// The link's row waits (a slow database) until the server is stopping.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	if _, err := tx.ExecContext(ctx, "LOCK TABLE tokens"); err != nil {
		t.Fatal(err)
	}
	resp, err := client.PostForm(base+"/password/forgot", url.Values{"email": {"ann@example.com"}, "_csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("forgot: %d", resp.StatusCode)
	}
	testkit.UntilLockWaited(t, db)
	cancel()
	time.Sleep(300 * time.Millisecond) // the server is stopping
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
	opts, _ := redis.ParseURL(redisURL)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(task.QueueCritical)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Fatalf("%d mails queued after a reset asked for before the shutdown, want 1", len(tasks))
	}
}
