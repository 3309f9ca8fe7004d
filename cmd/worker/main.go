// Command worker runs Rassylka's background work: the Asynq server that
// handles tasks (mail delivery, sending runs) and the scheduler that
// enqueues periodic tasks. It stops gracefully on SIGTERM or SIGINT,
// letting in-flight tasks finish or handing them back to the queue.
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/config"
	"rassylka/app/mail"
	"rassylka/app/metrics"
	"rassylka/app/sending"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/task"
)

// gcPercent is the worker's GOGC unless the environment sets one. Its live
// heap is small (about 2 MB while it sends) and every message it sends is
// built in memory, about 10 KB of garbage a message: at 200 the collector
// ran about 18 times a second while sending, and each cycle's pauses
// (waiting for threads the database and the mail server keep off the
// cores) held up every pooled connection. At 800 the heap grows to about
// 32 MB between cycles (a peak of about 55 MB resident, the same for any
// size of run) and the collector runs a fifth as often
// (docs/benchmarks.md).
const gcPercent = 800

// accountMailSlots are the task slots kept for account mail, besides
// WORKER_CONCURRENCY's (which take it too).
const accountMailSlots = 2

const usage = `usage: worker

Runs the task server and the scheduler until SIGTERM or SIGINT. It takes
no arguments: it is configured by the environment (DATABASE_URL,
REDIS_URL, SMTP_URL, MAIL_FROM, MAIL_CONCURRENCY, MAIL_RATE,
WORKER_CONCURRENCY, WORKER_METRICS_ADDR, ...; see the README).`

func main() {
	help := func(a string) bool { return a == "help" || a == "-h" || a == "--help" }
	switch args := os.Args[1:]; {
	case len(args) == 1 && help(args[0]):
		fmt.Println(usage)
		return
	case len(args) > 0:
		// Anything else is a mistake: starting a worker that sends mail
		// on a typo would be the worst answer to it.
		bad := args[0]
		if help(bad) {
			bad = args[1]
		}
		fmt.Fprintf(os.Stderr, "worker: unexpected argument %q\n%s\n", bad, usage)
		os.Exit(2)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run serves tasks until ctx ends (SIGTERM or SIGINT in main).
func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := cfg.Logger(os.Stderr)
	config.Adopt(log, cfg)

	db := store.Open(cfg.DatabaseURL)
	defer db.Close()
	// A batch task holds a connection for its lock while it runs and takes
	// others for its statements: with as many connections as tasks, every
	// task could hold one and wait for another for ever.
	db.SetMaxOpenConns(cfg.WorkerConcurrency + store.StatementConns)
	if err := store.NewSchema(db).Check(ctx); err != nil {
		return err
	}
	base, _ := url.Parse(cfg.BaseURL) // validated by config.Load
	sender, err := mail.NewSender(cfg.SMTPURL, cfg.MailFrom, base.Hostname())
	if err != nil {
		return err
	}
	// The task server and the scheduler own their Redis connections, and
	// Asynq closes them on shutdown; the rest (enqueuing, inspecting the
	// queue, the statistics cache, the shared send rate) share one client.
	conn, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := config.CheckRedis(ctx, rdb); err != nil {
		return err
	}
	client := asynq.NewClientFromRedisClient(rdb)
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	var pace mail.Limiter
	if cfg.MailRate > 0 {
		pace = mail.NewSharedRate(rdb, "send", cfg.MailRate)
	}
	pool := mail.NewPool(sender, cfg.MailConcurrency, pace).ReportTo(mail.NewHealth(rdb).LogTo(log))
	defer pool.Close()
	st := store.New(db)
	reg := metrics.New(inspector)
	h := &task.Handler{Mailer: sender, Store: st, Log: log, Sending: &sending.Service{
		Store: st, Queue: task.Queue{Client: client, Inspector: inspector}, Sender: pool, Log: log,
		BaseURL: cfg.BaseURL, Secret: cfg.SessionSecret,
		Concurrency: cfg.MailConcurrency, RetryDelays: sending.DefaultRetryDelays,
		// On SIGTERM a batch stops claiming, records what it sent and hands
		// the rest to a new task, once the sends under way end (within the
		// shutdown's 30 s unless the server stalls). Tasks' own contexts
		// stay alive: Asynq gives up on a task whose context ends, and
		// would exit under it mid-send.
		Stopping: ctx,
		Stats:    &stats.Service{Store: st, Redis: rdb, Log: log}, Sends: reg.Sends(),
	}}
	mux := asynq.NewServeMux()
	mux.Use(reg.Tasks())
	h.Register(mux)
	if cfg.WorkerMetricsAddr != "off" {
		go reg.Serve(ctx, cfg.WorkerMetricsAddr, cfg.MetricsToken, log)
	}

	taskServer := func(concurrency int, queues map[string]int) *asynq.Server {
		return asynq.NewServer(conn, asynq.Config{
			Concurrency:     concurrency,
			Queues:          queues,
			ShutdownTimeout: 30 * time.Second,
			Logger:          task.Logger(log),
			ErrorHandler:    task.ErrorHandler(log),
			RetryDelayFunc:  task.RetryDelay,
			// An idle worker looks for new tasks twenty times a second
			// (Asynq's default is once): a run's batches start within 50 ms
			// of "Send now" instead of up to a second later. One small
			// Redis call each.
			TaskCheckInterval: 50 * time.Millisecond,
		})
	}
	srv := taskServer(cfg.WorkerConcurrency, task.Queues)
	// Account mail (a confirmation, a reset link someone waits for) has
	// task slots of its own: a mailing's batches may hold all the others
	// for as long as the run's pace or a slow mail server makes them last.
	accountSrv := taskServer(accountMailSlots, map[string]int{task.QueueCritical: 1})
	sched := asynq.NewScheduler(conn, &asynq.SchedulerOpts{
		Location: time.UTC,
		Logger:   task.Logger(log),
	})
	if err := task.Schedule(sched); err != nil {
		return err
	}
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start task server: %w", err)
	}
	if err := accountSrv.Start(mux); err != nil {
		srv.Shutdown()
		return fmt.Errorf("start account mail server: %w", err)
	}
	if err := sched.Start(); err != nil {
		srv.Shutdown()
		accountSrv.Shutdown()
		return fmt.Errorf("start scheduler: %w", err)
	}
	log.Info("worker started", "concurrency", cfg.WorkerConcurrency)
	// Resume at once what a previous worker left (a crash, a restart)
	// instead of waiting for the scheduler's first minute.
	if err := h.Sending.Resume(ctx); err != nil {
		log.Error("resume at start", "error", err.Error())
	}

	<-ctx.Done()
	log.Info("worker shutting down")
	srv.Stop() // no new task from now on (a batch taken now would be refused)
	accountSrv.Stop()
	sched.Shutdown()
	srv.Shutdown() // waits up to ShutdownTimeout, then hands unfinished tasks back
	accountSrv.Shutdown()
	return nil
}
