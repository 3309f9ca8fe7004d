package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"rassylka/app/config"
	rmail "rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// BenchmarkWorkerThroughput sends a run through one real worker process
// (queue, batches, claimed and recorded attempts) to a local SMTP server
// that accepts everything, and in the same run a raw baseline: the same
// number of pooled SMTP connections sending the same messages (composed as
// the worker composes them) with no database and no queue, from a process
// of its own as the worker is, before and after the worker. It reports
// messages per second of both, their ratio, the worker's peak resident
// memory, and the CPU time per message of the baseline's process, the
// worker, PostgreSQL and the SMTP server (this process):
//
//	scripts/test ./cmd/worker -run '^$' -bench WorkerThroughput -benchtime 1x
//
// Figures are in docs/benchmarks.md.
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, n := range []int{20000, 200000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchThroughput(b, n)
			}
		})
	}
}

const (
	benchConns = 4
	benchBody  = "Dear {{name}},\n" + "Some news worth reading. Some news worth reading. Some news worth reading. Some news worth reading.\n" +
		"Some news worth reading. Some news worth reading. Some news worth reading. Some news worth reading.\n"
	// rawSendEnv makes the test binary the baseline's sending process:
	// it sends that many messages as the worker would, with the worker's
	// settings, and prints how long that took (see TestMain).
	rawSendEnv = "RASSYLKA_BENCH_RAW_SEND"
	// loadEnv makes the test binary a load on the CPU: busy that many
	// microseconds of every millisecond (see TestMain).
	loadEnv = "RASSYLKA_BENCH_LOAD"
)

func benchThroughput(b *testing.B, n int) {
	ctx := context.Background()
	// An owner with n clients and a mailing to all of them.
	w := newSendingWorld(b, n, benchBody)
	st, sink := w.st, w.sink
	settings := []string{"MAIL_CONCURRENCY=" + strconv.Itoa(benchConns), "LOG_LEVEL=error"}
	env := append(append([]string{}, w.env...), settings...)

	// The raw baseline: pooled connections, the same messages, nothing
	// else, from a process of its own, measured before and after the
	// worker: the machine's pace drifts within a minute, and the mean of
	// both brackets the worker's run.
	rawSinkTicks := cpuTicks(isSelf)
	rawBefore, rawBeforeTicks := rawSendExec(b, env, n)
	rawSinkTicks = cpuTicks(isSelf) - rawSinkTicks
	sink.Reset()

	// The worker.
	worker := w.worker(b, settings...)
	isWorker := func(pid int, _ string) bool { return pid == worker.Process.Pid }
	postgres := ownPostgres(b, w.db.DB)
	time.Sleep(time.Second) // let it start
	b.ResetTimer()
	workerTicks, pgTicks, sinkTicks := cpuTicks(isWorker), postgres(), cpuTicks(isSelf)
	began := time.Now()
	run := w.startRun(b)
	var peak int64
	var took time.Duration
	for {
		r, err := st.RunByID(ctx, run.ID)
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, peakRSS(worker.Process.Pid))
		if r.FinishedAt != nil {
			if r.Succeeded != n {
				b.Fatalf("run %+v", r)
			}
			// Up to the run's end as the worker recorded it, not as this
			// loop saw it (up to 50 ms later, 2 % of a 20,000 run).
			took = r.FinishedAt.Sub(began)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sent := float64(n) / took.Seconds()
	workerTicks, pgTicks, sinkTicks = cpuTicks(isWorker)-workerTicks, postgres()-pgTicks, cpuTicks(isSelf)-sinkTicks
	b.StopTimer()
	if got := len(sink.Messages()); got != n {
		b.Fatalf("the SMTP server received %d messages of %d", got, n)
	}
	_ = worker.Process.Signal(syscall.SIGTERM)
	_ = worker.Wait()
	sink.Reset()
	rawAfter, rawAfterTicks := rawSendExec(b, env, n)
	raw := (rawBefore + rawAfter) / 2
	rawTicks := (rawBeforeTicks + rawAfterTicks) / 2
	perMessage := func(ticks int64) float64 { return float64(ticks) * 1e4 / float64(n) } // µs; a tick is 10 ms
	b.ReportMetric(rawBefore, "raw-before-msg/s")
	b.ReportMetric(rawAfter, "raw-after-msg/s")
	b.ReportMetric(sent, "worker-msg/s")
	b.ReportMetric(sent/raw, "ratio")
	b.ReportMetric(float64(peak)/1024, "worker-peak-MB")
	b.ReportMetric(perMessage(rawTicks), "raw-cpu-µs/msg")
	b.ReportMetric(perMessage(rawSinkTicks), "raw-smtp-server-cpu-µs/msg")
	b.ReportMetric(perMessage(workerTicks), "worker-cpu-µs/msg")
	b.ReportMetric(perMessage(pgTicks), "pg-cpu-µs/msg")
	b.ReportMetric(perMessage(sinkTicks), "smtp-server-cpu-µs/msg")
}

// BenchmarkBaselineBesideLoad measures the raw baseline of
// BenchmarkWorkerThroughput alone and beside a process that keeps the CPU
// busy for part of every millisecond, as PostgreSQL is while the worker
// sends (about a quarter of a core): what the machine leaves any sender
// that shares it with a database.
//
//	scripts/test ./cmd/worker -run '^$' -bench BaselineBesideLoad -benchtime 1x
func BenchmarkBaselineBesideLoad(b *testing.B) {
	const n = 100000
	sink := testkit.SMTP(b)
	env := append(os.Environ(), "SMTP_URL="+sink.URL(), "MAIL_CONCURRENCY="+strconv.Itoa(benchConns), "LOG_LEVEL=error")
	for _, busy := range []int{0, 250, 500} {
		b.Run("busy-"+strconv.Itoa(busy)+"us-per-ms", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var load *exec.Cmd
				if busy > 0 {
					load = exec.Command(os.Args[0], "-test.run=^$")
					load.Env = append(os.Environ(), loadEnv+"="+strconv.Itoa(busy), "GOMAXPROCS=1")
					if err := load.Start(); err != nil {
						b.Fatal(err)
					}
				}
				isLoad := func(pid int, _ string) bool { return load != nil && pid == load.Process.Pid }
				ticks, began := cpuTicks(isLoad), time.Now()
				rate, _ := rawSendExec(b, env, n)
				cores := float64(cpuTicks(isLoad)-ticks) / 100 / time.Since(began).Seconds()
				if load != nil {
					_ = load.Process.Kill()
					_ = load.Wait()
				}
				sink.Reset()
				b.ReportMetric(rate, "raw-msg/s")
				b.ReportMetric(cores, "load-cores")
			}
		})
	}
}

// loadProcess keeps the CPU busy for busy microseconds of every
// millisecond until it is killed.
func loadProcess(busy int) {
	for {
		began := time.Now()
		for time.Since(began) < time.Duration(busy)*time.Microsecond {
		}
		time.Sleep(time.Duration(1000-busy) * time.Microsecond)
	}
}

// rawSendExec runs the baseline's sending process (this test binary, see
// TestMain) with env, and returns its messages per second and CPU ticks.
func rawSendExec(b *testing.B, env []string, n int) (float64, int64) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env, rawSendEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("raw sender: %v", err)
	}
	var nanos, ticks int64
	if _, err := fmt.Sscan(string(out), &nanos, &ticks); err != nil {
		b.Fatalf("raw sender said %q: %v", out, err)
	}
	return float64(n) / time.Duration(nanos).Seconds(), ticks
}

func benchAddress(i int) string { return fmt.Sprintf("c%06d@example.com", i) }

// rawSend sends n messages as the worker would compose them for the
// benchmark's mailing, over the pool the worker would open with cfg, with
// nothing else, and returns how long that took.
func rawSend(ctx context.Context, cfg config.Config, n int) (time.Duration, error) {
	base, _ := url.Parse(cfg.BaseURL)
	sender, err := rmail.NewSender(cfg.SMTPURL, cfg.MailFrom, base.Hostname())
	if err != nil {
		return 0, err
	}
	pool := rmail.NewPool(sender, cfg.MailConcurrency, nil)
	defer pool.Close()
	svc := &sending.Service{BaseURL: cfg.BaseURL, Secret: cfg.SessionSecret}
	m := &model.Mailing{OwnerID: 1}
	msg := &sending.Letter{Message: &model.Message{Subject: "News", Body: benchBody}}
	began := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for w := 0; w < cfg.MailConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c := store.Claim{ClientID: int64(i + 1), Email: benchAddress(i), FullName: "Reader"}
				if res := pool.Send(ctx, svc.Compose(m, msg, c)); res.Class != rmail.Delivered {
					mu.Lock()
					failed = fmt.Errorf("baseline send: %+v", res)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return time.Since(began), failed
}

// rawSendProcess is the baseline's sending process (TestMain), with the
// worker's garbage collector setting: it prints the nanoseconds the sends
// took and its CPU time in clock ticks.
func rawSendProcess(n int) int {
	debug.SetGCPercent(gcPercent) // as the worker's
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ticks := cpuTicks(isSelf)
	took, err := rawSend(context.Background(), cfg, n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(took.Nanoseconds(), cpuTicks(isSelf)-ticks)
	return 0
}

// peakRSS is a process's peak resident memory (VmHWM) in KiB.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

func isSelf(pid int, _ string) bool { return pid == os.Getpid() }

// cpuTicks sums the user and system CPU time, in clock ticks (1/100 s), of
// the running processes that match.
func cpuTicks(match func(pid int, comm string) bool) int64 {
	entries, _ := os.ReadDir("/proc")
	var sum int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, f := procStat(pid); len(f) >= 13 && match(pid, comm) {
			user, _ := strconv.ParseInt(f[11], 10, 64)
			system, _ := strconv.ParseInt(f[12], 10, 64)
			sum += user + system
		}
	}
	return sum
}

// procStat is a process's name and the fields of its /proc/PID/stat from
// the state on (the third field); none when it is gone.
func procStat(pid int) (comm string, fields []string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || len(s) < end+2 {
		return "", nil
	}
	return s[open+1 : end], strings.Fields(s[end+2:])
}

// parentPID is the parent of a process (-1: gone).
func parentPID(pid int) int {
	if _, f := procStat(pid); len(f) >= 2 {
		if p, err := strconv.Atoi(f[1]); err == nil {
			return p
		}
	}
	return -1
}

// endedChildTicks is the CPU time, in clock ticks, of a process's children
// that ended and were waited for (PostgreSQL's backends that closed).
func endedChildTicks(pid int) int64 {
	_, f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	user, _ := strconv.ParseInt(f[13], 10, 64)
	system, _ := strconv.ParseInt(f[14], 10, 64)
	return user + system
}

// ownPostgres is the CPU time, in clock ticks, of the PostgreSQL server
// of db's connections (its postmaster, its processes, and those of them
// that ended): not another server's on the machine, another test
// suite's.
func ownPostgres(b *testing.B, db *sql.DB) func() int64 {
	var backend int
	if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster := parentPID(backend)
	if postmaster <= 1 {
		b.Fatalf("the PostgreSQL server's processes are out of sight (backend %d, its parent %d)", backend, postmaster)
	}
	ours := func(pid int, comm string) bool {
		return comm == "postgres" && (pid == postmaster || parentPID(pid) == postmaster)
	}
	return func() int64 { return cpuTicks(ours) + endedChildTicks(postmaster) }
}

// BenchmarkWorkerDeferrals sends a run of 20,000 through one worker
// process twice: with every recipient accepted (the baseline), then with
// one in a hundred told "450 mailbox busy" at its first try (the default
// retry delays: the next try 5 s later). It reports both runs' times and
// their ratio:
//
//	scripts/test ./cmd/worker -run '^$' -bench WorkerDeferrals -benchtime 1x
func BenchmarkWorkerDeferrals(b *testing.B) {
	const n, every = 20000, 100
	for i := 0; i < b.N; i++ {
		w := newSendingWorld(b, n, benchBody)
		w.worker(b, "MAIL_CONCURRENCY="+strconv.Itoa(benchConns), "LOG_LEVEL=error")
		time.Sleep(time.Second) // let it start
		timeRun := func() (time.Duration, *model.Run) {
			began := time.Now()
			r := w.waitFinished(b, w.startRun(b))
			return r.FinishedAt.Sub(began), r
		}
		plain, r := timeRun()
		if r.Succeeded != n {
			b.Fatalf("run %+v", r)
		}
		var mu sync.Mutex
		deferred := map[string]bool{}
		w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
			var i int
			if _, err := fmt.Sscanf(to, "c%06d@", &i); err != nil || i%every != 0 {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			if deferred[to] {
				return nil
			}
			deferred[to] = true
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
		})
		slow, r := timeRun()
		if r.Succeeded != n || len(deferred) != n/every {
			b.Fatalf("run %+v, %d deferred", r, len(deferred))
		}
		b.ReportMetric(plain.Seconds(), "plain-s")
		b.ReportMetric(slow.Seconds(), "deferrals-s")
		b.ReportMetric(plain.Seconds()/slow.Seconds(), "ratio")
	}
}
