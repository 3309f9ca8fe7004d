package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"rassylka/app/model"
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
		if _, _, err := e.store.UpsertClients(ctx, u.ID, rows); err != nil {
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
