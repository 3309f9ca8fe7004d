package store

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"rassylka/app/model"
)

// PurgeTokens deletes tokens that expired before cutoff and returns how many.
func (s *Store) PurgeTokens(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.NewDelete().Model((*model.Token)(nil)).Where("expires_at < ?", cutoff).Exec(ctx)
	if err != nil {
		return 0, dbErr("purge tokens", err)
	}
	return res.RowsAffected()
}

// CreateToken stores a token (its hash) for the user.
func (s *Store) CreateToken(ctx context.Context, t *model.Token) error {
	_, err := s.db.NewInsert().Model(t).Returning("*").Exec(ctx)
	return dbErr("create token", err)
}

// TokenByHash finds a token of purpose by its hash, used or not.
func (s *Store) TokenByHash(ctx context.Context, purpose model.TokenPurpose, hash []byte) (*model.Token, error) {
	t := new(model.Token)
	err := s.db.NewSelect().Model(t).Where("token_hash = ? AND purpose = ?", hash, purpose).Scan(ctx)
	if err != nil {
		return nil, dbErr("token by hash", err)
	}
	return t, nil
}

// UseToken marks the token used if it still is usable, and reports whether
// this call was the one that used it: of two concurrent uses only one wins.
func (s *Store) UseToken(ctx context.Context, id int64) (bool, error) {
	res, err := s.db.NewUpdate().Model((*model.Token)(nil)).
		Set("used_at = now()").
		Where("id = ? AND used_at IS NULL AND expires_at > now()", id).Exec(ctx)
	if err != nil {
		return false, dbErr("use token", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RevokeTokens marks every unused token of the user of the purposes as
// used, so that only links made after work.
func (s *Store) RevokeTokens(ctx context.Context, userID int64, purposes ...model.TokenPurpose) error {
	_, err := s.db.NewUpdate().Model((*model.Token)(nil)).
		Set("used_at = now()").
		Where("user_id = ? AND purpose IN (?) AND used_at IS NULL", userID, bun.List(purposes)).Exec(ctx)
	return dbErr("revoke tokens", err)
}

// LiveToken is the user's newest token of purpose that can still be used
// (nil: none).
func (s *Store) LiveToken(ctx context.Context, userID int64, purpose model.TokenPurpose) (*model.Token, error) {
	var ts []model.Token
	err := s.db.NewSelect().Model(&ts).
		Where("user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > now()", userID, purpose).
		OrderExpr("id DESC").Limit(1).Scan(ctx)
	if err != nil || len(ts) == 0 {
		return nil, dbErr("live token", err)
	}
	return &ts[0], nil
}

// AddressKept reports whether an address is kept for the account that
// moved away from it: a link that moves the account back to it can still
// be used.
func (s *Store) AddressKept(ctx context.Context, email string) (bool, error) {
	ok, err := s.db.NewSelect().Model((*model.Token)(nil)).
		Where("purpose = ? AND used_at IS NULL AND expires_at > now() AND lower(address) IN (?)", model.TokenRevertEmail, bun.List(model.EmailForms(email))).Exists(ctx)
	return ok, dbErr("address kept", err)
}
