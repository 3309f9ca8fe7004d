package store

import (
	"context"
	"fmt"
	"strings"

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
		u.TimeZone = "UTC"
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

// UserByEmail returns the user with email, in any letter case.
func (s *Store) UserByEmail(ctx context.Context, email string) (*model.User, error) {
	u := new(model.User)
	err := s.db.NewSelect().Model(u).Where("lower(email) = lower(?)", strings.TrimSpace(email)).Scan(ctx)
	if err != nil {
		return nil, dbErr("user by email", err)
	}
	return u, nil
}

// SetUserRole changes the role of the user with email.
func (s *Store) SetUserRole(ctx context.Context, email string, role model.Role) (*model.User, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("set user role: unknown role %q", role)
	}
	u := new(model.User)
	err := s.db.NewUpdate().Model(u).
		Set("role = ?", role).
		Set("updated_at = now()").
		Where("lower(email) = lower(?)", strings.TrimSpace(email)).
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

// SetPassword stores a new password hash for the user.
func (s *Store) SetPassword(ctx context.Context, userID int64, hash string) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("password_hash = ?", hash).
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

// UpdateProfile changes the user's name and time zone.
func (s *Store) UpdateProfile(ctx context.Context, userID int64, fullName, timeZone string) error {
	res, err := s.db.NewUpdate().Model((*model.User)(nil)).
		Set("full_name = ?", fullName).
		Set("time_zone = ?", timeZone).
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
