package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"rassylka/app/mail/mailsink"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// TestSoakFaults is a fault-injection soak, skipped unless RASSYLKA_SOAK is
// set (to how long to run, such as 60m; 1 or any other value: ten
// minutes). Round after round it starts a run of a few thousand recipients,
// sends it with real worker processes against a private PostgreSQL and
// Redis, and injects faults at random moments: SIGKILL of a worker (of one
// of two), SIGSTOP past Asynq's lease, a PostgreSQL restart, FLUSHALL, and
// an SMTP server that cuts connections mid-DATA, stalls, or answers 421 or
// 451 for a while. Each round then checks the contract of DESIGN.md §3:
// one attempt per recipient, no address mailed twice, every address mailed
// recorded as a success or an unknown outcome, the run finished, and its
// counters agreeing with its attempts. RASSYLKA_SOAK_SEED repeats a round.
func TestSoakFaults(t *testing.T) {
	spec := os.Getenv("RASSYLKA_SOAK")
	if spec == "" {
		t.Skip("a soak: set RASSYLKA_SOAK=1 (or a duration such as 60m) to run it")
	}
	budget, err := time.ParseDuration(spec)
	if err != nil {
		budget = 10 * time.Minute
	}
	end := time.Now().Add(budget)
	pg := testkit.PostgresServer(t)
	db := store.Open(pg.URL)
	t.Cleanup(func() { db.Close() })
	rp := testkit.RedisProcess(t)
	redisURL := "redis://" + rp.Addr + "/0"
	rdb := redis.NewClient(&redis.Options{Addr: rp.Addr})
	t.Cleanup(func() { rdb.Close() })
	bin := t.TempDir() + "/worker"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("RASSYLKA_SOAK_SEED"), 10, 64); err == nil {
		seed, end = s, time.Time{}
	}
	faults := map[string]int{}
	for round := 1; ; round++ {
		s := seed + uint64(round) - 1
		t.Run(fmt.Sprintf("round%d-seed%d", round, s), func(t *testing.T) {
			r := &soakRound{t: t, rng: rand.New(rand.NewPCG(s, s)), pg: pg, rdb: rdb, faults: faults}
			n := 2000 + r.rng.IntN(3001)
			r.run(newSendingWorldOn(t, db, pg.URL, redisURL, fmt.Sprintf("r%d-", s), n, "Hello {{name}}", bin), n)
		})
		if !time.Now().Before(end) {
			t.Logf("%d rounds; faults injected: %v", round, faults)
			return
		}
	}
}

// soakRound is one round of the soak: its workers and its pending events.
type soakRound struct {
	t       *testing.T
	rng     *rand.Rand
	pg      *testkit.PGServer
	pgDown  bool
	rdb     *redis.Client
	w       *sendingWorld
	env     []string
	workers []*soakWorker
	events  []soakEvent
	log     []string
	start   time.Time
	stall   time.Duration // the SMTP server's, between faults
	faults  map[string]int
}

type soakWorker struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when it exits
	stopped bool
}

func (w *soakWorker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

type soakEvent struct {
	at time.Time
	fn func()
}

func (r *soakRound) note(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("%6.2fs ", time.Since(r.start).Seconds())+fmt.Sprintf(format, args...))
}

func (r *soakRound) later(d time.Duration, fn func()) {
	r.events = append(r.events, soakEvent{time.Now().Add(d), fn})
}

// runDue runs the events due (all of them with all set).
func (r *soakRound) runDue(all bool) {
	for i := 0; i < len(r.events); {
		if e := r.events[i]; all || !time.Now().Before(e.at) {
			r.events = append(r.events[:i], r.events[i+1:]...)
			e.fn()
			continue
		}
		i++
	}
}

func (r *soakRound) alive() []*soakWorker {
	var out []*soakWorker
	for _, w := range r.workers {
		if !w.dead() {
			out = append(out, w)
		}
	}
	return out
}

func (r *soakRound) startWorker() {
	w := &soakWorker{cmd: r.w.worker(r.t, r.env...), exited: make(chan struct{})}
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	r.workers = append(r.workers, w)
	r.note("worker %d started", len(r.workers))
}

func (r *soakRound) kill(w *soakWorker) {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
}

func (r *soakRound) pick(ws []*soakWorker) *soakWorker { return ws[r.rng.IntN(len(ws))] }

func (r *soakRound) index(w *soakWorker) int {
	for i, x := range r.workers {
		if x == w {
			return i + 1
		}
	}
	return 0
}

// fault injects one fault chosen at random.
func (r *soakRound) fault() {
	r.t.Helper()
	kinds := []string{"kill", "kill", "kill-all", "stop", "stop", "stop-pg-restart", "pg-restart", "flushall", "smtp-cut", "smtp-slow", "smtp-421", "smtp-451"}
	kind := kinds[r.rng.IntN(len(kinds))]
	alive := r.alive()
	switch kind {
	case "kill":
		if len(alive) == 0 {
			return
		}
		w := r.pick(alive)
		r.kill(w)
		r.note("SIGKILL worker %d", r.index(w))
		if len(alive) == 1 || r.rng.IntN(2) == 0 {
			r.later(time.Duration(r.rng.IntN(3000))*time.Millisecond, r.startWorker)
		}
	case "kill-all":
		for _, w := range alive {
			r.kill(w)
		}
		r.note("SIGKILL of every worker")
		r.later(time.Duration(r.rng.IntN(3000))*time.Millisecond, r.startWorker)
	case "stop", "stop-pg-restart":
		var up []*soakWorker
		for _, w := range alive {
			if !w.stopped {
				up = append(up, w)
			}
		}
		if len(up) == 0 {
			return
		}
		w := r.pick(up)
		d := time.Duration(1000+r.rng.IntN(4000)) * time.Millisecond
		switch r.rng.IntN(4) {
		case 0, 1:
			d = time.Duration(31+r.rng.IntN(15)) * time.Second // past Asynq's lease
		case 2:
			d = time.Duration(61+r.rng.IntN(10)) * time.Second // past the SMTP server's read timeout too
		}
		_ = w.cmd.Process.Signal(syscall.SIGSTOP)
		w.stopped = true
		r.note("SIGSTOP worker %d for %s", r.index(w), d)
		r.later(d, func() {
			if !w.dead() {
				_ = w.cmd.Process.Signal(syscall.SIGCONT)
				r.note("SIGCONT worker %d", r.index(w))
			}
			w.stopped = false
		})
		if kind == "stop" {
			break
		}
		// The stopped worker's sessions end (its batch locks with them)
		// while it cannot tell.
		fallthrough
	case "pg-restart":
		if r.pgDown {
			return
		}
		r.pg.Stop()
		r.pgDown = true
		d := time.Duration(r.rng.IntN(3000)) * time.Millisecond
		r.note("PostgreSQL stopped for %s", d)
		r.later(d, func() {
			r.pg.Start()
			r.pgDown = false
			r.note("PostgreSQL started")
		})
	case "flushall":
		if err := r.rdb.FlushAll(context.Background()).Err(); err != nil {
			r.t.Fatal(err)
		}
		r.note("FLUSHALL")
	case "smtp-cut":
		p := 0.05 + r.rng.Float64()*0.3
		after := r.rng.IntN(2) == 0
		rng := rand.New(rand.NewPCG(r.rng.Uint64(), 0))
		r.w.sink.CutData(func([]string) mailsink.Cut {
			switch {
			case rng.Float64() >= p:
				return mailsink.NoCut
			case after:
				return mailsink.CutAfter
			}
			return mailsink.CutBefore
		})
		d := r.smtpWhile()
		r.note("SMTP cuts %.0f%% of messages (after keeping them: %v) for %s", p*100, after, d)
		r.later(d, func() { r.w.sink.CutData(nil); r.note("SMTP cuts end") })
	case "smtp-slow":
		stall := time.Duration(100+r.rng.IntN(1500)) * time.Millisecond
		r.w.sink.Stall(stall)
		d := r.smtpWhile()
		r.note("SMTP stalls %s for %s", stall, d)
		r.later(d, func() { r.w.sink.Stall(r.stall); r.note("SMTP stall ends") })
	case "smtp-421":
		r.w.sink.RejectMail(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Try again later"})
		d := r.smtpWhile()
		r.note("SMTP answers MAIL with 421 for %s", d)
		r.later(d, func() { r.w.sink.RejectMail(nil); r.note("SMTP 421 ends") })
	case "smtp-451":
		r.w.sink.RejectData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error"})
		d := r.smtpWhile()
		r.note("SMTP answers DATA with 451 for %s", d)
		r.later(d, func() { r.w.sink.RejectData(nil); r.note("SMTP 451 ends") })
	}
	r.faults[kind]++
}

// smtpWhile is how long an SMTP fault lasts: a few seconds, less than the
// first retry's wait mostly.
func (r *soakRound) smtpWhile() time.Duration {
	return time.Duration(500+r.rng.IntN(6000)) * time.Millisecond
}

var soakStalls = []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}

func (r *soakRound) run(w *sendingWorld, total int) {
	t := r.t
	ctx := context.Background()
	r.w, r.start = w, time.Now()
	w.svc.BatchSize = []int{250, 500, 1000, 2000}[r.rng.IntN(4)]
	r.stall = soakStalls[r.rng.IntN(len(soakStalls))]
	w.sink.Stall(r.stall)
	r.env = append(append([]string{}, crashWorkerEnv...),
		"MAIL_CONCURRENCY="+strconv.Itoa([]int{2, 4, 8}[r.rng.IntN(3)]),
		"WORKER_CONCURRENCY="+strconv.Itoa([]int{2, 4}[r.rng.IntN(2)]))
	run := w.startRun(t)
	r.note("run %d of %d recipients, batches of %d, stall %s, %v", run.ID, total, w.svc.BatchSize, r.stall, r.env[len(r.env)-2:])
	defer func() {
		r.runDue(true)
		for _, w := range r.alive() {
			_ = w.cmd.Process.Signal(syscall.SIGCONT)
			r.kill(w)
		}
		if t.Failed() {
			logs, _ := os.ReadFile(w.logs)
			if len(logs) > 20000 {
				logs = logs[len(logs)-20000:]
			}
			t.Logf("faults:\n%s\nworker log (end):\n%s", strings.Join(r.log, "\n"), logs)
		}
	}()
	r.startWorker()
	if r.rng.IntN(2) == 0 {
		r.startWorker()
	}

	// Faults, until the run ends or for up to half a minute.
	faultsEnd := time.Now().Add(time.Duration(5+r.rng.IntN(26)) * time.Second)
	next := time.Now().Add(time.Duration(r.rng.IntN(2000)) * time.Millisecond)
	for time.Now().Before(faultsEnd) {
		if fin, _ := r.finished(ctx, run.ID); fin {
			break
		}
		r.runDue(false)
		if time.Now().After(next) {
			r.fault()
			next = time.Now().Add(time.Duration(200+r.rng.IntN(3000)) * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.runDue(true) // the faults end: workers go on, PostgreSQL is up, the SMTP server answers
	r.note("faults end")

	deadline := time.Now().Add(8 * time.Minute)
	for {
		fin, err := r.finished(ctx, run.ID)
		if fin {
			break
		}
		if len(r.alive()) == 0 { // killed, or exited at its start while PostgreSQL was down
			r.startWorker()
		}
		if time.Now().After(deadline) {
			t.Errorf("STUCK: the run did not finish 8 minutes after the faults ended (%v)", err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.note("run finished")
	time.Sleep(2 * time.Second) // a send that outlived its worker's record lands
	r.check(ctx, run.ID, total)
	t.Logf("%s", strings.Join(r.log, "\n"))
}

func (r *soakRound) finished(ctx context.Context, runID int64) (bool, error) {
	run, err := r.w.st.RunByID(ctx, runID)
	if err != nil {
		return false, err
	}
	return run.FinishedAt != nil, nil
}

// check asserts DESIGN.md §3 on the run's attempts, the mail received and
// the run's row.
func (r *soakRound) check(ctx context.Context, runID int64, total int) {
	t := r.t
	var attempts []model.Attempt
	if err := r.w.db.NewSelect().Model(&attempts).Where("run_id = ?", runID).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]model.Attempt{}
	perClient := map[int64]int{}
	var success, failure, interrupted int
	for _, a := range attempts {
		if a.ClientID == nil {
			t.Errorf("attempt %d of %s has no client", a.ID, a.Email)
			continue
		}
		perClient[*a.ClientID]++
		if perClient[*a.ClientID] == 2 {
			t.Errorf("DOUBLE ATTEMPT: client %d (%s) has two attempts", *a.ClientID, a.Email)
		}
		byAddr[strings.ToLower(a.Email)] = a
		switch a.Status {
		case model.AttemptSuccess:
			success++
		case model.AttemptFailure:
			failure++
			if a.Response == "interrupted: outcome unknown" {
				interrupted++
			}
		default:
			t.Errorf("attempt of %s left %s", a.Email, a.Status)
		}
	}
	if len(perClient) != total {
		t.Errorf("LOST RECIPIENTS: %d of %d recipients have an attempt", len(perClient), total)
	}
	got := r.w.received()
	for addr, n := range got {
		if n > 1 {
			t.Errorf("DOUBLE SEND: %s received %d messages (attempt %+v)", addr, n, byAddr[addr])
		}
		a, ok := byAddr[strings.ToLower(addr)]
		switch {
		case !ok:
			t.Errorf("%s received mail but has no attempt", addr)
		case a.Status == model.AttemptSuccess, a.Response == "interrupted: outcome unknown":
		case a.Status == model.AttemptFailure && a.Code == nil:
			// the conversation broke after the data: unknown outcome
		default:
			t.Errorf("WRONG OUTCOME: %s received mail but its attempt says %s %v %q", addr, a.Status, a.Code, a.Response)
		}
	}
	for addr, a := range byAddr {
		if a.Status == model.AttemptSuccess && got[addr] == 0 {
			t.Errorf("FALSE SUCCESS: %s has a success attempt but received nothing", addr)
		}
	}
	run, err := r.w.st.RunByID(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.FinishedAt != nil && (run.Total != total || run.Succeeded+run.Failed+run.Skipped != total ||
		run.Succeeded != success || run.Failed != failure) {
		t.Errorf("WRONG COUNTS: run total %d succeeded %d failed %d skipped %d; attempts: %d success, %d failure, of %d recipients",
			run.Total, run.Succeeded, run.Failed, run.Skipped, success, failure, total)
	}
	r.note("%d recipients: %d success, %d failure (%d interrupted), %d addresses received mail", total, success, failure, interrupted, len(got))
}
