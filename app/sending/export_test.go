package sending

import (
	"context"
	"time"

	"rassylka/app/model"
	"rassylka/app/store"
)

// SetRecorded makes f stand for what befalls the answer to each chunk's
// statement, given the statement's error: a connection lost after the
// statement was made, say.
func SetRecorded(s *Service, f func(error) error) { s.recorded = f }

// Salvage is salvage, for a test to give it the state a race leaves.
func Salvage(ctx context.Context, s *Service, run *model.Run, b *model.RunBatch, sent []store.AttemptResult, held, asked []int64, askedAt time.Time) bool {
	return s.salvage(ctx, run, b, sent, held, asked, askedAt)
}
