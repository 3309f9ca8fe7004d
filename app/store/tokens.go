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
