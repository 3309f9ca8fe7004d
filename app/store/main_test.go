package store_test

import (
	"context"
	"os"
	"sync"
	"testing"

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
