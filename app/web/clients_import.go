package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/store"
	"rassylka/app/web/form"
	"rassylka/views/clients"
)

const (
	// MaxImportBytes is the largest CSV accepted.
	MaxImportBytes = 20 << 20
	importBatch    = 1000
	maxRejectsShow = 1000
	// DefaultImportWait is how long the answer to an import waits for it
	// to finish and show its report; a longer import answers with its own
	// page, where a progress bar follows it.
	DefaultImportWait = 2 * time.Second
	// importStalled is how long an unfinished import may go without
	// telling its progress before its page says it stopped (the process
	// running it was killed).
	importStalled = 90 * time.Second
	importBeat    = 5 * time.Second
	// importStatsEvery is how often an import under way renews its
	// owner's statistics.
	importStatsEvery = time.Second
	// importsHeld bounds the imports a process holds, the one running
	// and those waiting for their turn, each with its file in memory.
	importsHeld = 4
	// importKept is how long an import's page (its report) stays.
	importKept = 24 * time.Hour
)

// Where an import stands.
const (
	importWaiting = "waiting" // for the one before it, in this process, to end
	importRunning = "running"
	importDone    = "done"
	importStopped = "stopped" // before its end: Problem says why
)

// importJob is an import in the background, as its page shows it; it lives
// in Redis under importKey, so any web process can show it.
type importJob struct {
	ID     string         `json:"-"`
	Owner  int64          `json:"owner"`
	File   string         `json:"file"`
	State  string         `json:"state"`
	Size   int64          `json:"size"` // bytes
	Read   int64          `json:"read"` // bytes read so far
	Line   int            `json:"line"` // the rows up to it are imported or rejected
	Report clients.Report `json:"report"`
	// LineRejected is how many of Report's rejected rows are up to Line:
	// the rows read after it are neither imported nor counted when the
	// import stops before its end.
	LineRejected int `json:"line_rejected"`
	// Problem says why the import stopped before its end.
	Problem string    `json:"problem,omitempty"`
	Beat    time.Time `json:"beat"` // when the job last told its progress
}

// importPath is where a CSV file is sent to be imported.
const importPath = "/clients/import"

func importKey(id string) string        { return "import:" + id }
func importOwnerKey(owner int64) string { return "import:owner:" + strconv.FormatInt(owner, 10) }
func importURL(id string) string        { return "/clients/import/" + id }
func (j *importJob) finished() bool     { return j.State == importDone || j.State == importStopped }
func (j *importJob) stalled(now time.Time) bool {
	return !j.finished() && now.Sub(j.Beat) > importStalled
}

func (s *Server) importForm(c *fiber.Ctx) error {
	v := clients.ImportView{Running: s.importUnderWay(c.UserContext(), auth.UserID(c))}
	return render(c, fiber.StatusOK, clients.ImportPage(s.page(c, "Import clients"), v))
}

// importClients takes an uploaded CSV and imports it in the background
// (runImport). The answer waits for it up to the import wait and shows
// the report; a longer import answers with its page and a progress bar.
// importTooLarge refuses, with the import's page, an upload larger than
// the server reads of one (bodyLimit marked it): its body is not read,
// not even for its CSRF token (nothing changes).
func (s *Server) importTooLarge(c *fiber.Ctx) error {
	n, ok := c.Locals(localTooLarge).(int)
	if !ok {
		return c.Next()
	}
	return render(c, fiber.StatusRequestEntityTooLarge, clients.ImportPage(s.page(c, "Import clients"), clients.ImportView{
		Error: fmt.Sprintf("The file is about %.0f MB; files up to 20 MB can be imported. Split it and import the parts.", float64(n)/(1<<20))}))
}

// One import per owner runs at a time.
func (s *Server) importClients(c *fiber.Ctx) error {
	uid := auth.UserID(c)
	refuse := func(status int, msg string) error {
		return render(c, status, clients.ImportPage(s.page(c, "Import clients"), clients.ImportView{Error: msg}))
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return refuse(fiber.StatusUnprocessableEntity, "Choose a CSV file to import.")
	}
	if fh.Size > MaxImportBytes {
		return refuse(fiber.StatusRequestEntityTooLarge,
			fmt.Sprintf("The file is %.1f MB; files up to 20 MB can be imported. Split it and import the parts.", float64(fh.Size)/(1<<20)))
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	// The upload is gone once the answer is sent: the import keeps a copy.
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("read upload: %w", err)
	}
	// A file that is no clients CSV at all is refused at once.
	errFirstRow := errors.New("the first row is read")
	err = form.ReadClientsCSV(bytes.NewReader(data), func(form.CSVRow) error { return errFirstRow })
	var notCSV *form.NotCSVError
	if errors.As(err, &notCSV) {
		return refuse(fiber.StatusUnprocessableEntity, notCSV.Why)
	}
	if errors.Is(err, form.ErrCSVHeader) {
		return refuse(fiber.StatusUnprocessableEntity, "This does not look like a clients CSV: "+err.Error()+".")
	}

	select {
	case s.importsHeld <- struct{}{}:
	default:
		return refuse(fiber.StatusServiceUnavailable, "Other files are being imported right now. Please try again in a minute.")
	}
	held := true // given back here unless the import takes it along
	defer func() {
		if held {
			<-s.importsHeld
		}
	}()
	ctx := c.UserContext()
	job := &importJob{ID: newImportID(), Owner: uid, File: fh.Filename, State: importWaiting, Size: int64(len(data)), Beat: time.Now()}
	ok, err := s.redis.SetNX(ctx, importOwnerKey(uid), job.ID, importStalled).Result()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if !ok {
		v := clients.ImportView{Error: "Your previous import is still under way; import this file once it has finished.",
			Running: s.importUnderWay(ctx, uid)}
		return render(c, fiber.StatusConflict, clients.ImportPage(s.page(c, "Import clients"), v))
	}
	if err := s.saveImport(ctx, job); err != nil {
		return err
	}
	done := make(chan *importJob, 1)
	s.after.Add(1)
	held = false
	go func() {
		defer s.after.Done()
		defer func() { <-s.importsHeld }()
		done <- s.runImport(job, data)
	}()
	// A small file is imported before the answer, whose page is then the
	// report rather than a progress bar; either way the answer is a
	// redirect, so that reloading the page does not import the file again.
	if s.importWait >= 0 {
		wait := time.NewTimer(s.importWait)
		defer wait.Stop()
		select {
		case <-done:
		case <-wait.C:
		}
	}
	return redirect(c, importURL(job.ID))
}

// showImport is an import's page: its progress, polled by htmx (the same
// URL answers it with the box alone, and 286 once the import has ended),
// then its report. Only its owner sees it.
func (s *Server) showImport(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
		return fiber.ErrNotFound
	}
	job, err := s.loadImport(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && job.Owner != auth.UserID(c) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v := importView(job, time.Now())
	if isHTMX(c) {
		status := fiber.StatusOK
		if v.Progress == nil {
			status = StatusStopPolling
		}
		return render(c, status, clients.ImportStatus(v))
	}
	return render(c, fiber.StatusOK, clients.ImportPage(s.page(c, "Import clients"), v))
}

// importView is what an import's page shows of it at now.
func importView(j *importJob, now time.Time) clients.ImportView {
	v := clients.ImportView{File: j.File}
	switch {
	case j.State == importDone:
		v.Report = &j.Report
	case j.State == importStopped || j.stalled(now):
		r := j.Report
		r.RejectedTotal = j.LineRejected
		v.Report, v.Stopped, v.StoppedAt = &r, j.Problem, j.Line
		if v.Stopped == "" {
			v.Stopped = "the server running it stopped."
		}
	default:
		v.Progress = &clients.ImportProgress{URL: importURL(j.ID), Waiting: j.State == importWaiting,
			Read: j.Read, Size: j.Size, Line: j.Line, Counts: j.Report}
	}
	return v
}

// runImport imports the file's rows a batch at a time (one statement, so
// one transaction, per batch), telling its progress after each; a bad row
// is reported and never stops the others. Imports run one at a time in a
// process, and stop after the batch under way when it shuts down. It
// returns the job as it ended.
func (s *Server) runImport(job *importJob, data []byte) *importJob {
	ctx := s.background
	started := time.Now()
	defer func() {
		// Not ctx: the job's end is written while the process stops.
		end := context.WithoutCancel(ctx)
		if err := s.saveImport(end, job); err != nil {
			s.log.ErrorContext(end, "import: save its end", "error", err.Error())
		}
		// The owner's turn is given up only while it is this import's: a
		// hold that lapsed meanwhile may be a newer import's now.
		if err := releaseTurn.Run(end, s.redis, []string{importOwnerKey(job.Owner)}, job.ID).Err(); err != nil && !errors.Is(err, redis.Nil) {
			s.log.ErrorContext(end, "import: release the owner", "error", err.Error())
		}
		s.stats.Changed(end, job.Owner)
		s.log.InfoContext(end, "import", "owner_id", job.Owner, "state", job.State, "lines", job.Line,
			"created", job.Report.Created, "updated", job.Report.Updated, "rejected", job.Report.RejectedTotal,
			"duration_ms", time.Since(started).Milliseconds())
	}()
	stop := func(why string) *importJob {
		job.State, job.Problem = importStopped, why
		return job
	}
	beat := time.NewTicker(importBeat)
	defer beat.Stop()
wait:
	for {
		select {
		case s.importTurn <- struct{}{}:
			break wait
		case <-beat.C:
			job.Beat = time.Now()
			if err := s.saveImport(ctx, job); err != nil {
				s.log.WarnContext(ctx, "import: tell progress", "error", err.Error())
			}
		case <-ctx.Done():
			return stop("the server was restarting.")
		}
	}
	defer func() { <-s.importTurn }()
	job.State = importRunning

	in := bytes.NewReader(data)
	report := &job.Report
	seen := map[string]int{} // email -> line, to reject repeats within the file
	var batch []store.ImportRow
	var cols store.ImportColumns
	line := 0             // the last line read; the rows up to it are done once flushed
	listed := 0           // of report.Rejected, the rows up to job.Line
	var counted time.Time // when the owner's figures were last told of the rows written
	tell := func() {
		job.Read, job.Beat = job.Size-int64(in.Len()), time.Now()
		if err := s.saveImport(ctx, job); err != nil {
			s.log.WarnContext(ctx, "import: tell progress", "error", err.Error())
		}
	}
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A manager's block stops the owner's import as it ends their
		// sessions: no more of the file is written for them.
		if u, err := s.store.UserByID(ctx, job.Owner); err != nil {
			return err
		} else if u.Blocked() {
			return errImportOwnerBlocked
		}
		// The batch under way is written whole, even while the process
		// stops: the job's end then counts it.
		n, err := s.store.UpsertClientsColumns(context.WithoutCancel(ctx), job.Owner, batch, cols)
		if err != nil {
			return err
		}
		report.Created += n.Created
		report.Unsubscribed += n.Unsubscribed
		report.Updated += n.Updated
		report.UpdatedUnsub += n.UpdatedUnsubscribed
		report.Unchanged += len(batch) - n.Created - n.Updated
		batch = batch[:0]
		job.Line, job.LineRejected, listed = line, report.RejectedTotal, len(report.Rejected)
		tell()
		// The owner's figures (their clients counted) follow the import
		// as it goes, not only at its end.
		if time.Since(counted) >= importStatsEvery {
			s.stats.Changed(ctx, job.Owner)
			counted = time.Now()
		}
		return nil
	}
	err := form.ReadClientsCSV(in, func(r form.CSVRow) error {
		line = r.Line
		if time.Since(job.Beat) > time.Second {
			tell() // rows rejected one after another
		}
		cols = store.ImportColumns{Name: r.HasName, Comment: r.HasComment}
		report.Ignored = r.Ignored
		if r.Problem != "" {
			reject(report, r.Line, r.Email, r.Problem)
			return nil
		}
		if first, dup := seen[r.Email]; dup {
			reject(report, r.Line, r.Email, "the same address is on line "+strconv.Itoa(first))
			return nil
		}
		seen[r.Email] = r.Line
		batch = append(batch, store.ImportRow{Email: r.Email, FullName: r.FullName, Comment: r.Comment, UnsubscribedAt: r.UnsubscribedAt})
		if len(batch) >= importBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		// Stopped after job.Line: the rows rejected after it are read
		// again, and reported, when the file is imported again.
		report.Rejected, report.RejectedTotal = report.Rejected[:listed], job.LineRejected
	}
	switch {
	case err == nil:
		job.State, job.Read, job.Line, job.LineRejected = importDone, job.Size, line, report.RejectedTotal
	case ctx.Err() != nil:
		stop("the server was restarting.")
	case errors.Is(err, errImportOwnerBlocked):
		stop("the account was blocked by a manager.")
	default:
		s.log.ErrorContext(ctx, "import clients", "owner_id", job.Owner, "line", line, "error", err.Error())
		stop("something went wrong on our side, and it was logged.")
	}
	return job
}

// errImportOwnerBlocked stops an import whose owner a manager blocked.
var errImportOwnerBlocked = errors.New("import: the owner is blocked")

// releaseTurn deletes an owner's import key (KEYS[1]) while it names the
// import ARGV[1].
var releaseTurn = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// reject reports a row that is not imported; the report lists the first
// maxRejectsShow of them.
func reject(r *clients.Report, line int, email, reason string) {
	r.RejectedTotal++
	if len(r.Rejected) < maxRejectsShow {
		r.Rejected = append(r.Rejected, clients.Rejected{Line: line, Email: email, Reason: reason})
	}
}

// saveImport writes the job where its page reads it. While it runs only
// its counts are written; the rejected rows go with its end.
func (s *Server) saveImport(ctx context.Context, j *importJob) error {
	saved := *j
	if !j.finished() {
		saved.Report.Rejected = nil
	}
	b, err := json.Marshal(&saved)
	if err != nil {
		return err
	}
	pipe := s.redis.TxPipeline()
	pipe.Set(ctx, importKey(j.ID), b, importKept)
	if !j.finished() {
		pipe.Expire(ctx, importOwnerKey(j.Owner), importStalled)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("save import: %w", err)
	}
	return nil
}

// loadImport reads an import's job (store.ErrNotFound: none by that id, or
// its page expired).
func (s *Server) loadImport(ctx context.Context, id string) (*importJob, error) {
	b, err := s.redis.Get(ctx, importKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load import: %w", err)
	}
	j := &importJob{ID: id}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("load import: %w", err)
	}
	return j, nil
}

// newImportID names an import: random, so that its page cannot be guessed.
func newImportID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// importUnderWay is the page of the owner's import under way, or "".
func (s *Server) importUnderWay(ctx context.Context, owner int64) string {
	id, err := s.redis.Get(ctx, importOwnerKey(owner)).Result()
	if err != nil {
		return ""
	}
	if j, err := s.loadImport(ctx, id); err != nil || j.finished() || j.stalled(time.Now()) {
		return ""
	}
	return importURL(id)
}
