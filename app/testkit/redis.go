package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisDatabases is how many logical databases scripts/test gives the test
// Redis; database 0 holds the allocation counter.
const redisDatabases = 1024

// Redis returns a client on a Redis database of its own for the test,
// flushed before use. Tests running at once, in any package, never share
// a database.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(RedisOptions(t))
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// RedisOptions allocates a fresh Redis database and returns options for it.
func RedisOptions(t testing.TB) *redis.Options {
	t.Helper()
	base, err := redis.ParseURL(mustEnv(t, "TEST_REDIS_URL"))
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counter := redis.NewClient(base)
	defer counter.Close()
	n, err := counter.Incr(ctx, "testkit:db-counter").Result()
	if err != nil {
		t.Fatalf("allocate redis database: %v", err)
	}
	opts := *base
	opts.DB = int(1 + (n-1)%(redisDatabases-1))
	c := redis.NewClient(&opts)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis database %d: %v (does the server have %d databases?)", opts.DB, err, redisDatabases)
	}
	return &opts
}

// RedisURL returns a URL of a fresh Redis database for the test.
func RedisURL(t testing.TB) string {
	t.Helper()
	o := RedisOptions(t)
	return fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
}

// RedisServer starts a Redis server of the test's own on a free port, for
// tests that stop or break it. Stop it with the returned function (also
// called when the test ends).
func RedisServer(t testing.TB) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	port := FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			stop()
			logs, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server on %s did not start: %s", addr, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, stop
}
