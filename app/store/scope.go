package store

import (
	"context"
	"strings"

	"github.com/uptrace/bun"
)

// Scope says whose objects a query may see. A user's scope is their own
// objects; a manager's read scope may be everyone's, optionally narrowed to
// one owner. Writes always use Own: nobody changes another user's objects.
type Scope struct {
	UserID int64 // the owner whose objects are visible, unless All
	All    bool  // every owner's objects (managers, read-only)
	Owner  int64 // with All: only this owner's objects (0 = everyone)
}

// Own is the scope of one user's own objects.
func Own(userID int64) Scope { return Scope{UserID: userID} }

// Everyone is a manager's read scope, narrowed to owner when it is not 0.
func Everyone(owner int64) Scope { return Scope{All: true, Owner: owner} }

// where restricts q to the scope on the owner column col.
func (sc Scope) where(q *bun.SelectQuery, col string) *bun.SelectQuery {
	switch {
	case !sc.All:
		return q.Where("? = ?", bun.Ident(col), sc.UserID)
	case sc.Owner != 0:
		return q.Where("? = ?", bun.Ident(col), sc.Owner)
	}
	return q
}

// Page is one page of a list.
type Page struct {
	Number  int // 1-based
	PerPage int
	Total   int
}

// Offset of the page's first row.
func (p Page) Offset() int { return (p.Number - 1) * p.PerPage }

// Pages is how many pages the list has (at least 1).
func (p Page) Pages() int {
	if p.Total <= 0 {
		return 1
	}
	return (p.Total + p.PerPage - 1) / p.PerPage
}

// SetTotal records how many rows the list has, and moves a page number
// past the last page to the last page: a link kept from a longer list
// (rows deleted since, a narrower search) shows its end, not nothing.
func (p *Page) SetTotal(total int) {
	p.Total = total
	p.Number = min(p.Number, p.Pages())
}

// scanPage reads one page of q's rows (in the caller's order) and counts
// them all. A page past the end is read as the last page.
func scanPage(ctx context.Context, q *bun.SelectQuery, page *Page) error {
	total, err := q.Limit(int64(page.PerPage)).Offset(int64(page.Offset())).ScanAndCount(ctx)
	if err != nil {
		return err
	}
	requested := page.Number
	page.SetTotal(int(total))
	if page.Number < requested && total > 0 {
		return q.Offset(int64(page.Offset())).Scan(ctx)
	}
	return nil
}

// pageIDs counts the rows from selects (one table, filtered) into page,
// and returns the ids of the page's rows, newest first, for the list's
// own query to read by "id IN (?)": its OFFSET skips index entries, not
// rows with what the list adds to them (a count per row, a join).
func pageIDs(ctx context.Context, page *Page, from func() *bun.SelectQuery, id string) (*bun.SelectQuery, error) {
	total, err := from().Count(ctx)
	if err != nil {
		return nil, err
	}
	page.SetTotal(int(total))
	return page.limit(from().Column(id).OrderExpr(id + " DESC")), nil
}

// limit restricts q to the page's rows (after SetTotal moved a page past
// the end to the last page).
func (p Page) limit(q *bun.SelectQuery) *bun.SelectQuery {
	return q.Limit(int64(p.PerPage)).Offset(int64(p.Offset()))
}

// NewPage normalizes a requested page number.
func NewPage(number, perPage int) Page {
	if number < 1 {
		number = 1
	}
	return Page{Number: number, PerPage: perPage}
}

// likePattern makes a case-insensitive substring pattern of a search, with
// LIKE's wildcards escaped.
func likePattern(q string) string {
	q = strings.ToLower(strings.TrimSpace(q))
	// No stored text holds a NUL (forms refuse it), and PostgreSQL refuses
	// one in a parameter.
	r := strings.NewReplacer("\x00", "", `\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}
