package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
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

	if out, err := cmd("migrate", "up"); err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("migrate up = %q, %v", out, err)
	}
	if out, err := cmd("migrate", "up"); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate up = %q, %v", out, err)
	}

	if out, err := cmd("user", "create", "--email", "Boss@Example.com", "--password", "long enough pass", "--role", "manager", "--name", "Boss"); err != nil || !strings.Contains(out, "created manager") {
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
		{"frobnicate"},
	} {
		if _, err := cmd(args...); err == nil {
			t.Errorf("%v succeeded, want an error", args)
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

	if out, err := cmd("migrate", "down"); err != nil || !strings.Contains(out, "rolled back") {
		t.Fatalf("migrate down = %q, %v", out, err)
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
