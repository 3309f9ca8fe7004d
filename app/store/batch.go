package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"rassylka/app/model"
)

// BatchStatements are the statements a batch runs as it sends: the read
// of its next recipients, and the write that records a chunk's outcomes
// and claims the next chunk, prepared once for the batch. bun's driver
// sends any other statement as text, which PostgreSQL parses and plans on
// every call.
//
// A chunk is claimed on the batch's row (run_batches.claimed) before it is
// sent, and each recipient's attempt is written once, with its outcome,
// after the send, by the statement that claims the next chunk: one
// statement per chunk, one attempt row written per recipient. The
// recipients are read ahead, several chunks at a time, by a statement of
// their own: claiming a chunk only checks that its recipients may still be
// mailed. A batch that starts again finds the claim a dead worker left and
// records its recipients without an attempt as failures with an unknown
// outcome (RecoverInterrupted).
type BatchStatements struct {
	claimStamp time.Time // the stamp of the last claim asked for
	batch      *model.RunBatch
	run        *model.Run
	prepare    func(context.Context, string) (*sql.Stmt, error)
	next       *sql.Stmt
	record     [recordParts]*sql.Stmt // by the parts a chunk needs, prepared when first needed
	nextArgs   []any                  // after the cursor and the limit
}

// PrepareBatch prepares the statements of a batch of run r. On the Store of
// LockBatch they are prepared on, and bound to, the lock's connection; on a
// pool, database/sql prepares them again on whichever connection runs them.
func (s *Store) PrepareBatch(ctx context.Context, r *model.Run, b *model.RunBatch) (*BatchStatements, error) {
	var p interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}
	switch db := s.db.(type) {
	case *bun.DB:
		p = db.DB
	case bun.Conn:
		p = db.Conn
	case bun.Tx:
		p = db.Tx
	default:
		return nil, fmt.Errorf("prepare batch: cannot prepare on %T", s.db)
	}
	q, args := nextSQL(r, b)
	next, err := p.PrepareContext(ctx, q)
	if err != nil {
		return nil, dbErr("prepare next recipients", err)
	}
	return &BatchStatements{batch: b, run: r, prepare: p.PrepareContext, next: next, nextArgs: args}, nil
}

// ClaimStamp is the stamp of the claim the last Record asked for, written
// with it in run_batches.claim_stamp: found there, the statement was made
// (its answer may have been lost), even when another claim of the same
// recipients might be there instead (a batch resumed meanwhile claims
// the ones this one asked for).
func (p *BatchStatements) ClaimStamp() time.Time { return p.claimStamp }

// pgTime is how a time is written for PostgreSQL, to the microsecond it
// keeps.
const pgTime = "2006-01-02 15:04:05.999999-07:00"

// Close frees the statements on the server; the connection stays.
func (p *BatchStatements) Close() error {
	err := p.next.Close()
	for _, st := range p.record {
		if st != nil {
			err = errors.Join(err, st.Close())
		}
	}
	return err
}

// nextSQL writes the read of the batch's next recipients with its cursor as
// $1 and its limit as $2, and returns the values of its other parameters,
// which stay the same for the batch. Which source it walks, and whether the
// range has an end, change the statement's text, so a batch prepares the
// one it needs. Parameters are cast: PostgreSQL cannot always infer their
// types, and a prepared statement's types are fixed when it is parsed.
func nextSQL(r *model.Run, b *model.RunBatch) (string, []any) {
	args := []any{r.ID}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args)+2) + "::bigint"
	}
	var src, key string
	if r.RetryOf != nil {
		key = "f.client_id"
		src = `SELECT c.id AS client_id FROM attempts AS f JOIN clients AS c ON c.id = f.client_id
			WHERE f.run_id = ` + param(*r.RetryOf) + ` AND ` + retryableFailure + ` AND f.client_id > $1::bigint`
	} else {
		key = "src.client_id"
		mailing := param(r.MailingID)
		src = `SELECT c.id AS client_id FROM mailing_recipients AS src JOIN clients AS c ON c.id = src.client_id
			WHERE src.mailing_id = ` + mailing + ` AND src.client_id > $1::bigint`
		if r.RestOf != nil {
			src += ` AND NOT ` + settledSince("c.id", mailing, param(*r.RestOf), "$3::bigint")
		}
	}
	// The range is repeated on the clients' key: the planner does not carry
	// an inequality across the join, and a merge join would otherwise read
	// the clients' index from the first client up to the cursor, a cost
	// growing with the run.
	src += ` AND c.id > $1::bigint`
	if b.ToID != nil {
		to := param(*b.ToID)
		src += ` AND ` + key + ` <= ` + to + ` AND c.id <= ` + to
	}
	return src + ` AND ` + mailable + `
		AND NOT EXISTS (SELECT 1 FROM attempts AS a WHERE a.run_id = $3::bigint AND a.client_id = c.id)
		ORDER BY ` + key + ` LIMIT $2::bigint`, args
}

// Next reads the batch's next recipients after the client id after, up to
// limit, that may be mailed (not unsubscribed, not bounced) and have no
// attempt in this run yet (nor, for a rest, a settled one in the runs
// since its full run), in client id order. It walks the source by its
// index from the cursor (the recipients' primary key, or the retried
// run's attempts), never the whole list, so the cost of a read does not
// grow with the run. Nothing is claimed: Record claims them.
func (p *BatchStatements) Next(ctx context.Context, after int64, limit int) ([]int64, error) {
	args := append([]any{max(after, p.batch.FromID), limit}, p.nextArgs...)
	rows, err := p.next.QueryContext(ctx, args...)
	if err != nil {
		return nil, dbErr("next recipients", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, dbErr("next recipients", err)
		}
		out = append(out, id)
	}
	return out, dbErr("next recipients", rows.Err())
}

// recordSQL writes a chunk's outcomes, given as arrays, and replaces the
// batch's claim with the next chunk's recipients ($12) that may still be
// mailed (read ahead, they may have unsubscribed, bounced or gone since).
// A recipient with no attempt yet gets one (a client deleted since the
// claim keeps its address, with no client); one whose attempt was written
// while its send was tried again (ID set) has it completed, found by
// primary key alone, and only while it is pending (recordCompletes). An
// attempt already there otherwise (recorded by a batch that resumed
// meanwhile) is neither written nor counted again. Clients whose address
// does not exist ($14) are marked hard-bounced (recordBounces), unless
// their owner has changed the address since it was claimed. It returns
// the status of each attempt written ('bounced' for their failures) and a
// row ('claimed', with address and name) for each recipient claimed.
//
// The parts most chunks do not need are left out of the statement rather
// than given nothing to do: PostgreSQL would still plan and start them,
// and a plan made while the run's attempts were few (its generic plan,
// kept for the batch) completes attempts by reading all of them, on every
// chunk.
func recordSQL(parts int) string {
	status := "status" // of each attempt written; 'bounced' for a bounce
	if parts&recordBounces != 0 {
		status = "CASE WHEN client_id = ANY($14::bigint[]) THEN 'bounced' ELSE status END"
	}
	q := `
	WITH x AS (
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[], $8::timestamptz[])
			AS x(id, client_id, email, status, code, response, tries, at)
	), added AS (
		INSERT INTO attempts AS a (run_id, mailing_id, client_id, email, status, code, response, tries, attempted_at)
		SELECT $9::bigint, $10::bigint, c.id, x.email, x.status, nullif(x.code, 0), x.response, x.tries, x.at
		FROM x LEFT JOIN clients AS c ON c.id = x.client_id
		WHERE x.id = 0
		ON CONFLICT (run_id, client_id) DO NOTHING
		RETURNING a.status, a.client_id
	)`
	if parts&recordCompletes != 0 {
		q += `, completed AS (
		UPDATE attempts AS a SET status = x.status, code = nullif(x.code, 0), response = x.response, tries = x.tries, attempted_at = x.at
		FROM x WHERE x.id <> 0 AND a.id = x.id AND a.status = 'pending'
		RETURNING a.status, a.client_id
	)`
	}
	if parts&recordBounces != 0 {
		q += `, bounced AS (
		UPDATE clients SET bounced_at = coalesce(bounced_at, now()), updated_at = now()
		FROM x WHERE clients.id = x.client_id AND x.client_id = ANY($14::bigint[]) AND lower(clients.email) = lower(x.email)
	)`
	}
	q += `, next AS (
		SELECT c.id, c.email, c.full_name FROM unnest($12::bigint[]) AS n(id) JOIN clients AS c ON c.id = n.id
		WHERE ` + mailable + `
	), claim AS (
		UPDATE run_batches SET claimed = ARRAY(SELECT id FROM next ORDER BY id),
			claimed_emails = ARRAY(SELECT email FROM next ORDER BY id), claimed_at = now(), claim_stamp = $13::timestamptz
		WHERE run_id = $9::bigint AND seq = $11::int
	)
	SELECT ` + status + `, 0::bigint, '', '' FROM added`
	if parts&recordCompletes != 0 {
		q += `
	UNION ALL SELECT ` + status + `, 0, '', '' FROM completed`
	}
	return q + `
	UNION ALL SELECT 'claimed', id, email, full_name FROM next`
}

// The parts of recordSQL a chunk may need beyond writing new attempts and
// claiming the next chunk.
const (
	recordCompletes = 1 << iota // attempts written before, pending
	recordBounces               // clients to mark hard-bounced
	recordParts     = 1 << iota // how many combinations
)

// Record writes the outcomes of the claimed recipients that were sent to
// (marking the bounced ones), and claims the recipients of next (client
// ids from Next) that may still be mailed, in one statement. It returns
// what it wrote, for the run's counters, and what it claimed, in client id
// order. A claimed recipient missing from rs (never sent: the worker is
// stopping) has no attempt and is read again when the batch resumes. With
// no next it clears the claim.
func (p *BatchStatements) Record(ctx context.Context, rs []AttemptResult, next []int64) (RunCounts, []Claim, error) {
	var ids, clients, emails, statuses, codes, responses, tries, ats, bounced, claim arrayLiteral
	parts := 0
	for _, r := range rs {
		if r.Bounced {
			bounced.addInt(r.ClientID)
			parts |= recordBounces
		}
		if r.ID != 0 {
			parts |= recordCompletes
		}
		ids.addInt(r.ID)
		clients.addInt(r.ClientID)
		emails.addText(r.Email)
		statuses.addText(string(r.Status))
		codes.addInt(int64(r.Code))
		responses.addText(r.Response)
		tries.addInt(int64(r.Tries))
		ats.addText(r.At.UTC().Format(pgTime))
	}
	for _, id := range next {
		claim.addInt(id)
	}
	// The claim is stamped with a time of the batch's own making, which
	// tells its claim from any other (see ClaimStamp).
	p.claimStamp = time.Now().UTC().Truncate(time.Microsecond)
	args := []any{ids.String(), clients.String(), emails.String(), statuses.String(),
		codes.String(), responses.String(), tries.String(), ats.String(), p.run.ID, p.run.MailingID, p.batch.Seq, claim.String(),
		p.claimStamp.Format(pgTime)}
	if parts&recordBounces != 0 {
		args = append(args, bounced.String())
	}
	st := p.record[parts]
	if st == nil {
		var err error
		if st, err = p.prepare(ctx, recordSQL(parts)); err != nil {
			return RunCounts{}, nil, dbErr("prepare record", err)
		}
		p.record[parts] = st
	}
	// A client deleted while the statement runs is seen by the join but
	// gone when the key is checked, which fails the statement (or, with
	// its attempt's update, deadlocks). Nothing was written then, and once
	// the delete has committed the join sees it: the statement runs again,
	// rather than leave the chunk's outcomes to be recorded as unknown.
	for try := 1; ; try++ {
		c, claims, err := p.write(ctx, st, args)
		if err == nil || try == 3 || !retryable(err) {
			return c, claims, err
		}
	}
}

func (p *BatchStatements) write(ctx context.Context, st *sql.Stmt, args []any) (RunCounts, []Claim, error) {
	var c RunCounts
	var claims []Claim
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return c, nil, dbErr("record chunk", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var cl Claim
		if err := rows.Scan(&kind, &cl.ClientID, &cl.Email, &cl.FullName); err != nil {
			return c, nil, dbErr("record chunk", err)
		}
		switch model.AttemptStatus(kind) {
		case model.AttemptSuccess:
			c.Succeeded++
		case model.AttemptFailure:
			c.Failed++
		case "bounced":
			c.Failed++
			c.Bounced++
		case "claimed":
			claims = append(claims, cl)
		}
	}
	if err := rows.Err(); err != nil {
		return c, nil, dbErr("record chunk", err)
	}
	slices.SortFunc(claims, func(a, b Claim) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return c, claims, nil
}

// retryable reports whether a statement failed for a concurrent change
// and may succeed when run again: a key that vanished meanwhile, or a
// deadlock.
func retryable(err error) bool {
	switch sqlState(err) {
	case "23503", "40P01": // foreign_key_violation, deadlock_detected
		return true
	}
	return false
}

// arrayLiteral builds the text form of a PostgreSQL array ('{1,"a b"}'):
// bun's driver sends a prepared statement's parameters as text, and has no
// encoding of its own for slices there.
type arrayLiteral struct{ b strings.Builder }

func (a *arrayLiteral) sep() {
	if a.b.Len() == 0 {
		a.b.WriteByte('{')
	} else {
		a.b.WriteByte(',')
	}
}

func (a *arrayLiteral) addInt(v int64) {
	a.sep()
	a.b.WriteString(strconv.FormatInt(v, 10))
}

// addText adds v quoted, so that no character of it (comma, brace, quote,
// backslash, space, the word NULL) is read as the array's syntax.
func (a *arrayLiteral) addText(v string) {
	a.sep()
	a.b.WriteByte('"')
	for _, r := range v {
		if r == '"' || r == '\\' {
			a.b.WriteByte('\\')
		}
		a.b.WriteRune(r)
	}
	a.b.WriteByte('"')
}

func (a *arrayLiteral) String() string {
	if a.b.Len() == 0 {
		return "{}"
	}
	return a.b.String() + "}"
}
