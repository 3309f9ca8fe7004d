package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
)

// LockMailing reads a mailing and locks it until the transaction ends, so
// that two workers starting a run for it take turns.
func (s *Store) LockMailing(ctx context.Context, id int64) (*model.Mailing, error) {
	m := new(model.Mailing)
	if err := s.db.NewSelect().Model(m).Where("id = ?", id).For("UPDATE").Scan(ctx); err != nil {
		return nil, dbErr("lock mailing", err)
	}
	return m, nil
}

// Mailing returns a mailing's own row, without what its page adds (the
// recipients' count costs a scan of them): a worker reads it per batch.
func (s *Store) Mailing(ctx context.Context, id int64) (*model.Mailing, error) {
	m := new(model.Mailing)
	if err := s.db.NewSelect().Model(m).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, dbErr("mailing", err)
	}
	return m, nil
}

// CreateRun inserts r. A scheduled run whose occurrence already has a run
// is not inserted again: r is filled with the existing one and created is
// false.
func (s *Store) CreateRun(ctx context.Context, r *model.Run) (created bool, err error) {
	res, err := s.db.NewInsert().Model(r).
		ExcludeColumn("id", "finished_at").
		// The subject it sends, kept as it reads now (see the runs' subject).
		Value("subject", "(SELECT msg.subject FROM mailings AS g JOIN messages AS msg ON msg.id = g.message_id WHERE g.id = ?)", r.MailingID).
		On("CONFLICT (mailing_id, due_at) WHERE trigger = 'scheduled' DO NOTHING").
		Returning("*").Exec(ctx)
	if err != nil {
		return false, dbErr("create run", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	err = s.db.NewSelect().Model(r).Where("mailing_id = ? AND due_at = ? AND trigger = 'scheduled'", r.MailingID, r.DueAt).Scan(ctx)
	return false, dbErr("existing run", err)
}

// RunByID returns a run.
func (s *Store) RunByID(ctx context.Context, id int64) (*model.Run, error) {
	r := new(model.Run)
	if err := s.db.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, dbErr("run by id", err)
	}
	return r, nil
}

// ActiveRun returns the mailing's unfinished run, if any.
func (s *Store) ActiveRun(ctx context.Context, mailingID int64) (*model.Run, error) {
	r := new(model.Run)
	err := s.db.NewSelect().Model(r).Where("mailing_id = ? AND finished_at IS NULL", mailingID).OrderExpr("id DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, dbErr("active run", err)
	}
	return r, nil
}

// LatestRun returns the mailing's newest run.
func (s *Store) LatestRun(ctx context.Context, mailingID int64) (*model.Run, error) {
	r := new(model.Run)
	err := s.db.NewSelect().Model(r).Where("mailing_id = ?", mailingID).OrderExpr("id DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, dbErr("latest run", err)
	}
	return r, nil
}

// interrupted is the response of an attempt whose send a crash cut off.
const interrupted = "interrupted: outcome unknown"

// RestToSend finds what "Send to the rest" follows: the mailing's newest
// full run (neither a retry nor a rest), when it or the run after it, the
// newest, stopped before it reached everyone (switched off, its owner
// blocked), and the newest has finished. It returns that full run and how
// many the stopped run left unreached. ErrNotFound: there is no such run.
// Whether anyone is left to mail is not looked up (it reads the
// recipients): a rest with no one answers ErrNoRest when started.
func (s *Store) RestToSend(ctx context.Context, mailingID int64) (*model.Run, int, error) {
	var runs []model.Run // the newest run, and the newest that is not a retry
	err := s.db.NewRaw(`(SELECT * FROM runs WHERE mailing_id = ? ORDER BY id DESC LIMIT 1)
		UNION (SELECT * FROM runs WHERE mailing_id = ? AND retry_of IS NULL ORDER BY id DESC LIMIT 1)
		ORDER BY id DESC`, mailingID, mailingID).Scan(ctx, &runs)
	if err != nil {
		return nil, 0, dbErr("rest to send", err)
	}
	if len(runs) == 0 || runs[0].FinishedAt == nil {
		return nil, 0, fmt.Errorf("rest to send: %w", ErrNotFound)
	}
	unreached := runs[0].Unreached
	if unreached == 0 {
		unreached = runs[len(runs)-1].Unreached
	}
	if unreached == 0 {
		return nil, 0, fmt.Errorf("rest to send: %w", ErrNotFound)
	}
	full := new(model.Run)
	err = s.db.NewSelect().Model(full).Where("mailing_id = ? AND retry_of IS NULL AND rest_of IS NULL", mailingID).
		OrderExpr("id DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, 0, dbErr("rest to send", err)
	}
	return full, unreached, nil
}

// sourceSQL selects the client ids a run sends to: the mailing's recipients;
// for a retry the clients whose attempt in the earlier run failed with a
// temporary (4xx) or unknown error; for a rest the mailable recipients
// with no settled attempt in the runs from the full run on.
func sourceSQL(r *model.Run) (string, []any) {
	switch {
	case r.RetryOf != nil:
		return `SELECT client_id FROM attempts AS f WHERE run_id = ? AND ` + retryableMailable, []any{*r.RetryOf}
	case r.RestOf != nil:
		return `SELECT mr.client_id FROM mailing_recipients AS mr JOIN clients AS c ON c.id = mr.client_id
			WHERE mr.mailing_id = ? AND ` + mailable + ` AND NOT ` + settledSince("mr.client_id", "?", "?", "?"),
			[]any{r.MailingID, r.MailingID, *r.RestOf, r.ID}
	}
	return `SELECT client_id FROM mailing_recipients WHERE mailing_id = ?`, []any{r.MailingID}
}

// settledSince is the condition that the client (the expression client)
// has a settled attempt in a run of the mailing from the full run from
// on, before the run before: what a rest run leaves out. Settled is
// delivered, refused for good (5xx), or cut off by a crash (it may have
// arrived: only "Retry failed" sends it again, saying so). A failure for
// the time being (4xx, no server) is not: the rest sends to it, and a
// "Retry failed" of the rest then covers it too, whichever ran first.
// The runs are found on the mailing's index of runs, and each one's
// attempt by its unique key.
func settledSince(client, mailing, from, before string) string {
	return `EXISTS (SELECT 1 FROM runs AS pr JOIN attempts AS pa ON pa.run_id = pr.id AND pa.client_id = ` + client + `
		WHERE pr.mailing_id = ` + mailing + ` AND pr.id >= ` + from + ` AND pr.id < ` + before + `
		AND (pa.status <> 'failure' OR pa.code >= 500 OR pa.response = '` + interrupted + `'))`
}

// retryableFailure keeps, of a run's attempts (alias f), those "Retry failed"
// sends again: failed with a temporary (4xx) or unknown error, to a client
// that is still a recipient of the mailing (stillRecipient). A retry batch's
// read joins the clients and keeps the mailable ones itself.
const retryableFailure = `f.status = 'failure' AND f.client_id IS NOT NULL AND (f.code IS NULL OR f.code BETWEEN 400 AND 499) AND ` + stillRecipient

// retryableMailable is retryableFailure where no join to the clients keeps
// the mailable ones: of those failures, the clients that have not
// unsubscribed or bounced since (a retry of only those would start a run
// that skips everyone).
const retryableMailable = retryableFailure + ` AND EXISTS (SELECT 1 FROM clients AS c WHERE c.id = f.client_id AND ` + mailable + `)`

// mailable is the condition on a client (alias c) that a run may mail
// it: it has neither unsubscribed nor bounced. The others are skipped.
const mailable = `c.unsubscribed_at IS NULL AND c.bounced_at IS NULL`

// stillRecipient keeps, of a retried run's failures (alias f), the clients
// that are still recipients of the mailing.
const stillRecipient = `EXISTS (SELECT 1 FROM mailing_recipients AS mr WHERE mr.mailing_id = f.mailing_id AND mr.client_id = f.client_id)`

// PlanBatches splits the run's recipients into ranges of client ids of
// about size recipients, records them, and sets the run's total and how
// many of them it may mail (Mailable). The last
// range is open, so that it also takes recipients added meanwhile.
func (s *Store) PlanBatches(ctx context.Context, r *model.Run, size int) ([]model.RunBatch, error) {
	src, args := sourceSQL(r)
	var total, mailableTotal int
	err := s.db.NewRaw("SELECT count(*), count(*) FILTER (WHERE "+mailable+") FROM ("+src+") AS src JOIN clients AS c ON c.id = src.client_id", args...).
		Scan(ctx, &total, &mailableTotal)
	if err != nil {
		return nil, dbErr("plan batches", err)
	}
	var bounds []int64
	err = s.db.NewRaw(`SELECT client_id FROM (
			SELECT client_id, row_number() OVER (ORDER BY client_id) AS n FROM (`+src+`) AS src
		) AS numbered WHERE n % ? = 0 ORDER BY client_id`, append(args, size)...).Scan(ctx, &bounds)
	if err != nil {
		return nil, dbErr("plan batches", err)
	}
	if len(bounds) > 0 && len(bounds)*size == total {
		bounds = bounds[:len(bounds)-1] // the last range would be empty
	}
	var batches []model.RunBatch
	from := int64(0)
	for i, b := range bounds {
		to := b
		batches = append(batches, model.RunBatch{RunID: r.ID, Seq: i, FromID: from, ToID: &to})
		from = b
	}
	batches = append(batches, model.RunBatch{RunID: r.ID, Seq: len(bounds), FromID: from})
	if _, err := s.db.NewInsert().Model(&batches).On("CONFLICT DO NOTHING").Exec(ctx); err != nil {
		return nil, dbErr("plan batches", err)
	}
	r.Total, r.Mailable = total, mailableTotal
	if _, err := s.db.NewUpdate().Model(r).Column("total").WherePK().Exec(ctx); err != nil {
		return nil, dbErr("plan batches", err)
	}
	return batches, nil
}

// Batch returns one batch of a run.
func (s *Store) Batch(ctx context.Context, runID int64, seq int) (*model.RunBatch, error) {
	b := new(model.RunBatch)
	if err := s.db.NewSelect().Model(b).Where("run_id = ? AND seq = ?", runID, seq).Scan(ctx); err != nil {
		return nil, dbErr("batch", err)
	}
	return b, nil
}

// OpenBatches lists every batch not yet done, oldest run first.
func (s *Store) OpenBatches(ctx context.Context) ([]model.RunBatch, error) {
	var out []model.RunBatch
	err := s.db.NewSelect().Model(&out).Where("done_at IS NULL").OrderExpr("run_id, seq").Limit(10000).Scan(ctx)
	if err != nil {
		return nil, dbErr("open batches", err)
	}
	return out, nil
}

// BatchClaim is the batch's claim: the client ids claimed, and the stamp
// the claim was made with (nil: none; see BatchStatements.ClaimStamp).
func (s *Store) BatchClaim(ctx context.Context, runID int64, seq int) (ids []int64, stamp *time.Time, err error) {
	var row struct {
		Claimed []int64    `bun:"claimed,array"`
		Stamp   *time.Time `bun:"claim_stamp"`
	}
	err = s.db.NewRaw("SELECT claimed, claim_stamp FROM run_batches WHERE run_id = ? AND seq = ?", runID, seq).Scan(ctx, &row)
	return row.Claimed, row.Stamp, dbErr("batch claim", err)
}

// OrphanedBatch is an open batch no worker holds, left mid-chunk.
type OrphanedBatch struct {
	RunID     int64     `bun:"run_id"`
	Seq       int       `bun:"seq"`
	ClaimedAt time.Time `bun:"claimed_at"`
}

// OrphanedBatches returns the open batches that hold a claim older than
// idle while no worker holds their lock (see LockBatch): their worker died
// mid-chunk. A worker sending holds the lock (a slow chunk's too), and
// claims anew with every chunk; a batch ends, hands over or waits for a
// retry with its claim cleared or recorded.
func (s *Store) OrphanedBatches(ctx context.Context, idle time.Duration) ([]OrphanedBatch, error) {
	var out []OrphanedBatch
	err := s.db.NewRaw(`SELECT b.run_id, b.seq, b.claimed_at FROM run_batches AS b
		WHERE b.done_at IS NULL AND b.claimed <> '{}' AND b.claimed_at < now() - ?::interval
		AND NOT EXISTS (SELECT 1 FROM pg_locks AS l
			WHERE l.locktype = 'advisory' AND l.objsubid = 1
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = `+batchLockKey("b.run_id", "b.seq")+` >> 32 AND l.objid::bigint = `+batchLockKey("b.run_id", "b.seq")+` & 4294967295)
		ORDER BY b.run_id, b.seq LIMIT 1000`, fmt.Sprintf("%d milliseconds", idle.Milliseconds())).Scan(ctx, &out)
	return out, dbErr("orphaned batches", err)
}

// RecoverInterrupted finishes what a dead worker left of a batch, before
// the batch starts again: the recipients of its claim (the chunk being
// sent) that have no attempt, and the attempts of its range still pending
// (a send tried again after a temporary failure), are recorded as failures
// with unknown outcome, and added to the run's failures, in one statement
// that also clears the claim. Each is dated when it was sent, as far as
// the batch knows: the claim's time, or the pending try's. Only one task
// runs a batch at a time, so a claim found when the batch starts is an
// orphan.
func (s *Store) RecoverInterrupted(ctx context.Context, b *model.RunBatch) (int64, error) {
	// The batch's range is written as row comparisons on (run_id,
	// client_id), which only the attempts' unique key can serve: the
	// planner has no statistics of a run being sent, and with "run_id = ?"
	// once took a status index and read every entry the run ever had
	// there, a cost growing with the run.
	to := int64(math.MaxInt64)
	if b.ToID != nil {
		to = *b.ToID
	}
	const q = `WITH batch AS (
			SELECT claimed, claimed_emails, claimed_at FROM run_batches WHERE run_id = ? AND seq = ? FOR UPDATE
		), cleared AS (
			UPDATE run_batches SET claimed = '{}', claimed_emails = '{}', claimed_at = NULL, claim_stamp = NULL WHERE run_id = ? AND seq = ? AND claimed <> '{}'
		), unwritten AS (
			INSERT INTO attempts (run_id, mailing_id, client_id, email, status, response, tries, attempted_at)
			SELECT r.id, r.mailing_id, c.id, x.email, 'failure', '` + interrupted + `', 1, coalesce(batch.claimed_at, now())
			FROM batch CROSS JOIN unnest(batch.claimed, batch.claimed_emails) AS x(client_id, email)
			JOIN runs AS r ON r.id = ? LEFT JOIN clients AS c ON c.id = x.client_id
			WHERE c.id IS NOT NULL OR NOT EXISTS (
				SELECT 1 FROM attempts AS a WHERE a.run_id = r.id AND a.client_id IS NULL AND a.email = x.email)
			ON CONFLICT (run_id, client_id) DO NOTHING
			RETURNING 1
		), pending AS (
			UPDATE attempts SET status = 'failure', response = '` + interrupted + `'
			WHERE id IN (
				SELECT id FROM attempts
				WHERE (run_id, client_id) > (?, ?) AND (run_id, client_id) <= (?, ?) AND status = 'pending'
				UNION ALL -- a client deleted since: its attempts lost their client id, not their address
				SELECT a.id FROM attempts AS a, batch
				WHERE a.run_id = ? AND a.client_id IS NULL AND a.status = 'pending' AND a.email = ANY(batch.claimed_emails)
			)
			RETURNING 1
		), lost AS (
			SELECT (SELECT count(*) FROM unwritten) + (SELECT count(*) FROM pending) AS n
		), counted AS (
			UPDATE runs SET failed = failed + lost.n FROM lost WHERE id = ? AND lost.n > 0
		)
		SELECT n FROM lost`
	var n int64
	err := s.db.NewRaw(q, b.RunID, b.Seq, b.RunID, b.Seq, b.RunID, b.RunID, b.FromID, b.RunID, to, b.RunID, b.RunID).Scan(ctx, &n)
	if err != nil {
		return 0, dbErr("recover interrupted", err)
	}
	return n, nil
}

// Claim is a recipient a batch has claimed to send to.
type Claim struct {
	ClientID int64
	Email    string
	FullName string
}

// AttemptResult is the outcome of a send to one claimed recipient.
type AttemptResult struct {
	ID       int64 // the attempt's, when it was written before (between tries); 0 = none yet
	ClientID int64
	Email    string
	Status   model.AttemptStatus
	Code     int // 0 = none
	Response string
	Tries    int
	At       time.Time
	Bounced  bool // the address does not exist: the client is marked hard-bounced
}

// RunCounts are outcomes to add to a run's counters.
type RunCounts struct {
	Succeeded, Failed int
	Bounced           int // of Failed, those whose address does not exist
}

// Add adds o to c.
func (c *RunCounts) Add(o RunCounts) {
	c.Succeeded += o.Succeeded
	c.Failed += o.Failed
	c.Bounced += o.Bounced
}

// AddRunCounts adds what c holds to a run's counters and empties it, so
// that a batch counting as it sends adds each outcome once; on error c
// keeps what it held.
func (s *Store) AddRunCounts(ctx context.Context, runID int64, c *RunCounts) error {
	if *c == (RunCounts{}) {
		return nil
	}
	_, err := s.db.NewUpdate().Model((*model.Run)(nil)).
		Set("succeeded = succeeded + ?", c.Succeeded).Set("failed = failed + ?", c.Failed).
		Where("id = ?", runID).Exec(ctx)
	if err != nil {
		return dbErr("add run counts", err)
	}
	*c = RunCounts{}
	return nil
}

// WriteAttempt writes a claimed recipient's intermediate outcome between
// tries after a temporary failure: the failure, then the pending state of
// the next try. With no ID it writes the attempt and returns its id; with
// one, it changes the attempt only while it is as prev, what the caller
// wrote last (its status and time). It reports whether it wrote: false
// when the attempt was recorded by someone else meanwhile (a batch that
// resumed after this worker lost its lock recorded it as interrupted, or
// an outcome is already there), or when the recipient may no longer be
// mailed (see the pending state's conditions), and then the caller must not
// try again.
func (s *Store) WriteAttempt(ctx context.Context, runID, mailingID int64, r, prev AttemptResult) (int64, bool, error) {
	if r.ID != 0 {
		q := s.db.NewUpdate().Model((*model.Attempt)(nil)).
			Set("status = ?", r.Status).Set("code = nullif(?, 0)", r.Code).Set("response = ?", r.Response).
			Set("tries = ?", r.Tries).Set("attempted_at = ?", r.At).
			Where("id = ? AND status = ? AND attempted_at = ?", r.ID, prev.Status, prev.At)
		if r.Status == model.AttemptPending {
			// The next try is made only if the recipient may still be
			// mailed, at the address tried, by a mailing that may still
			// send: the wait before it may have lasted minutes. Otherwise
			// the attempt keeps its failure.
			q = q.Where(`EXISTS (SELECT 1 FROM clients AS c WHERE c.id = ? AND `+mailable+` AND lower(c.email) = lower(?))`, r.ClientID, r.Email).
				Where(`EXISTS (SELECT 1 FROM mailings AS g JOIN users AS u ON u.id = g.owner_id
					WHERE g.id = ? AND g.disabled_at IS NULL AND u.blocked_at IS NULL AND g.ends_at > now())`, mailingID)
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return r.ID, false, dbErr("write attempt", err)
		}
		n, _ := res.RowsAffected()
		return r.ID, n == 1, nil
	}
	var id int64
	err := s.db.NewRaw(`INSERT INTO attempts (run_id, mailing_id, client_id, email, status, code, response, tries, attempted_at)
		SELECT ?, ?, c.id, ?, ?, nullif(?, 0), ?, ?, ? FROM (VALUES (1)) AS one LEFT JOIN clients AS c ON c.id = ?
		ON CONFLICT (run_id, client_id) DO NOTHING
		RETURNING id`,
		runID, mailingID, r.Email, r.Status, r.Code, r.Response, r.Tries, r.At, r.ClientID).Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, dbErr("write attempt", err)
}

// MarkBounced records a hard bounce for clients: they are not mailed again
// until their owner clears it.
func (s *Store) MarkBounced(ctx context.Context, clientIDs []int64) error {
	if len(clientIDs) == 0 {
		return nil
	}
	_, err := s.db.NewUpdate().Model((*model.Client)(nil)).
		Set("bounced_at = coalesce(bounced_at, now())").Set("updated_at = now()").
		Where("id = ANY(?::bigint[])", pgdialect.Array(clientIDs)).Exec(ctx)
	return dbErr("mark bounced", err)
}

// FinishBatch marks a batch done, counting as skipped the recipients of its
// range that got no attempt (unsubscribed, bounced, or left when the run
// stopped), and, when it stopped (switched off, its owner blocked, the
// window closed), as unreached those of them who could have been mailed,
// and adds both to the run's in the same statement. It reports whether
// this call finished it.
func (s *Store) FinishBatch(ctx context.Context, r *model.Run, b *model.RunBatch, stopped bool) (bool, error) {
	src, args := sourceSQL(r)
	// Who of them could have been mailed is asked of the clients only
	// when the batch stopped; their range is repeated on the clients'
	// key, which the planner would otherwise read whole.
	q := `WITH rest AS (
			SELECT count(*) AS skipped, 0 AS unreached FROM (` + src + `) AS src WHERE src.client_id > ?`
	args = append(args, b.FromID)
	if stopped {
		q = `WITH rest AS (
			SELECT count(*) AS skipped, count(*) FILTER (WHERE ` + mailable + `) AS unreached
			FROM (` + src + `) AS src JOIN clients AS c ON c.id = src.client_id
			WHERE src.client_id > ? AND c.id > ?`
		args = append(args, b.FromID)
	}
	if b.ToID != nil {
		q += ` AND src.client_id <= ?`
		args = append(args, *b.ToID)
		if stopped {
			q += ` AND c.id <= ?`
			args = append(args, *b.ToID)
		}
	}
	// The attempts looked up are bounded by the range too: the planner has
	// no statistics yet of the run being sent, and may otherwise hash every
	// attempt of the run, a cost growing with the run.
	q += ` AND NOT EXISTS (SELECT 1 FROM attempts AS a WHERE a.run_id = ? AND a.client_id = src.client_id AND a.client_id > ?`
	args = append(args, r.ID, b.FromID)
	if b.ToID != nil {
		q += ` AND a.client_id <= ?`
		args = append(args, *b.ToID)
	}
	q += `)
		), done AS (
			UPDATE run_batches SET done_at = now(), skipped = rest.skipped, unreached = rest.unreached
			FROM rest WHERE run_id = ? AND seq = ? AND done_at IS NULL
			RETURNING run_batches.skipped, run_batches.unreached
		)
		UPDATE runs SET skipped = runs.skipped + done.skipped, unreached = runs.unreached + done.unreached
		FROM done WHERE runs.id = ?`
	args = append(args, r.ID, b.Seq, r.ID)
	res, err := s.db.NewRaw(q, args...).Exec(ctx)
	if err != nil {
		return false, dbErr("finish batch", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// CloseRunIfDone finishes a run whose batches are all done, recounting its
// counters from the attempts (RefreshRunCounts), and reports whether this
// call finished it. While a batch is open it only looks: the counters grow
// with each chunk and batch, and a recount reads every attempt of the run,
// which at every batch's end would make a run's cost grow with its square.
// Each batch calls it after its own end is committed, so the last batch to
// end sees no open batch and finishes the run.
func (s *Store) CloseRunIfDone(ctx context.Context, runID int64) (bool, error) {
	var open bool
	err := s.db.NewRaw("SELECT EXISTS (SELECT 1 FROM run_batches WHERE run_id = ? AND done_at IS NULL)", runID).Scan(ctx, &open)
	if err != nil {
		return false, dbErr("close run", err)
	}
	if open {
		return false, nil
	}
	return s.RefreshRunCounts(ctx, runID)
}

// RefreshRunCounts recounts a run's successes, failures and skips from its
// attempts and batches, and finishes it when no batch is left; it reports
// whether this call finished it. Once no batch is left, the recipients of
// the total that got no attempt and were not counted by a batch (clients
// deleted before their turn, no longer among the recipients) count as
// skipped, so that a finished run's counts add up to its total.
func (s *Store) RefreshRunCounts(ctx context.Context, runID int64) (finished bool, err error) {
	// Batches refresh concurrently. The run's row is locked first, so that
	// the counting statement takes its snapshot after every earlier refresh
	// committed: counting under the lock of the UPDATE alone would let a
	// late refresh write counts from an older snapshot.
	err = s.InTx(ctx, func(tx *Store) error {
		var open []bool
		if err := tx.db.NewRaw("SELECT finished_at IS NULL FROM runs WHERE id = ? FOR UPDATE", runID).Scan(ctx, &open); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return dbErr("refresh run counts", err)
		}
		var done []bool
		err := tx.db.NewRaw(`
			WITH a AS (
				SELECT count(*) FILTER (WHERE status = 'success') AS ok,
				       count(*) FILTER (WHERE status = 'failure') AS failed,
				       count(*) AS all
				FROM attempts WHERE run_id = ?0
			), b AS (
				SELECT coalesce(sum(skipped), 0) AS skipped, coalesce(sum(unreached), 0) AS unreached,
				       count(*) FILTER (WHERE done_at IS NULL) AS open
				FROM run_batches WHERE run_id = ?0
			)
			UPDATE runs SET succeeded = a.ok, failed = a.failed, unreached = b.unreached,
				skipped = CASE WHEN b.open = 0 THEN greatest(b.skipped, runs.total - a.all) ELSE b.skipped END,
				total = greatest(runs.total, a.all + b.skipped),
				finished_at = CASE WHEN b.open = 0 AND runs.finished_at IS NULL THEN greatest(now(), runs.started_at) ELSE runs.finished_at END
			FROM a, b WHERE runs.id = ?0
			RETURNING b.open = 0 AND runs.finished_at IS NOT NULL`, runID).Scan(ctx, &done)
		if err != nil {
			return dbErr("refresh run counts", err)
		}
		finished = len(open) == 1 && open[0] && len(done) == 1 && done[0]
		return nil
	})
	return finished, err
}

// IdleRuns lists the unfinished runs that have no open batch left: their
// last batch ended but the run was not closed (a crash between the two).
func (s *Store) IdleRuns(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.db.NewRaw(`SELECT id FROM runs AS r WHERE finished_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM run_batches AS b WHERE b.run_id = r.id AND b.done_at IS NULL)
		ORDER BY id LIMIT 1000`).Scan(ctx, &ids)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr("idle runs", err)
	}
	return ids, nil
}

// DueMailings lists mailings whose next run is due at now: enabled, not
// finished, owner not blocked.
func (s *Store) DueMailings(ctx context.Context, now time.Time, limit int) ([]model.Mailing, error) {
	var out []model.Mailing
	err := s.db.NewSelect().Model(&out).
		Where("disabled_at IS NULL AND status <> 'finished' AND next_run_at <= ?", now).
		Where("owner_id IN (SELECT id FROM users WHERE blocked_at IS NULL)").
		OrderExpr("next_run_at").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, dbErr("due mailings", err)
	}
	return out, nil
}

// RepeatsDueOf returns the ids of the owner's repeating mailings whose
// next send is due at now (or was before), not finished.
func (s *Store) RepeatsDueOf(ctx context.Context, ownerID int64, now time.Time) ([]int64, error) {
	var ids []int64
	err := s.db.NewSelect().Model((*model.Mailing)(nil)).Column("id").
		Where("owner_id = ? AND repeat <> 'once' AND status <> 'finished' AND next_run_at <= ?", ownerID, now).
		OrderExpr("id").Scan(ctx, &ids)
	return ids, dbErr("repeats due", err)
}

// FinishEnded moves mailings whose window has closed to finished and
// returns their owners.
func (s *Store) FinishEnded(ctx context.Context, now time.Time) ([]int64, error) {
	var owners []int64
	err := s.db.NewRaw(`UPDATE mailings SET status = 'finished', next_run_at = NULL, updated_at = now()
		WHERE status <> 'finished' AND ends_at <= ? RETURNING owner_id`, now).Scan(ctx, &owners)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr("finish ended", err)
	}
	return owners, nil
}

// SetNextRun records a mailing's next scheduled occurrence (nil: none) and
// moves it to running when its first run has started.
func (s *Store) SetNextRun(ctx context.Context, mailingID int64, next *time.Time, started bool) error {
	q := s.db.NewUpdate().Model((*model.Mailing)(nil)).Set("next_run_at = ?", next).Set("updated_at = now()").Where("id = ?", mailingID)
	if started {
		q.Set("status = CASE WHEN status = 'created' THEN 'running' ELSE status END")
	}
	_, err := q.Exec(ctx)
	return dbErr("set next run", err)
}

// SendableUntil reports until when a mailing may send: the end of its
// window, when it is enabled and its owner is not blocked (ok false
// otherwise).
func (s *Store) SendableUntil(ctx context.Context, mailingID int64) (endsAt time.Time, ok bool, err error) {
	var ends []time.Time
	err = s.db.NewRaw(`SELECT g.ends_at FROM mailings AS g JOIN users AS u ON u.id = g.owner_id
		WHERE g.id = ? AND g.disabled_at IS NULL AND u.blocked_at IS NULL`, mailingID).Scan(ctx, &ends)
	if err != nil || len(ends) == 0 {
		return time.Time{}, false, dbErr("sendable", err)
	}
	return ends[0], true, nil
}

// Unmailable returns the ids of those claims that may no longer be mailed
// as claimed: deleted, unsubscribed or hard-bounced since, or given
// another address.
func (s *Store) Unmailable(ctx context.Context, claims []Claim) ([]int64, error) {
	ids, emails := make([]int64, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		ids[i], emails[i] = c.ClientID, c.Email
	}
	var out []int64
	err := s.db.NewRaw(`SELECT n.id FROM unnest(?::bigint[], ?::text[]) AS n(id, email) LEFT JOIN clients AS c ON c.id = n.id
		WHERE c.id IS NULL OR NOT (`+mailable+`) OR lower(c.email) <> lower(n.email)`, pgdialect.Array(ids), pgdialect.Array(emails)).Scan(ctx, &out)
	return out, dbErr("unmailable", err)
}

// ErrBatchBusy is returned by LockBatch when another worker holds the batch.
var ErrBatchBusy = errors.New("batch is being processed elsewhere")

// LockBatch takes a PostgreSQL advisory lock on one batch of a run for as
// long as fn runs, so that one worker at a time sends a batch. The lock
// belongs to a database session: a worker that dies (even by SIGKILL)
// loses its connection and so its lock at once, and another may resume.
//
// fn gets a Store whose statements run on the lock's session, so that a
// worker that lost its lock (the connection broke) can write nothing more
// for the batch while another resumes it. That Store is one connection:
// it must not be used by two goroutines at once.
func (s *Store) LockBatch(ctx context.Context, runID int64, seq int, fn func(locked *Store) error) error {
	db, ok := s.db.(*bun.DB)
	if !ok {
		return errors.New("lock batch: needs a database, not a transaction")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return dbErr("lock batch", err)
	}
	defer conn.Close()
	key := batchLockKey("?::bigint", "?::int")
	var got bool
	// The lock's query runs to its answer whatever ctx does meanwhile (it
	// never waits): abandoned on its way, it could leave the session
	// holding the lock, back in the pool, and the batch busy for every
	// other worker.
	if err := conn.NewRaw("SELECT pg_try_advisory_lock("+key+")", runID, seq).Scan(context.WithoutCancel(ctx), &got); err != nil {
		return dbErr("lock batch", err)
	}
	if !got {
		return ErrBatchBusy
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")", runID, seq) //nolint:errcheck // closing the session unlocks too
	return fn(New(conn))
}

// batchLockSpace sets batch locks apart from any other advisory lock.
const batchLockSpace int64 = 0x52b

// batchLockKey is, in SQL, the advisory lock's key of the batch of run and
// seq (SQL expressions): LockBatch takes it, and OrphanedBatches looks for
// it in pg_locks. (PostgreSQL's bit operators bind alike, left to right:
// each is bracketed.)
func batchLockKey(run, seq string) string {
	return fmt.Sprintf("((%d::bigint << 48) | ((%s & 4294967295) << 16) | (%s & 65535))", batchLockSpace, run, seq)
}
