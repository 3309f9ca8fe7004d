package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"rassylka/app/model"
)

// NormalizeEmail trims and lower-cases an address; uniqueness is
// case-insensitive in the database too.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CreateUser inserts u. An email already taken (in any letter case) is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u *model.User) error {
	u.Email = NormalizeEmail(u.Email)
	if u.Role == "" {
		u.Role = model.RoleUser
	}
	if u.TimeZone == "" {
		u.TimeZone = model.DefaultTimeZone
	}
	_, err := s.db.NewInsert().Model(u).Returning("*").Exec(ctx)
	return dbErr("create user", err)
}

// UserByID returns the user with id.
func (s *Store) UserByID(ctx context.Context, id int64) (*model.User, error) {
	u := new(model.User)
	err := s.db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx)
	if err != nil {
		return nil, dbErr("user by id", err)
	}
	return u, nil
}

// UserByEmail returns the user with email, in any letter case and either
// form of an internationalized domain (model.EmailForms); of two accounts
// saved under both forms before addresses were made canonical, the older.
func (s *Store) UserByEmail(ctx context.Context, email string) (*model.User, error) {
	u := new(model.User)
	err := s.db.NewSelect().Model(u).Where("lower(email) IN (?)", bun.List(model.EmailForms(email))).OrderExpr("id").Limit(1).Scan(ctx)
	if err != nil {
		return nil, dbErr("user by email", err)
	}
	return u, nil
}

// SetUserRole changes the role of the user with email (found as
// UserByEmail finds it).
func (s *Store) SetUserRole(ctx context.Context, email string, role model.Role) (*model.User, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("set user role: unknown role %q", role)
	}
	u := new(model.User)
	err := s.db.NewUpdate().Model(u).
		Set("role = ?", role).
		Set("updated_at = now()").
		Where("id = (?)", s.db.NewSelect().Model((*model.User)(nil)).Column("id").
			Where("lower(email) IN (?)", bun.List(model.EmailForms(strings.TrimSpace(email)))).OrderExpr("id").Limit(1)).
		Returning("*").
		Scan(ctx)
	if err != nil {
		return nil, dbErr("set user role", err)
	}
	return u, nil
}

// ConfirmEmail marks the user's address confirmed (once; later calls keep
// the first time).
func (s *Store) ConfirmEmail(ctx context.Context, userID int64) error {
	_, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("email_confirmed_at = coalesce(email_confirmed_at, now())").
		Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	return dbErr("confirm email", err)
}

// SetEmail moves the user's account to the address email, confirmed (its
// inbox opened the link mailed to it). ErrConflict: another account has it.
func (s *Store) SetEmail(ctx context.Context, userID int64, email string) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("email = ?", email).
		Set("email_confirmed_at = now()").
		Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return dbErr("set email", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set email: %w", ErrNotFound)
	}
	return nil
}

// DeleteUnconfirmed deletes the user if their address was never confirmed
// (such an account cannot sign in, and holds nothing), and reports whether
// it did.
func (s *Store) DeleteUnconfirmed(ctx context.Context, userID int64) (bool, error) {
	res, err := s.db.NewDelete().Model((*model.User)(nil)).Where("id = ? AND email_confirmed_at IS NULL", userID).Exec(ctx)
	if err != nil {
		return false, dbErr("delete unconfirmed user", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// CancelReplyToPending gives up the reply address waiting for its inbox.
func (s *Store) CancelReplyToPending(ctx context.Context, userID int64) error {
	_, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("reply_to_pending = ''").Set("updated_at = now()").
		Where("id = ? AND reply_to_pending <> ''", userID).Exec(ctx)
	return dbErr("cancel reply address", err)
}

// SetPassword stores a new password hash for the user.
func (s *Store) SetPassword(ctx context.Context, userID int64, hash string) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("password_hash = ?", hash).
		Set("password_changed_at = now()").
		Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return dbErr("set password", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set password: %w", ErrNotFound)
	}
	return nil
}

// Profile is what a user sets of their account on its page.
type Profile struct {
	FullName   string
	TimeZone   string
	SenderName string // "": MAIL_FROM's
}

// UpdateProfile changes the user's name, time zone and sender name.
func (s *Store) UpdateProfile(ctx context.Context, userID int64, p Profile) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("full_name = ?", p.FullName).
		Set("time_zone = ?", p.TimeZone).
		Set("sender_name = ?", p.SenderName).
		Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return dbErr("update profile", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update profile: %w", ErrNotFound)
	}
	return nil
}

// SetReplyTo sets the user's reply address and the one waiting for its
// confirmation ("": none).
func (s *Store) SetReplyTo(ctx context.Context, userID int64, replyTo, pending string) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("reply_to = ?", replyTo).
		Set("reply_to_pending = ?", pending).
		Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return dbErr("set reply address", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set reply address: %w", ErrNotFound)
	}
	return nil
}

// ConfirmReplyTo makes addr the user's reply address if it is the one
// waiting for its confirmation, and reports whether it was.
func (s *Store) ConfirmReplyTo(ctx context.Context, userID int64, addr string) (bool, error) {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("reply_to = reply_to_pending").
		Set("reply_to_pending = ''").
		Set("updated_at = now()").
		Where("id = ? AND reply_to_pending = ? AND reply_to_pending <> ''", userID, addr).Exec(ctx)
	if err != nil {
		return false, dbErr("confirm reply address", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// UserRow is a user as the managers' list shows it.
type UserRow struct {
	model.User `bun:",extend"`
	Clients    int `bun:"clients"`
	Mailings   int `bun:"mailings"`
}

// ListUsers returns one page of users, newest first, whose email or name
// contains q when it is not empty, with their counts of clients and
// mailings. The page's ids are chosen first, so that the counts are taken
// for the page's users only, not for every user an OFFSET skips.
func (s *Store) ListUsers(ctx context.Context, q string, page Page) ([]UserRow, Page, error) {
	filter := func(query *bun.SelectQuery) *bun.SelectQuery {
		if strings.TrimSpace(q) != "" {
			query.Where("lower(u.email || ' ' || u.full_name) LIKE ?", likePattern(q))
		}
		return query
	}
	ids, err := pageIDs(ctx, &page, func() *bun.SelectQuery { return filter(s.db.NewSelect().TableExpr("users AS u")) }, "u.id")
	if err != nil {
		return nil, page, dbErr("list users", err)
	}
	var rows []UserRow
	err = s.db.NewSelect().Model(&rows).
		ModelTableExpr("users AS u").
		ColumnExpr("u.*").
		ColumnExpr("(SELECT count(*) FROM clients WHERE owner_id = u.id) AS clients").
		ColumnExpr("(SELECT count(*) FROM mailings WHERE owner_id = u.id) AS mailings").
		Where("u.id IN (?)", ids).OrderExpr("u.id DESC").Scan(ctx)
	if err != nil {
		return nil, page, dbErr("list users", err)
	}
	return rows, page, nil
}

// ErrNotBlockable is returned when a manager tries to block themself or
// another manager.
var ErrNotBlockable = errors.New("managers cannot be blocked")

// SetBlocked blocks or unblocks a user. Managers (the actor included) are
// never blocked; one blocked while a user and made a manager since can be
// unblocked.
func (s *Store) SetBlocked(ctx context.Context, actorID, userID int64, blocked bool) (*model.User, error) {
	u, err := s.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.ID == actorID || (blocked && u.IsManager()) {
		return u, ErrNotBlockable
	}
	// Scanned into a new value: RETURNING a NULL blocked_at would leave
	// the old time in u, and an unblocked user would look blocked.
	u = new(model.User)
	q := s.db.NewUpdate().Model(u).Set("updated_at = now()").Where("id = ?", userID)
	if blocked {
		q.Set("blocked_at = coalesce(blocked_at, now())").Where("role = 'user'")
	} else {
		q.Set("blocked_at = NULL")
	}
	if err := q.Returning("*").Scan(ctx); err != nil {
		return nil, dbErr("set blocked", err)
	}
	return u, nil
}

// LockUser locks the user's row until the transaction ends, and returns
// it as it is then. Every transaction that changes a user's tokens and
// row takes it first (a confirmation, a reset, a registration of the
// address again, a password change, a provider's sign-in), so that any two
// of them wait for each other rather than lock the user's links in
// different orders and deadlock, and each decides on the row as the other
// left it.
func (s *Store) LockUser(ctx context.Context, userID int64) (*model.User, error) {
	u := new(model.User)
	if err := s.db.NewSelect().Model(u).Where("id = ?", userID).For("NO KEY UPDATE").Scan(ctx); err != nil {
		return nil, dbErr("lock user", err)
	}
	return u, nil
}

// ResetUnconfirmed drops the password of a user whose address nobody has
// proved to own yet (sign-in then needs a linked account or a reset) and
// sets their name and time zone. The caller holds the row's lock
// (LockUser) and found the address unconfirmed.
func (s *Store) ResetUnconfirmed(ctx context.Context, userID int64, fullName, timeZone string) error {
	_, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("password_hash = NULL").Set("full_name = ?", fullName).Set("time_zone = ?", timeZone).Set("updated_at = now()").
		Where("id = ?", userID).Exec(ctx)
	return dbErr("reset unconfirmed", err)
}
