package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
)

// ErrDisabledByManager refuses an owner's switching on a mailing that a
// manager switched off: the manager's word stands until a manager's.
var ErrDisabledByManager = errors.New("switched off by a manager")

// ErrNoRecipients means none of the chosen recipients exists any more
// (deleted since the form was opened): the mailing would mail no one.
var ErrNoRecipients = errors.New("no chosen recipient exists")

// ErrMessageGone refuses a mailing whose message is no message of its
// owner's: deleted since the form that chose it was opened.
var ErrMessageGone = errors.New("the chosen message does not exist")

// lockMessage holds the owner's message for a mailing about to name it:
// one deleted meanwhile is ErrMessageGone, not a broken key, and one
// being deleted waits for the mailing (and then is in use).
func (s *Store) lockMessage(ctx context.Context, ownerID, messageID int64) error {
	var ids []int64
	if err := s.db.NewRaw("SELECT id FROM messages WHERE id = ? AND owner_id = ? FOR KEY SHARE", messageID, ownerID).Scan(ctx, &ids); err != nil {
		return dbErr("lock message", err)
	}
	if len(ids) == 0 {
		return ErrMessageGone
	}
	return nil
}

// MailingRow is a mailing as lists and its page show it.
type MailingRow struct {
	model.Mailing   `bun:",extend"`
	Subject         string `bun:"subject"`
	OwnerEmail      string `bun:"owner_email"`
	Recipients      int    `bun:"recipients"`
	DisabledByEmail string `bun:"disabled_by_email"`
	// DisabledByManager: a manager other than its owner switched it off,
	// and only a manager may switch it on again.
	DisabledByManager bool `bun:"disabled_by_manager"`
	// OwnerBlocked: a manager blocked its owner, and it sends nothing
	// until they are unblocked.
	OwnerBlocked bool `bun:"owner_blocked"`
}

// disabledByManager is the condition on a mailing (alias g) that a manager
// other than its owner switched it off: then only a manager may switch it
// on again.
const disabledByManager = `EXISTS (SELECT 1 FROM users AS dm WHERE dm.id = g.disabled_by AND dm.role = 'manager' AND dm.id <> g.owner_id)`

// statusNow is a mailing's (alias g) status as it stands: finished once
// its window has closed. The worker's reconciler records that within a
// minute (FinishEnded), or when it next runs; lists, pages and figures do
// not wait for it.
const statusNow = `CASE WHEN g.status <> 'finished' AND g.ends_at <= now() THEN 'finished' ELSE g.status END`

// settle gives r the status it has now (see statusNow).
func (r *MailingRow) settle(now time.Time) {
	if r.Status != model.StatusFinished && !now.Before(r.EndsAt) {
		r.Status = model.StatusFinished
	}
}

// Status filters of mailing lists: a disabled mailing shows as disabled
// whatever its status.
const (
	FilterDisabled = "disabled"
)

func (s *Store) mailingQuery(dest any) *bun.SelectQuery {
	return s.db.NewSelect().Model(dest).
		ModelTableExpr("mailings AS g").
		ColumnExpr("g.*").
		ColumnExpr("m.subject").
		ColumnExpr("u.email AS owner_email").
		ColumnExpr("(SELECT count(*) FROM mailing_recipients WHERE mailing_id = g.id) AS recipients").
		ColumnExpr("coalesce(d.email, '') AS disabled_by_email").
		ColumnExpr(disabledByManager + " AS disabled_by_manager").
		ColumnExpr("u.blocked_at IS NOT NULL AS owner_blocked").
		Join("JOIN messages AS m ON m.id = g.message_id").
		Join("JOIN users AS u ON u.id = g.owner_id").
		Join("LEFT JOIN users AS d ON d.id = g.disabled_by")
}

// ListMailings returns one page of the scope's mailings, newest first,
// filtered by status (created, running, finished or disabled) and by a
// search q in their message's subject when given.
//
// The page's ids are chosen first and only its rows are read with what
// they add: the recipients' count, a scan of each mailing's recipients,
// was otherwise taken for every row an OFFSET skips too (page 20 counted
// the recipients of 1,000 mailings).
func (s *Store) ListMailings(ctx context.Context, sc Scope, status, q string, page Page) ([]MailingRow, Page, error) {
	now := time.Now() // the rows' status is settled at the same instant
	filter := func(query *bun.SelectQuery) *bun.SelectQuery {
		sc.where(query, "g.owner_id")
		if strings.TrimSpace(q) != "" {
			query.Join("JOIN messages AS m ON m.id = g.message_id").Where("lower(m.subject) LIKE ?", likePattern(q))
		}
		switch status {
		case "":
		case FilterDisabled:
			query.Where("g.disabled_at IS NOT NULL")
		case string(model.StatusFinished): // the index's status, or an end passed (see statusNow)
			query.Where("(g.status = 'finished' OR g.ends_at <= ?) AND g.disabled_at IS NULL", now)
		default:
			query.Where("g.status = ? AND g.ends_at > ? AND g.disabled_at IS NULL", status, now)
		}
		return query
	}
	ids, err := pageIDs(ctx, &page, func() *bun.SelectQuery { return filter(s.db.NewSelect().TableExpr("mailings AS g")) }, "g.id")
	if err != nil {
		return nil, page, dbErr("list mailings", err)
	}
	var rows []MailingRow
	if err := s.mailingQuery(&rows).Where("g.id IN (?)", ids).OrderExpr("g.id DESC").Scan(ctx); err != nil {
		return nil, page, dbErr("list mailings", err)
	}
	for i := range rows {
		rows[i].settle(now)
	}
	return rows, page, nil
}

// MailingByID returns a mailing visible in the scope.
func (s *Store) MailingByID(ctx context.Context, sc Scope, id int64) (*MailingRow, error) {
	row := new(MailingRow)
	query := s.mailingQuery(row).Where("g.id = ?", id)
	sc.where(query, "g.owner_id")
	if err := query.Scan(ctx); err != nil {
		return nil, dbErr("mailing by id", err)
	}
	row.settle(time.Now())
	return row, nil
}

// CreateMailing inserts m with its recipients, all of which must be clients
// of m's owner, in one transaction.
//
// With m.FormKey set, a mailing the same form created already, with the
// same settings and recipients, is not created again (ErrDone, with m set
// to it). Sent again with other settings (its page restored by Back and
// changed), the form creates another mailing.
func (s *Store) CreateMailing(ctx context.Context, m *model.Mailing, recipients []int64) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.lockMessage(ctx, m.OwnerID, m.MessageID); err != nil {
			return err
		}
		prev, err := formCreated(ctx, tx, "mailings", m.OwnerID, m.FormKey, func(prev *model.Mailing) (bool, error) {
			return tx.sameMailing(ctx, prev, m, recipients)
		})
		if err != nil {
			return err
		}
		if prev != nil {
			*m = *prev
			return ErrDone
		}
		_, err = tx.db.NewInsert().Model(m).
			ExcludeColumn("id", "created_at", "updated_at", "edited_at", "disabled_at", "disabled_by").
			Returning("*").Exec(ctx)
		if err != nil {
			return dbErr("create mailing", err)
		}
		return tx.setRecipients(ctx, m.OwnerID, m.ID, recipients, false)
	})
}

// sameMailing reports whether mailing m, as a form posted it with
// recipients (nil: not posted), is what cur is: the same message and
// settings, and the same recipients.
func (s *Store) sameMailing(ctx context.Context, cur, m *model.Mailing, recipients []int64) (bool, error) {
	if cur.MessageID != m.MessageID || !cur.StartsAt.Equal(m.StartsAt) || !cur.EndsAt.Equal(m.EndsAt) || cur.Repeat != m.Repeat {
		return false, nil
	}
	if recipients == nil {
		return true, nil
	}
	return s.sameRecipients(ctx, cur.OwnerID, cur.ID, recipients)
}

// UpdateMailing saves the changeable settings of the owner's mailing and,
// when recipients is not nil, replaces its recipients.
//
// With m.EditedAt set (the version a form was opened on), one saved since
// is not changed (ErrChanged, with m.EditedAt set to its version now),
// unless that save was this one's (the form sent twice: done, with m set to
// the mailing as it is).
func (s *Store) UpdateMailing(ctx context.Context, ownerID int64, m *model.Mailing, recipients []int64) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.lockMessage(ctx, ownerID, m.MessageID); err != nil {
			return err
		}
		version := m.EditedAt
		q := tx.db.NewUpdate().Model(m).
			Set("message_id = ?", m.MessageID).
			Set("starts_at = ?", m.StartsAt).
			Set("ends_at = ?", m.EndsAt).
			Set("repeat = ?", m.Repeat).
			Set("next_run_at = ?", m.NextRunAt).
			Set("updated_at = now()").
			Set("edited_at = now()").
			Where("id = ? AND owner_id = ? AND status = ?", m.ID, ownerID, m.Status)
		if !version.IsZero() {
			q.Where("edited_at = ?", version)
		}
		err := q.Returning("*").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			// Gone, its status changed since it was read (a run started:
			// what may change is no longer the same), or saved since the
			// form was opened.
			var cur []model.Mailing
			if xerr := tx.db.NewSelect().Model(&cur).Where("id = ? AND owner_id = ?", m.ID, ownerID).Scan(ctx); xerr == nil && len(cur) == 1 {
				if cur[0].Status != m.Status {
					return ErrConflict
				}
				c := cur[0]
				same, err := tx.sameMailing(ctx, &c, m, recipients)
				if err != nil {
					return err
				}
				if same {
					*m = c // the save made already (a form sent twice): done
					return nil
				}
				m.EditedAt = c.EditedAt
				return ErrChanged
			}
		}
		if err != nil {
			return dbErr("update mailing", err)
		}
		if recipients == nil {
			return nil
		}
		// A run's batches read the recipients as they go: the list stays
		// as it is while one sends (the UPDATE above locked the mailing,
		// and a run starts only under that lock).
		var sending bool
		if err := tx.db.NewRaw("SELECT EXISTS (SELECT 1 FROM runs WHERE mailing_id = ? AND finished_at IS NULL)", m.ID).Scan(ctx, &sending); err != nil {
			return dbErr("update mailing", err)
		}
		if sending {
			if same, err := tx.sameRecipients(ctx, ownerID, m.ID, recipients); err != nil || !same {
				return cmp.Or(err, ErrSending)
			}
			return nil
		}
		return tx.setRecipients(ctx, ownerID, m.ID, recipients, true)
	})
}

// sameRecipients reports whether ids are the mailing's recipients now. A
// client deleted since the form was opened is no change, nor is an id that
// is no client of the owner's (see setRecipients).
func (s *Store) sameRecipients(ctx context.Context, ownerID, mailingID int64, ids []int64) (bool, error) {
	current, err := s.RecipientIDs(ctx, mailingID)
	if err != nil {
		return false, err
	}
	var posted []int64
	err = s.db.NewSelect().TableExpr("clients").Column("id").
		Where("id = ANY(?::bigint[]) AND owner_id = ?", pgdialect.Array(uniqueIDs(ids)), ownerID).OrderExpr("id").Scan(ctx, &posted)
	if err != nil {
		return false, dbErr("recipients", err)
	}
	return slices.Equal(current, posted), nil
}

// setRecipients makes ids the recipients of the mailing. An id that is no
// client of the owner's (one deleted since the form that chose it was
// opened) is left out; so is another owner's client, which no form
// offers: answering otherwise would tell a forger which ids exist in
// other accounts.
func (s *Store) setRecipients(ctx context.Context, ownerID, mailingID int64, ids []int64, replace bool) error {
	ids = uniqueIDs(ids)
	if replace {
		_, err := s.db.NewDelete().Model((*model.MailingRecipient)(nil)).
			Where("mailing_id = ? AND NOT (client_id = ANY(?::bigint[]))", mailingID, pgdialect.Array(ids)).Exec(ctx)
		if err != nil {
			return dbErr("set recipients", err)
		}
	}
	var own int
	err := s.db.NewRaw(`
		WITH chosen AS (
			-- Locked: a client deleted meanwhile is left out (read as of
			-- the statement's start, its recipient row broke the key),
			-- and one being deleted waits, then takes its row with it.
			SELECT id FROM clients WHERE id = ANY(?::bigint[]) AND owner_id = ? FOR KEY SHARE
		), added AS (
			INSERT INTO mailing_recipients (mailing_id, client_id) SELECT ?, id FROM chosen
			ON CONFLICT DO NOTHING
		)
		SELECT count(*) FROM chosen`,
		pgdialect.Array(ids), ownerID, mailingID).Scan(ctx, &own)
	if err != nil {
		return dbErr("set recipients", err)
	}
	if own == 0 && len(ids) > 0 {
		return fmt.Errorf("set recipients: %d chosen: %w", len(ids), ErrNoRecipients)
	}
	return nil
}

func uniqueIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// DeleteMailing deletes the owner's mailing with its runs and attempts,
// and returns its next planned occurrence (nil: none), for the planned
// task to be cancelled.
func (s *Store) DeleteMailing(ctx context.Context, ownerID, id int64) (next *time.Time, err error) {
	err = s.db.NewDelete().Model((*model.Mailing)(nil)).Where("id = ? AND owner_id = ?", id, ownerID).
		Returning("next_run_at").Scan(ctx, &next)
	return next, dbErr("delete mailing", err)
}

// SetMailingDisabled switches a mailing of the scope off (recording who and
// when) or on again. Its owner cannot switch on what a manager switched
// off (ErrDisabledByManager); a manager (scope All) can.
func (s *Store) SetMailingDisabled(ctx context.Context, sc Scope, id, by int64, disabled bool) error {
	q := s.db.NewUpdate().Model((*model.Mailing)(nil)).ModelTableExpr("mailings AS g").Set("updated_at = now()").Where("id = ?", id)
	if disabled {
		q.Set("disabled_at = coalesce(disabled_at, now())").Set("disabled_by = coalesce(disabled_by, ?)", by)
	} else {
		q.Set("disabled_at = NULL").Set("disabled_by = NULL")
	}
	if !sc.All {
		q.Where("owner_id = ?", sc.UserID)
		if !disabled {
			q.Where("NOT " + disabledByManager)
		}
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return dbErr("set mailing disabled", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if !disabled && !sc.All {
			if _, err := s.MailingByID(ctx, sc, id); err == nil {
				return fmt.Errorf("set mailing disabled: %w", ErrDisabledByManager)
			}
		}
		return fmt.Errorf("set mailing disabled: %w", ErrNotFound)
	}
	return nil
}

// RecipientsOfMailing returns one page of a mailing's recipients; the
// caller has checked that the mailing is visible.
//
// Every recipient is a client (the key cascades), so the count and the
// page's ids are read from the recipients' key alone, and only the page's
// clients are fetched: a join of every recipient to the clients cost
// ≈ 50 ms at 100,000 recipients, for a page of 50.
func (s *Store) RecipientsOfMailing(ctx context.Context, mailingID int64, page Page) ([]model.Client, Page, error) {
	ids, err := pageIDs(ctx, &page, func() *bun.SelectQuery {
		return s.db.NewSelect().TableExpr("mailing_recipients").Where("mailing_id = ?", mailingID)
	}, "client_id")
	if err != nil {
		return nil, page, dbErr("recipients of mailing", err)
	}
	var rows []model.Client
	if err := s.db.NewSelect().Model(&rows).Where("id IN (?)", ids).OrderExpr("id DESC").Scan(ctx); err != nil {
		return nil, page, dbErr("recipients of mailing", err)
	}
	return rows, page, nil
}

// RecipientIDs lists the client ids of a mailing.
func (s *Store) RecipientIDs(ctx context.Context, mailingID int64) ([]int64, error) {
	var ids []int64
	err := s.db.NewSelect().TableExpr("mailing_recipients").Column("client_id").
		Where("mailing_id = ?", mailingID).OrderExpr("client_id").Scan(ctx, &ids)
	if err != nil {
		return nil, dbErr("recipient ids", err)
	}
	return ids, nil
}

// UnmailableRecipients counts the recipients of the owner's mailing that
// a run skips (unsubscribed or hard-bounced). It reads the owner's clients
// of that kind (partial indexes), rarely a large part of a list, not the
// recipients.
func (s *Store) UnmailableRecipients(ctx context.Context, ownerID, mailingID int64) (int, error) {
	var n int
	err := s.db.NewRaw(`SELECT count(*) FROM clients AS c
		WHERE c.owner_id = ? AND (c.unsubscribed_at IS NOT NULL OR c.bounced_at IS NOT NULL)
			AND EXISTS (SELECT 1 FROM mailing_recipients AS mr WHERE mr.mailing_id = ? AND mr.client_id = c.id)`,
		ownerID, mailingID).Scan(ctx, &n)
	if err != nil {
		return 0, dbErr("unmailable recipients", err)
	}
	return n, nil
}

// RunsPage returns one page of a mailing's runs, newest first; the caller
// has checked that the mailing is visible.
func (s *Store) RunsPage(ctx context.Context, mailingID int64, page Page) ([]model.Run, Page, error) {
	var runs []model.Run
	err := scanPage(ctx, s.db.NewSelect().Model(&runs).Where("mailing_id = ?", mailingID).OrderExpr("id DESC"), &page)
	if err != nil {
		return nil, page, dbErr("runs of mailing", err)
	}
	return runs, page, nil
}

// EachAttempt calls fn for every attempt of a mailing, of one run and of
// one status when given (runID 0, status "": all), oldest first, reading
// them in batches by keyset on the mailing's index so memory stays flat
// however many there are.
func (s *Store) EachAttempt(ctx context.Context, mailingID, runID int64, status model.AttemptStatus, fn func(*model.Attempt) error) error {
	return eachByID(ctx, s.db, "each attempt", func(q *bun.SelectQuery) {
		q.Where("mailing_id = ?", mailingID)
		if runID != 0 {
			q.Where("run_id = ?", runID)
		}
		if status != "" {
			q.Where("status = ?", status)
		}
	}, func(a *model.Attempt) int64 { return a.ID }, fn)
}

// AttemptsOfRun returns one page of a run's attempts, newest first, of one
// status when given; the caller has checked that the run is of a mailing
// visible to it. A run has at most one attempt per recipient: they are
// counted and sorted on the run's key (run, client), at most a mailing's
// 100,000 recipients.
func (s *Store) AttemptsOfRun(ctx context.Context, runID int64, status model.AttemptStatus, page Page) ([]model.Attempt, Page, error) {
	ofRun := func(q *bun.SelectQuery) *bun.SelectQuery {
		q.Where("run_id = ?", runID)
		if status != "" {
			q.Where("status = ?", status)
		}
		return q
	}
	ids, err := pageIDs(ctx, &page, func() *bun.SelectQuery { return ofRun(s.db.NewSelect().TableExpr("attempts")) }, "id")
	if err != nil {
		return nil, page, dbErr("attempts of run", err)
	}
	var rows []model.Attempt
	if err := s.db.NewSelect().Model(&rows).Where("id IN (?)", ids).OrderExpr("id DESC").Scan(ctx); err != nil {
		return nil, page, dbErr("attempts of run", err)
	}
	return rows, page, nil
}

// AttemptsOfMailing returns one page of a mailing's attempts, newest first,
// of one status when given.
//
// A mailing's attempts grow with every run, so neither the count nor the
// page reads them all: completed attempts are counted from attempt_counts
// (kept by triggers, exact), only the few pending ones from the attempts;
// the page's ids are skipped to on an index alone (a deep page reads index
// entries, not rows), and only the page's rows are fetched.
func (s *Store) AttemptsOfMailing(ctx context.Context, mailingID int64, status model.AttemptStatus, page Page) ([]model.Attempt, Page, error) {
	var counted string
	switch status {
	case "":
		counted = "sum(succeeded + failed)"
	case model.AttemptSuccess:
		counted = "sum(succeeded)"
	case model.AttemptFailure:
		counted = "sum(failed)"
	default:
		counted = "0"
	}
	pending := "0"
	if status == "" || status == model.AttemptPending {
		pending = "(SELECT count(*) FROM attempts WHERE mailing_id = ?0 AND status = 'pending')"
	}
	var total int
	err := s.db.NewRaw(`SELECT coalesce((SELECT `+counted+` FROM attempt_counts WHERE mailing_id = ?0), 0) + `+pending, mailingID).Scan(ctx, &total)
	if err != nil {
		return nil, page, dbErr("attempts of mailing", err)
	}
	page.SetTotal(total)
	ids := s.db.NewSelect().TableExpr("attempts").Column("id").Where("mailing_id = ?", mailingID)
	if status != "" {
		ids.Where("status = ?", status)
	}
	ids = page.limit(ids.OrderExpr("id DESC"))
	var rows []model.Attempt
	if err := s.db.NewSelect().Model(&rows).Where("id IN (?)", ids).OrderExpr("id DESC").Scan(ctx); err != nil {
		return nil, page, dbErr("attempts of mailing", err)
	}
	return rows, page, nil
}
