package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"rassylka/app/store"
)

// PGServer is a PostgreSQL server of the test's own, for tests that stop
// or restart it (the shared test server must keep running for the others).
type PGServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	URL  string // a migrated database on it
}

// PostgresServer initialises and starts a private PostgreSQL on a free
// port, creates a migrated database, and stops the server when the test
// ends. It takes a few seconds.
func PostgresServer(t testing.TB) *PGServer {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		t.Fatal("PostgreSQL binaries not found under /usr/lib/postgresql")
	}
	s := &PGServer{t: t, bin: dirs[len(dirs)-1], port: FreePort(t)}
	s.dir = filepath.Join(os.TempDir(), fmt.Sprintf("rassylka-pg-%d-%d", os.Getpid(), s.port))
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(s.dir)
	})
	if os.Geteuid() == 0 {
		if err := exec.Command("chown", "postgres:postgres", s.dir).Run(); err != nil {
			t.Fatalf("chown: %v", err)
		}
	}
	if err := s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	s.Start()
	admin := store.Open(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port))
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE rassylka"); err != nil {
		t.Fatal(err)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/rassylka?sslmode=disable", s.port)
	db := store.Open(s.URL)
	defer db.Close()
	if _, err := store.NewSchema(db).Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Start starts the server and waits until it accepts connections.
func (s *PGServer) Start() {
	s.t.Helper()
	opts := "-c listen_addresses=127.0.0.1 -p " + strconv.Itoa(s.port) + " -k " + s.dir + " -c fsync=off"
	if err := s.run("pg_ctl", "-D", s.dir, "-o", opts, "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		logs, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("start postgres: %v\n%s", err, logs)
	}
}

// Stop stops the server at once, ending every connection.
func (s *PGServer) Stop() {
	s.t.Helper()
	if err := s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop"); err != nil {
		s.t.Fatalf("stop postgres: %v", err)
	}
}

func (s *PGServer) run(name string, args ...string) error {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}
