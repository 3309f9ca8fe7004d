package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
)

// ClientRow is a client as lists show it, with the owner's email for
// managers' all-users lists.
type ClientRow struct {
	model.Client `bun:",extend"`
	OwnerEmail   string `bun:"owner_email"`
}

// clientSearch is what a search of the clients (alias a) matches, the
// expression of their search index.
func clientSearch(a string) string {
	return "lower(" + a + ".email || ' ' || " + a + ".full_name || ' ' || " + a + ".comment)"
}

// fewMatches is how many matches of a search ListClients sorts itself:
// up to it, all the matches are read from the search index and the page
// taken from them; beyond it, matches are dense enough to be met early
// walking the clients newest first.
const fewMatches = 5000

// ClientState narrows a list of clients to those who unsubscribed, or
// those whose address bounced ("": everyone).
type ClientState string

// Client states.
const (
	ClientsUnsubscribed ClientState = "unsubscribed"
	ClientsBounced      ClientState = "bounced"
)

// ListClients returns one page of the scope's clients in the state (""
// any), newest first, matching q (a substring of email, name or comment)
// when it is not empty. The states are found on partial indexes of their
// own.
//
// The page's ids are skipped to on an index (a deep page reads index
// entries, not rows) and only the page's rows are fetched. A search with
// few matches reads them all from the search index and sorts them: left to
// itself the planner walked the clients newest first for the page's 50,
// which for matches among the oldest clients read nearly all of them.
func (s *Store) ListClients(ctx context.Context, sc Scope, state ClientState, q string, page Page) ([]ClientRow, Page, error) {
	search := strings.TrimSpace(q) != ""
	filter := func(query *bun.SelectQuery) *bun.SelectQuery {
		sc.where(query, "c.owner_id")
		clientFilter(query, "c", state, q)
		return query
	}
	// The count needs no join: it runs on the owner index (or the search
	// index) alone.
	total, err := filter(s.db.NewSelect().TableExpr("clients AS c")).Count(ctx)
	if err != nil {
		return nil, page, dbErr("count clients", err)
	}
	page.SetTotal(int(total))
	ids := filter(s.db.NewSelect().TableExpr("clients AS c").Column("c.id"))
	if search && total <= fewMatches {
		// A materialized CTE is read whole: no walk in id order can stop early.
		ids = s.db.NewSelect().WithQuery(bun.NewWithQuery("found", ids).Materialized()).
			TableExpr("found").Column("id")
	}
	var rows []ClientRow
	err = s.db.NewSelect().Model(&rows).
		ModelTableExpr("clients AS c").
		ColumnExpr("c.*").
		ColumnExpr("u.email AS owner_email").
		Join("JOIN users AS u ON u.id = c.owner_id").
		Where("c.id IN (?)", page.limit(ids.OrderExpr("id DESC"))).
		OrderExpr("c.id DESC").Scan(ctx)
	if err != nil {
		return nil, page, dbErr("list clients", err)
	}
	return rows, page, nil
}

// ClientsAmong returns up to limit of the owner's clients whose ids are
// among ids (others' and deleted ones left out), newest first, from the
// one before id before (0: from the newest), and, for the first page
// only, how many there are in all: the recipients a mailing form has
// chosen so far. The next page starts from the last client of the one
// before, not at an offset: the choice shrinks as recipients are unticked
// on the page shown.
func (s *Store) ClientsAmong(ctx context.Context, ownerID int64, ids []int64, before int64, limit int) ([]model.Client, int, error) {
	var rows []model.Client
	q := s.db.NewSelect().Model(&rows).
		Where("owner_id = ?", ownerID).
		Where("id = ANY(?::bigint[])", pgdialect.Array(ids))
	var total int
	if before > 0 {
		q = q.Where("id < ?", before)
	} else {
		n, err := q.Count(ctx)
		if err != nil {
			return nil, 0, dbErr("count clients among", err)
		}
		total = int(n)
	}
	if err := q.OrderExpr("id DESC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, 0, dbErr("clients among", err)
	}
	return rows, total, nil
}

// ClientMail is an attempt to mail a client, with the subject its run
// sent (or, for a run from before that was kept, its message's now).
type ClientMail struct {
	MailingID   int64               `bun:"mailing_id"`
	Subject     string              `bun:"subject"`
	Email       string              `bun:"email"`
	Status      model.AttemptStatus `bun:"status"`
	Response    string              `bun:"response"`
	Tries       int                 `bun:"tries"`
	AttemptedAt time.Time           `bun:"attempted_at"`
}

// MailsOfClient returns one page of the attempts to mail a client, newest
// first. A client has at most one attempt a run: the attempts' client
// index finds them all, and only the page's rows are joined to their
// mailings.
func (s *Store) MailsOfClient(ctx context.Context, clientID int64, page Page) ([]ClientMail, Page, error) {
	var total int
	if err := s.db.NewRaw(`SELECT count(*) FROM attempts WHERE client_id = ?`, clientID).Scan(ctx, &total); err != nil {
		return nil, page, dbErr("mails of client", err)
	}
	page.SetTotal(total)
	var rows []ClientMail
	err := s.db.NewRaw(`SELECT a.mailing_id, coalesce(r.subject, msg.subject) AS subject, a.email, a.status, a.response, a.tries, a.attempted_at
		FROM (SELECT * FROM attempts WHERE client_id = ? ORDER BY id DESC LIMIT ? OFFSET ?) AS a
		JOIN mailings AS m ON m.id = a.mailing_id JOIN messages AS msg ON msg.id = m.message_id
		LEFT JOIN runs AS r ON r.id = a.run_id
		ORDER BY a.id DESC`, clientID, page.PerPage, page.Offset()).Scan(ctx, &rows)
	if err != nil {
		return nil, page, dbErr("mails of client", err)
	}
	return rows, page, nil
}

// ClientByID returns a client visible in the scope.
func (s *Store) ClientByID(ctx context.Context, sc Scope, id int64) (*ClientRow, error) {
	row := new(ClientRow)
	query := s.db.NewSelect().Model(row).
		ModelTableExpr("clients AS c").
		ColumnExpr("c.*").
		ColumnExpr("u.email AS owner_email").
		Join("JOIN users AS u ON u.id = c.owner_id").
		Where("c.id = ?", id)
	sc.where(query, "c.owner_id")
	if err := query.Scan(ctx); err != nil {
		return nil, dbErr("client by id", err)
	}
	return row, nil
}

// CreateClient inserts c; an email already in the owner's list, in any
// letter case, is ErrConflict. An address that unsubscribed from the owner
// before (a client since deleted) is added unsubscribed.
func (s *Store) CreateClient(ctx context.Context, c *model.Client) error {
	_, err := s.db.NewInsert().Model(c).
		ExcludeColumn("id", "created_at", "updated_at", "bounced_at").
		Value("unsubscribed_at", unsubscribedAt, c.OwnerID, c.Email).
		Returning("*").Exec(ctx)
	return dbErr("create client", err)
}

// unsubscribedAt is when the address (the second argument) unsubscribed
// from the owner (the first), or NULL.
const unsubscribedAt = `(SELECT u.unsubscribed_at FROM unsubscribes u WHERE u.owner_id = ? AND u.email = lower(?))`

// UpdateClient saves the email, name and comment of the owner's client.
// With c.UpdatedAt set (the version a form was opened on), one changed
// since is not (ErrChanged, with c.UpdatedAt set to its version now).
func (s *Store) UpdateClient(ctx context.Context, ownerID int64, c *model.Client) error {
	version := c.UpdatedAt
	q := s.db.NewUpdate().Model(c).
		Set("email = ?", c.Email).
		Set("full_name = ?", c.FullName).
		Set("comment = ?", c.Comment).
		// A hard bounce is the old address's: a corrected one is mailable.
		Set("bounced_at = CASE WHEN lower(email) = lower(?) THEN bounced_at END", c.Email).
		// An unsubscription is the person's: it stays with the client (and
		// marks its new address: see unsubscribes), and a new address that
		// unsubscribed before brings its own. The address kept is not
		// looked up: the look is as of the statement's start, and the
		// recipient's "Subscribe again" committed meanwhile (which this
		// waited for) would be undone by a mark it removed.
		Set("unsubscribed_at = coalesce(unsubscribed_at, CASE WHEN lower(email) <> lower(?) THEN "+unsubscribedAt+" END)", c.Email, ownerID, c.Email).
		Set("updated_at = now()").
		Where("id = ? AND owner_id = ?", c.ID, ownerID)
	if !version.IsZero() {
		q.Where("updated_at = ?", version)
	}
	err := q.Returning("*").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) && !version.IsZero() {
		var cur []model.Client
		if xerr := s.db.NewSelect().Model(&cur).Where("id = ? AND owner_id = ?", c.ID, ownerID).Scan(ctx); xerr == nil && len(cur) == 1 {
			if cur[0].Email == c.Email && cur[0].FullName == c.FullName && cur[0].Comment == c.Comment {
				*c = cur[0] // the save made already (a form sent twice): done
				return nil
			}
			c.UpdatedAt = cur[0].UpdatedAt
			return ErrChanged
		}
	}
	return dbErr("update client", err)
}

// DeleteClient deletes the owner's client (its attempts stay, without it).
func (s *Store) DeleteClient(ctx context.Context, ownerID, id int64) error {
	res, err := s.db.NewDelete().Model((*model.Client)(nil)).Where("id = ? AND owner_id = ?", id, ownerID).Exec(ctx)
	if err != nil {
		return dbErr("delete client", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete client: %w", ErrNotFound)
	}
	return nil
}

// ClearBounces clears the hard bounce of every client of the owner, and
// returns how many there were.
func (s *Store) ClearBounces(ctx context.Context, ownerID int64) (int64, error) {
	res, err := s.db.NewUpdate().Model((*model.Client)(nil)).
		Set("bounced_at = NULL").Set("updated_at = now()").
		Where("owner_id = ? AND bounced_at IS NOT NULL", ownerID).Exec(ctx)
	if err != nil {
		return 0, dbErr("clear bounces", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ClearBounce makes a hard-bounced client mailable again.
func (s *Store) ClearBounce(ctx context.Context, ownerID, id int64) error {
	res, err := s.db.NewUpdate().Model((*model.Client)(nil)).
		Set("bounced_at = NULL").Set("updated_at = now()").
		Where("id = ? AND owner_id = ?", id, ownerID).Exec(ctx)
	if err != nil {
		return dbErr("clear bounce", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("clear bounce: %w", ErrNotFound)
	}
	return nil
}

// ClientIDs returns the ids of the owner's clients matching q (all of them
// when q is empty), newest first, at most limit.
func (s *Store) ClientIDs(ctx context.Context, ownerID int64, q string, limit int) ([]int64, error) {
	var ids []int64
	query := s.db.NewSelect().TableExpr("clients AS c").Column("c.id").Where("c.owner_id = ?", ownerID)
	clientFilter(query, "c", "", q)
	if err := query.OrderExpr("c.id DESC").Limit(int64(limit)).Scan(ctx, &ids); err != nil {
		return nil, dbErr("client ids", err)
	}
	return ids, nil
}

// EachClient calls fn for every client of the owner, oldest first, reading
// them in batches by keyset so memory stays flat however long the list.
func (s *Store) EachClient(ctx context.Context, ownerID int64, state ClientState, q string, fn func(*model.Client) error) error {
	return eachByID(ctx, s.db, "each client", func(query *bun.SelectQuery) {
		query.Where("client.owner_id = ?", ownerID)
		clientFilter(query, "client", state, q)
	}, func(c *model.Client) int64 { return c.ID }, fn)
}

// clientFilter keeps, of the clients (alias a) query reads, those in state
// and matching the search q (all when empty), as the clients list does.
func clientFilter(query *bun.SelectQuery, a string, state ClientState, q string) {
	switch state {
	case ClientsUnsubscribed:
		query.Where(a + ".unsubscribed_at IS NOT NULL")
	case ClientsBounced:
		query.Where(a + ".bounced_at IS NOT NULL")
	}
	if strings.TrimSpace(q) != "" {
		query.Where(clientSearch(a)+" LIKE ?", likePattern(q))
	}
}

// eachByID calls fn for every row of T (a table's model) that where keeps,
// oldest first, reading them a thousand at a time by keyset on the id, so
// that memory stays flat however many there are.
func eachByID[T any](ctx context.Context, db bun.IDB, what string, where func(*bun.SelectQuery), id func(*T) int64, fn func(*T) error) error {
	const batch = 1000
	var after int64
	for {
		var rows []T
		q := db.NewSelect().Model(&rows).Where("id > ?", after)
		where(q)
		if err := q.OrderExpr("id").Limit(batch).Scan(ctx); err != nil {
			return dbErr(what, err)
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if len(rows) < batch {
			return nil
		}
		after = id(&rows[len(rows)-1])
	}
}

// ImportRow is one valid row of a CSV import.
type ImportRow struct {
	Email, FullName, Comment string
	// UnsubscribedAt marks the client unsubscribed (an import never clears
	// the mark).
	UnsubscribedAt *time.Time
}

// ImportColumns says which of the optional columns an import has: an
// existing client keeps the fields the file does not name, and those the
// file leaves blank.
type ImportColumns struct {
	Name, Comment bool
}

// UpsertClients creates the owner's clients of rows, or updates the name
// and comment of those whose email (in any letter case) is already listed
// (a blank one is kept: a file's empty cells do not wipe what the owner
// wrote), in one statement. Emails must be unique within rows. It returns how many
// were created and updated; the others were listed already as they are
// (left alone: not even their time of change moves).
func (s *Store) UpsertClients(ctx context.Context, ownerID int64, rows []ImportRow) (Upserted, error) {
	return s.UpsertClientsColumns(ctx, ownerID, rows, ImportColumns{Name: true, Comment: true})
}

// Upserted counts what an upsert of clients did.
type Upserted struct {
	Created, Updated int
	// Unsubscribed counts the clients created unsubscribed: by the file,
	// or because their address had unsubscribed before.
	Unsubscribed int
	// UpdatedUnsubscribed counts the clients listed already that the
	// file marked unsubscribed.
	UpdatedUnsubscribed int
}

// UpsertClientsColumns is UpsertClients updating only the columns cols
// names.
func (s *Store) UpsertClientsColumns(ctx context.Context, ownerID int64, rows []ImportRow, cols ImportColumns) (Upserted, error) {
	var n Upserted
	if len(rows) == 0 {
		return n, nil
	}
	emails := make([]string, len(rows))
	names := make([]string, len(rows))
	comments := make([]string, len(rows))
	unsubscribed := make([]string, len(rows))
	for i, r := range rows {
		emails[i], names[i], comments[i] = r.Email, r.FullName, r.Comment
		if r.UnsubscribedAt != nil {
			unsubscribed[i] = r.UnsubscribedAt.UTC().Format(time.RFC3339Nano)
		}
	}
	// A new client whose address unsubscribed from the owner before is
	// added unsubscribed; an unsubscription the file brings marks its
	// address too, as the recipient's own does (see unsubscribes).
	// A client listed already takes only the file's: the address's mark,
	// read as of the statement's start, would undo the recipient's
	// "Subscribe again" committed while the statement ran (an unsubscribed
	// client keeps its own time either way). What differs from the mark is
	// the file's; what equals it is the mark, or the same time again.
	var out []struct {
		Created, Unsubscribed bool
		WasSubscribed         bool // before the statement (false when created)
	}
	const fromFile = `(EXCLUDED.unsubscribed_at IS NOT NULL AND EXCLUDED.unsubscribed_at IS DISTINCT FROM
		(SELECT x.unsubscribed_at FROM unsubscribes x WHERE x.owner_id = ?2 AND x.email = lower(EXCLUDED.email)))`
	err := s.db.NewRaw(`
		INSERT INTO clients (owner_id, email, full_name, comment, unsubscribed_at)
		SELECT ?2, e, n, c, coalesce(NULLIF(u, '')::timestamptz,
				(SELECT x.unsubscribed_at FROM unsubscribes x WHERE x.owner_id = ?2 AND x.email = lower(e)))
			FROM unnest(?3::text[], ?4::text[], ?5::text[], ?6::text[]) AS r(e, n, c, u)
		ON CONFLICT (owner_id, lower(email)) DO UPDATE
			SET unsubscribed_at = coalesce(clients.unsubscribed_at, CASE WHEN `+fromFile+` THEN EXCLUDED.unsubscribed_at END),
				full_name = CASE WHEN ?0 AND EXCLUDED.full_name <> '' THEN EXCLUDED.full_name ELSE clients.full_name END,
				comment = CASE WHEN ?1 AND EXCLUDED.comment <> '' THEN EXCLUDED.comment ELSE clients.comment END,
				updated_at = now()
			WHERE (clients.unsubscribed_at IS NULL AND `+fromFile+`)
				OR (?0 AND EXCLUDED.full_name <> '' AND clients.full_name IS DISTINCT FROM EXCLUDED.full_name)
				OR (?1 AND EXCLUDED.comment <> '' AND clients.comment IS DISTINCT FROM EXCLUDED.comment)
		RETURNING (xmax = 0) AS created, unsubscribed_at IS NOT NULL AS unsubscribed,
			-- the row as the statement found it (a subquery does not see its change)
			coalesce((SELECT o.unsubscribed_at IS NULL FROM clients AS o WHERE o.id = clients.id), false) AS was_subscribed`,
		cols.Name, cols.Comment, ownerID, pgdialect.Array(emails), pgdialect.Array(names), pgdialect.Array(comments),
		pgdialect.Array(unsubscribed)).Scan(ctx, &out)
	if err != nil {
		return n, dbErr("upsert clients", err)
	}
	for _, r := range out {
		switch {
		case r.Created && r.Unsubscribed:
			n.Created++
			n.Unsubscribed++
		case r.Created:
			n.Created++
		default:
			n.Updated++
			if r.Unsubscribed && r.WasSubscribed {
				n.UpdatedUnsubscribed++
			}
		}
	}
	return n, nil
}

// Unsubscribe marks an address of the owner's list unsubscribed (once;
// the first time is kept): its client, if the list has one, and the
// address itself (see unsubscribes), so that a client deleted and added
// again, or given the address later, is added unsubscribed.
func (s *Store) Unsubscribe(ctx context.Context, ownerID int64, email string) error {
	_, err := s.db.NewRaw(`
		WITH c AS (
			UPDATE clients SET unsubscribed_at = coalesce(unsubscribed_at, now()), updated_at = now()
			WHERE owner_id = ?0 AND lower(email) = lower(?1)
		)
		INSERT INTO unsubscribes (owner_id, email, unsubscribed_at) VALUES (?0, lower(?1), now())
		ON CONFLICT DO NOTHING`, ownerID, email).Exec(ctx)
	return dbErr("unsubscribe", err)
}

// ClientByAddress returns the owner's client with the address, in any
// letter case.
func (s *Store) ClientByAddress(ctx context.Context, ownerID int64, email string) (*model.Client, error) {
	c := new(model.Client)
	err := s.db.NewSelect().Model(c).Where("owner_id = ? AND lower(email) = lower(?)", ownerID, email).Scan(ctx)
	if err != nil {
		return nil, dbErr("client by address", err)
	}
	return c, nil
}

// IsUnsubscribed reports whether an address of the owner's list is
// unsubscribed.
func (s *Store) IsUnsubscribed(ctx context.Context, ownerID int64, email string) (bool, error) {
	var yes bool
	err := s.db.NewRaw(`SELECT EXISTS (SELECT FROM unsubscribes WHERE owner_id = ? AND email = lower(?))`, ownerID, email).Scan(ctx, &yes)
	return yes, dbErr("is unsubscribed", err)
}

// Resubscribe clears an address's unsubscription, and its client's: the
// recipient's own choice, from the link in a mail (the owner has no way
// to). ErrNotFound: the address was not unsubscribed.
func (s *Store) Resubscribe(ctx context.Context, ownerID int64, email string) error {
	var n int
	err := s.db.NewRaw(`
		WITH c AS (
			UPDATE clients SET unsubscribed_at = NULL, updated_at = now()
			WHERE owner_id = ?0 AND lower(email) = lower(?1) AND unsubscribed_at IS NOT NULL
			RETURNING 1
		), unmark AS (
			DELETE FROM unsubscribes WHERE owner_id = ?0 AND email = lower(?1)
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM unmark)`, ownerID, email).Scan(ctx, &n)
	if err != nil {
		return dbErr("resubscribe", err)
	}
	if n == 0 {
		return fmt.Errorf("resubscribe: %w", ErrNotFound)
	}
	return nil
}

// RetryableFailures counts a run's failures with a temporary or unknown
// cause, to clients still among the recipients and still mailable: what
// "Retry failed" sends again; and of them, the sends a crash cut off,
// which may have arrived.
func (s *Store) RetryableFailures(ctx context.Context, runID int64) (n, cut int, err error) {
	err = s.db.NewRaw(`SELECT count(*), count(*) FILTER (WHERE f.response = ?) FROM attempts AS f WHERE f.run_id = ? AND `+retryableMailable,
		interrupted, runID).Scan(ctx, &n, &cut)
	return n, cut, dbErr("retryable failures", err)
}
