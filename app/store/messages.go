package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"rassylka/app/model"
)

// MessageRow is a message as lists show it.
type MessageRow struct {
	model.Message `bun:",extend"`
	OwnerEmail    string `bun:"owner_email"`
	Mailings      int    `bun:"mailings"`
}

func (s *Store) messageQuery(dest any) *bun.SelectQuery {
	return s.db.NewSelect().Model(dest).
		ModelTableExpr("messages AS m").
		ColumnExpr("m.*").
		ColumnExpr("u.email AS owner_email").
		ColumnExpr("(SELECT count(*) FROM mailings WHERE message_id = m.id) AS mailings").
		Join("JOIN users AS u ON u.id = m.owner_id")
}

// ListMessages returns one page of the scope's messages, newest first,
// whose subject contains q when it is not empty. The page's ids are chosen
// first, so that the mailings are counted for the page's rows only, not
// for every row an OFFSET skips.
func (s *Store) ListMessages(ctx context.Context, sc Scope, q string, page Page) ([]MessageRow, Page, error) {
	filter := func(query *bun.SelectQuery) *bun.SelectQuery {
		sc.where(query, "m.owner_id")
		if strings.TrimSpace(q) != "" {
			query.Where("lower(m.subject) LIKE ?", likePattern(q))
		}
		return query
	}
	ids, err := pageIDs(ctx, &page, func() *bun.SelectQuery { return filter(s.db.NewSelect().TableExpr("messages AS m")) }, "m.id")
	if err != nil {
		return nil, page, dbErr("list messages", err)
	}
	var rows []MessageRow
	if err := s.messageQuery(&rows).Where("m.id IN (?)", ids).OrderExpr("m.id DESC").Scan(ctx); err != nil {
		return nil, page, dbErr("list messages", err)
	}
	return rows, page, nil
}

// MessageByID returns a message visible in the scope.
func (s *Store) MessageByID(ctx context.Context, sc Scope, id int64) (*MessageRow, error) {
	row := new(MessageRow)
	query := s.messageQuery(row).Where("m.id = ?", id)
	sc.where(query, "m.owner_id")
	if err := query.Scan(ctx); err != nil {
		return nil, dbErr("message by id", err)
	}
	return row, nil
}

// MessageChoice is a message as a select lists it.
type MessageChoice struct {
	ID      int64  `bun:"id"`
	Subject string `bun:"subject"`
}

// MessageChoices lists the owner's newest messages for a select, newest
// first, with the message keep (the one an edited mailing sends) among
// them however old it is, when it is the owner's.
func (s *Store) MessageChoices(ctx context.Context, ownerID int64, limit int, keep int64) ([]MessageChoice, error) {
	var out []MessageChoice
	err := s.db.NewRaw(`SELECT id, subject FROM messages WHERE owner_id = ?0 AND (id = ?2 OR id IN (
			SELECT id FROM messages WHERE owner_id = ?0 ORDER BY id DESC LIMIT ?1))
		ORDER BY id DESC`, ownerID, limit, keep).Scan(ctx, &out)
	if err != nil {
		return nil, dbErr("message choices", err)
	}
	return out, nil
}

// CreateMessage inserts m.
//
// With m.FormKey set, a message the same form created already, with the
// same text, is not created again (ErrDone, with m set to it); sent again
// with another text, the form creates another message.
func (s *Store) CreateMessage(ctx context.Context, m *model.Message) error {
	return s.InTx(ctx, func(tx *Store) error {
		prev, err := formCreated(ctx, tx, "messages", m.OwnerID, m.FormKey, func(prev *model.Message) (bool, error) {
			return prev.Subject == m.Subject && prev.Body == m.Body, nil
		})
		if err != nil {
			return err
		}
		if prev != nil {
			*m = *prev
			return ErrDone
		}
		_, err = tx.db.NewInsert().Model(m).ExcludeColumn("id", "created_at", "updated_at").Returning("*").Exec(ctx)
		return dbErr("create message", err)
	})
}

// UpdateMessage saves the subject and body of the owner's message.
//
// A message that a run is sending right now is not changed (ErrSending):
// every recipient of a run gets the same text. With m.UpdatedAt set (the
// version a form was opened on), one changed since is not (ErrChanged,
// with m.UpdatedAt set to its version now).
func (s *Store) UpdateMessage(ctx context.Context, ownerID int64, m *model.Message) error {
	return s.InTx(ctx, func(tx *Store) error {
		// The mailings using the message are locked first: a run starting
		// meanwhile (which locks its mailing) either commits before the
		// check below sees it, or starts after the edit, with the new text;
		// never a run whose first batch read the old text and the rest the
		// new one.
		if _, err := tx.db.NewRaw("SELECT 1 FROM mailings WHERE message_id = ? FOR SHARE", m.ID).Exec(ctx); err != nil {
			return dbErr("update message", err)
		}
		version := m.UpdatedAt
		q := tx.db.NewUpdate().Model(m).
			Set("subject = ?", m.Subject).
			Set("body = ?", m.Body).
			Set("updated_at = now()").
			Where("id = ? AND owner_id = ?", m.ID, ownerID).
			Where(`NOT EXISTS (SELECT 1 FROM runs AS r JOIN mailings AS g ON g.id = r.mailing_id
				WHERE g.message_id = message.id AND r.finished_at IS NULL)`)
		if !version.IsZero() {
			q.Where("updated_at = ?", version)
		}
		err := q.Returning("*").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			var cur []model.Message
			if xerr := tx.db.NewSelect().Model(&cur).Where("id = ? AND owner_id = ?", m.ID, ownerID).Scan(ctx); xerr == nil && len(cur) == 1 {
				if !version.IsZero() && !cur[0].UpdatedAt.Equal(version) {
					if cur[0].Subject == m.Subject && cur[0].Body == m.Body {
						*m = cur[0] // the save made already (a form sent twice): done
						return nil
					}
					m.UpdatedAt = cur[0].UpdatedAt
					return ErrChanged
				}
				return ErrSending
			}
		}
		return dbErr("update message", err)
	})
}

// ErrSending means a run is sending the object right now.
var ErrSending = errors.New("a run is sending it")

// DeleteMessage deletes the owner's message; one that mailings use is
// ErrConflict.
func (s *Store) DeleteMessage(ctx context.Context, ownerID, id int64) error {
	res, err := s.db.NewDelete().Model((*model.Message)(nil)).Where("id = ? AND owner_id = ?", id, ownerID).Exec(ctx)
	if err != nil {
		return dbErr("delete message", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete message: %w", ErrNotFound)
	}
	return nil
}

// FirstClient returns the owner's oldest client, for previews.
func (s *Store) FirstClient(ctx context.Context, ownerID int64) (*model.Client, error) {
	c := new(model.Client)
	if err := s.db.NewSelect().Model(c).Where("owner_id = ?", ownerID).OrderExpr("id").Limit(1).Scan(ctx); err != nil {
		return nil, dbErr("first client", err)
	}
	return c, nil
}
