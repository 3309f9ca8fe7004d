package store_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"rassylka/app/store"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// After PostgreSQL restarts, the first queries succeed: the pool's idle
// connections, which the restart ended, are not handed to them (each would
// fail one query, a page answered 500 or a task retried, with the server
// back).
func TestPoolSurvivesRestart(t *testing.T) {
	pg := testkit.PostgresServer(t)
	db := store.Open(pg.URL)
	t.Cleanup(func() { db.Close() })
	st := store.New(db)
	ctx := context.Background()
	// Fill the pool with idle connections.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.ExecContext(ctx, "SELECT pg_sleep(0.2)"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := db.Stats().Idle; n < 2 {
		t.Fatalf("%d idle connections, want several", n)
	}

	// A quick restart, with no query in between (systemctl restart).
	pg.Stop()
	pg.Start()
	for i := range 10 {
		if err := st.Ping(ctx); err != nil {
			t.Fatalf("query %d after the restart: %v", i+1, err)
		}
	}
}

// A pooled connection idle for longer than the driver's timeout (its last
// read deadline passed) is alive, and is used again: the check before use
// must not take the passed deadline for a dead connection, or every
// connection idle for ten seconds would be dropped and dialled again.
func TestPoolKeepsConnectionsIdlePastTheTimeout(t *testing.T) {
	db := testkit.DB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var before int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	// As after ten idle seconds: the last query's read deadline is past.
	err = conn.Raw(func(dc any) error {
		return dc.(*pgdriver.Conn).Conn().SetReadDeadline(time.Now().Add(-time.Second))
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	var after int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the idle connection was dropped: backend %d, then %d", before, after)
	}
}
