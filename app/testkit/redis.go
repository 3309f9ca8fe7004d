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
	s := RedisProcess(t)
	return s.Addr, s.Stop
}

// RedisProc is a Redis server of the test's own that can be stopped and
// started again on the same address, for tests of an outage.
type RedisProc struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	Addr string
}

// RedisProcess starts a Redis server of the test's own on a free port; it
// is stopped when the test ends.
func RedisProcess(t testing.TB) *RedisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	s := &RedisProc{t: t, bin: bin, dir: t.TempDir(), port: FreePort(t)}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start starts the server (again) and waits until it answers. Data the
// last Stop saved is loaded, as a server with persistence would.
func (s *RedisProc) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.Stop()
			logs, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not start: %s", s.Addr, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop saves the data and stops the server, ending every connection.
func (s *RedisProc) Stop() {
	if s.cmd == nil {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = c.ShutdownSave(ctx).Err() // answers with the connection closed
	cancel()
	c.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}
