package store

import (
	"context"
	"time"

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

// RevokeTokens marks every unused token of purpose of the user as used, so
// that only the newest link works.
func (s *Store) RevokeTokens(ctx context.Context, userID int64, purpose model.TokenPurpose) error {
	_, err := s.db.NewUpdate().Model((*model.Token)(nil)).
		Set("used_at = now()").
		Where("user_id = ? AND purpose = ? AND used_at IS NULL", userID, purpose).Exec(ctx)
	return dbErr("revoke tokens", err)
}

// LiveToken reports whether the user has a token of purpose that can still
// be used.
func (s *Store) LiveToken(ctx context.Context, userID int64, purpose model.TokenPurpose) (bool, error) {
	ok, err := s.db.NewSelect().Model((*model.Token)(nil)).
		Where("user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > now()", userID, purpose).Exists(ctx)
	return ok, dbErr("live token", err)
}

// LiveTokenAddress is the address of the user's newest token of purpose
// that can still be used ("": none).
func (s *Store) LiveTokenAddress(ctx context.Context, userID int64, purpose model.TokenPurpose) (string, error) {
	var addr []string
	err := s.db.NewSelect().Model((*model.Token)(nil)).Column("address").
		Where("user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > now() AND address IS NOT NULL", userID, purpose).
		OrderExpr("id DESC").Limit(1).Scan(ctx, &addr)
	if err != nil || len(addr) == 0 {
		return "", dbErr("live token's address", err)
	}
	return addr[0], nil
}

// AddressKept reports whether an address is kept for the account that
// moved away from it: a link that moves the account back to it can still
// be used.
func (s *Store) AddressKept(ctx context.Context, email string) (bool, error) {
	ok, err := s.db.NewSelect().Model((*model.Token)(nil)).
		Where("purpose = ? AND used_at IS NULL AND expires_at > now() AND lower(address) = lower(?)", model.TokenRevertEmail, email).Exists(ctx)
	return ok, dbErr("address kept", err)
}

// LiveTokenUntil is when the user's live token of purpose that lasts the
// longest expires (nil: none can be used).
func (s *Store) LiveTokenUntil(ctx context.Context, userID int64, purpose model.TokenPurpose) (*time.Time, error) {
	var until []time.Time
	err := s.db.NewSelect().Model((*model.Token)(nil)).Column("expires_at").
		Where("user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > now()", userID, purpose).
		OrderExpr("expires_at DESC").Limit(1).Scan(ctx, &until)
	if err != nil || len(until) == 0 {
		return nil, dbErr("live token's end", err)
	}
	return &until[0], nil
}
