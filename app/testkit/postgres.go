package testkit

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"rassylka/app/store"
)

var (
	tplOnce sync.Once
	tplName string
	tplErr  error
	adminMu sync.Mutex // CREATE DATABASE … TEMPLATE needs the template idle
	dbSeq   atomic.Int64
)

// DatabaseURL returns the URL of database name on the test server.
func DatabaseURL(t testing.TB, name string) string {
	t.Helper()
	u, err := url.Parse(mustEnv(t, "TEST_DATABASE_URL"))
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// EmptyDB creates a database with no schema and returns its URL; it is
// dropped when the test ends. For tests of the migrations themselves.
func EmptyDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return DatabaseURL(t, name)
}

// DB returns a fresh, migrated database for the test, cloned from the
// package's template in milliseconds and dropped when the test ends.
func DB(t testing.TB) *bun.DB {
	t.Helper()
	db, _ := DBWithURL(t)
	return db
}

// DBWithURL is DB that also returns the database's URL, for code under
// test that opens its own connections (a subprocess, a second pool).
func DBWithURL(t testing.TB) (*bun.DB, string) {
	t.Helper()
	tplOnce.Do(func() { tplErr = makeTemplate(t) })
	if tplErr != nil {
		t.Fatalf("test database template: %v", tplErr)
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin(t, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tplName))
	dsn := DatabaseURL(t, name)
	db := store.Open(dsn)
	t.Cleanup(func() {
		db.Close()
		admin(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return db, dsn
}

func makeTemplate(t testing.TB) error {
	name := fmt.Sprintf("tpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if err := adminExec(t, "CREATE DATABASE "+name); err != nil {
		return err
	}
	db := store.Open(DatabaseURL(t, name))
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := store.NewSchema(db).Up(ctx); err != nil {
		return err
	}
	tplName = name
	return nil
}

func dropTemplate() {
	if tplName == "" || os.Getenv("TEST_DATABASE_URL") == "" {
		return
	}
	u, err := url.Parse(os.Getenv("TEST_DATABASE_URL"))
	if err != nil {
		return
	}
	db := store.Open(u.String())
	defer db.Close()
	if _, err := db.Exec("DROP DATABASE IF EXISTS " + tplName + " WITH (FORCE)"); err != nil {
		logf("drop template %s: %v", tplName, err)
	}
}

var (
	adminOnce sync.Once
	adminDB   *bun.DB
)

func admin(t testing.TB, query string) {
	t.Helper()
	if err := adminExec(t, query); err != nil {
		t.Fatal(err)
	}
}

func adminExec(t testing.TB, query string) error {
	t.Helper()
	adminOnce.Do(func() { adminDB = store.Open(mustEnv(t, "TEST_DATABASE_URL")) })
	adminMu.Lock()
	defer adminMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}

// AwaitLockWait waits until a session of db's database waits for a lock:
// a test's sign that a statement it started has come to the row another
// transaction holds. It calls each (when not nil) before every look, and
// reports false after 10 s.
func AwaitLockWait(db bun.IDB, each func()) (bool, error) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if each != nil {
			each()
		}
		var waiting bool
		err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database())").
			Scan(context.Background(), &waiting)
		if err != nil || waiting {
			return waiting, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
	}
}

// UntilLockWaited is AwaitLockWait that fails the test when no statement
// waits: a test holding a row lets go of it only once the statement it
// means to hold up is held up.
func UntilLockWaited(t testing.TB, db bun.IDB) {
	t.Helper()
	waiting, err := AwaitLockWait(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !waiting {
		t.Fatal("no statement came to wait for the lock held")
	}
}
