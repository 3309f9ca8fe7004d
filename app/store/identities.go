package store

import (
	"context"
	"errors"
	"fmt"

	"rassylka/app/model"
)

// IdentityByProvider finds the link of a provider's account.
func (s *Store) IdentityByProvider(ctx context.Context, provider, providerUserID string) (*model.Identity, error) {
	i := new(model.Identity)
	err := s.db.NewSelect().Model(i).Where("provider = ? AND provider_user_id = ?", provider, providerUserID).Scan(ctx)
	if err != nil {
		return nil, dbErr("identity by provider", err)
	}
	return i, nil
}

// CreateIdentity links a provider's account to a user.
func (s *Store) CreateIdentity(ctx context.Context, i *model.Identity) error {
	_, err := s.db.NewInsert().Model(i).Returning("*").Exec(ctx)
	return dbErr("create identity", err)
}

// IdentitiesOfUser lists the user's linked accounts, oldest first.
func (s *Store) IdentitiesOfUser(ctx context.Context, userID int64) ([]model.Identity, error) {
	var out []model.Identity
	err := s.db.NewSelect().Model(&out).Where("user_id = ?", userID).Order("id").Scan(ctx)
	if err != nil {
		return nil, dbErr("identities of user", err)
	}
	return out, nil
}

// DropIdentitiesOfOtherAddresses unlinks the user's accounts at providers
// that vouched for another address than the user's, and says how many.
func (s *Store) DropIdentitiesOfOtherAddresses(ctx context.Context, userID int64) (int, error) {
	res, err := s.db.NewRaw(`DELETE FROM identities AS i USING users AS u
		WHERE i.user_id = ? AND u.id = i.user_id AND lower(i.email) <> lower(u.email)`, userID).Exec(ctx)
	if err != nil {
		return 0, dbErr("drop identities", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// DeleteIdentity unlinks one of the user's accounts.
func (s *Store) DeleteIdentity(ctx context.Context, userID, id int64) error {
	res, err := s.db.NewDelete().Model((*model.Identity)(nil)).Where("id = ? AND user_id = ?", id, userID).Exec(ctx)
	if err != nil {
		return dbErr("delete identity", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete identity: %w", ErrNotFound)
	}
	return nil
}

// ErrLastSignIn is returned when unlinking would leave a user without any
// way to sign in.
var ErrLastSignIn = errors.New("the last way to sign in")

// UnlinkIdentity deletes one of the user's linked accounts unless it is the
// user's only way to sign in (no password and no other identity). The
// user's row is locked meanwhile, so two concurrent unlinks cannot both pass
// the check.
func (s *Store) UnlinkIdentity(ctx context.Context, userID, id int64) error {
	return s.InTx(ctx, func(tx *Store) error {
		var hasPassword bool
		err := tx.db.NewSelect().Model((*model.User)(nil)).ColumnExpr("password_hash IS NOT NULL").
			Where("id = ?", userID).For("UPDATE").Scan(ctx, &hasPassword)
		if err != nil {
			return dbErr("unlink identity", err)
		}
		// Another's identity is not found, whatever the user's own are.
		var n int
		var mine bool
		err = tx.db.NewSelect().Model((*model.Identity)(nil)).ColumnExpr("count(*), coalesce(bool_or(id = ?), false)", id).
			Where("user_id = ?", userID).Scan(ctx, &n, &mine)
		if err != nil {
			return dbErr("unlink identity", err)
		}
		if !mine {
			return fmt.Errorf("unlink identity: %w", ErrNotFound)
		}
		if !hasPassword && n <= 1 {
			return fmt.Errorf("unlink identity: %w", ErrLastSignIn)
		}
		return tx.DeleteIdentity(ctx, userID, id)
	})
}
