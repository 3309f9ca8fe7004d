package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"rassylka/app/model"
	"rassylka/app/stats"
	"rassylka/app/store"
)

// BenchmarkClientsList measures the clients page (first page, a deep page,
// and a search) for an owner with 100,000 clients, against the same pages
// for an owner with 1,000 clients as the baseline, in one run:
//
//	scripts/test ./app/web -run '^$' -bench ClientsList -benchtime 200x
//
// Figures are recorded in docs/benchmarks.md.
func BenchmarkClientsList(b *testing.B) {
	e := newEnv(b)
	for _, size := range []int{1000, 100000} {
		c, _ := seedClients(b, e, size)
		for _, page := range []struct{ name, path string }{
			{"first-page", "/clients"},
			{"page-100", "/clients?page=100"},
			{"search", "/clients?q=person00042"},
			{"search-miss", "/clients?q=nobody-matches-this"},
		} {
			if page.name == "page-100" && size < 100*perPageForBench {
				continue
			}
			b.Run(fmt.Sprintf("%s/%d", page.name, size), func(b *testing.B) {
				req, _ := http.NewRequest(http.MethodGet, page.path, nil)
				req.Header.Set("HX-Request", "true")
				for i := 0; i < b.N; i++ {
					resp, _ := c.send(b, req.Clone(context.Background()))
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}

const perPageForBench = 50

func seedClients(b *testing.B, e *env, n int) (*client, *model.User) {
	b.Helper()
	email := fmt.Sprintf("owner%d@example.com", n)
	u := newUser(b, e, email, model.RoleUser)
	ctx := context.Background()
	const batch = 5000
	for i := 0; i < n; i += batch {
		var rows []store.ImportRow
		for j := i; j < i+batch && j < n; j++ {
			rows = append(rows, store.ImportRow{Email: fmt.Sprintf("person%06d@example.com", j), FullName: fmt.Sprintf("Person %d", j),
				Comment: strings.Repeat("note ", j%5)})
		}
		if _, err := e.store.UpsertClients(ctx, u.ID, rows); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.db.ExecContext(ctx, "VACUUM ANALYZE clients"); err != nil {
		b.Fatal(err)
	}
	c := e.client()
	resp, body := login(b, c, email, goodPassword)
	if resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	return c, u
}

// BenchmarkStats measures GET /stats (figures, the 30-day chart, the
// per-mailing table) for an owner with 1,000,000 attempts over 90 days,
// cold (the statistics cache renewed before each request, so everything
// comes from PostgreSQL) and cached, against the same page of an owner
// with 1,000 attempts as the baseline, in one run:
//
//	scripts/test ./app/web -run '^$' -bench Stats -benchtime 200x
//
// Figures are recorded in docs/benchmarks.md.
func BenchmarkStats(b *testing.B) {
	e := newEnv(b)
	svc := &stats.Service{Store: e.store, Redis: e.redis, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, size := range []struct{ clients, runs int }{{100, 1}, {10000, 10}} {
		n := size.clients * size.runs * 10
		c, u := seedAttempts(b, e, size.clients, size.runs)
		// What the chart's query would cost counting attempts themselves
		// (the pre-aggregated attempt_counts exist because of this).
		b.Run(fmt.Sprintf("attempts-per-day-from-attempts/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var rows []struct {
					Day time.Time `bun:"day"`
					OK  int64     `bun:"ok"`
					Bad int64     `bun:"bad"`
				}
				err := e.db.NewRaw(`SELECT (a.attempted_at AT TIME ZONE 'UTC')::date AS day,
						count(*) FILTER (WHERE a.status = 'success') AS ok, count(*) FILTER (WHERE a.status = 'failure') AS bad
					FROM attempts AS a JOIN mailings AS m ON m.id = a.mailing_id
					WHERE m.owner_id = ? AND a.attempted_at >= now() - interval '30 days' GROUP BY 1`, u.ID).Scan(context.Background(), &rows)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, cold := range []bool{true, false} {
			name := "cached"
			if cold {
				name = "cold"
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				req, _ := http.NewRequest(http.MethodGet, "/stats", nil)
				c.send(b, req.Clone(context.Background())) // fill the cache
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if cold {
						b.StopTimer()
						svc.Changed(context.Background(), u.ID)
						b.StartTimer()
					}
					resp, body := c.send(b, req.Clone(context.Background()))
					if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="chart"`) {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}

// seedAttempts gives a new owner clients clients and 10 mailings with runs
// runs each, every run sending to every client (one in twenty failing),
// spread over the last 90 days: clients × runs × 10 attempts.
func seedAttempts(b *testing.B, e *env, clients, runs int) (*client, *model.User) {
	b.Helper()
	email := fmt.Sprintf("sender%d@example.com", clients*runs)
	u := newUser(b, e, email, model.RoleUser)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO clients (owner_id, email, full_name) SELECT ?0, 'c' || g || '@example.com', 'Client ' || g FROM generate_series(1, ?1) AS g`,
		`INSERT INTO messages (owner_id, subject, body) VALUES (?0, 'News', 'Hello')`,
		`INSERT INTO mailings (owner_id, message_id, starts_at, ends_at, repeat, status)
			SELECT ?0, (SELECT id FROM messages WHERE owner_id = ?0), now() - interval '91 days', now() + interval '1 day', 'daily', 'running'
			FROM generate_series(1, 10)`,
		`INSERT INTO runs (mailing_id, trigger, started_at, finished_at)
			SELECT m.id, 'manual', now() - ((m.id % 10) * 9 + g) * interval '1 day', now() - ((m.id % 10) * 9 + g) * interval '1 day' + interval '1 hour'
			FROM mailings AS m CROSS JOIN generate_series(0, ?2 - 1) AS g WHERE m.owner_id = ?0`,
		`INSERT INTO attempts (run_id, mailing_id, client_id, email, status, code, response, tries, attempted_at)
			SELECT r.id, r.mailing_id, c.id, c.email,
				CASE WHEN c.id % 20 = 0 THEN 'failure' ELSE 'success' END,
				CASE WHEN c.id % 20 = 0 THEN 550 ELSE 250 END, '250 2.0.0 OK', 1,
				r.started_at + (c.id % 3600) * interval '1 second'
			FROM runs AS r JOIN mailings AS m ON m.id = r.mailing_id CROSS JOIN clients AS c
			WHERE m.owner_id = ?0 AND c.owner_id = ?0 AND m.id % 10 = ?3`,
		`ANALYZE`,
	} {
		// The attempts go in a tenth at a time, within the driver's timeout.
		for part := range 10 {
			if _, err := e.db.NewRaw(q, u.ID, clients, runs, part).Exec(ctx); err != nil {
				b.Fatal(err)
			}
			if !strings.Contains(q, "?3") {
				break
			}
		}
	}
	var n int
	if err := e.db.NewRaw("SELECT count(*) FROM attempts WHERE mailing_id IN (SELECT id FROM mailings WHERE owner_id = ?)", u.ID).Scan(ctx, &n); err != nil || n != clients*runs*10 {
		b.Fatalf("seeded %d attempts (%v), want %d", n, err, clients*runs*10)
	}
	c := e.client()
	resp, body := login(b, c, email, goodPassword)
	if resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	return c, u
}
