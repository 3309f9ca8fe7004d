// Command web is Rassylka's web process and its admin commands.
//
//	web [serve]                                      serve HTTP (default)
//	web migrate up|down [--all]|status               manage the schema
//	web user create --email E --password P [--role R] [--name N]
//	web user role --email E --role user|manager
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/auth"
	"rassylka/app/config"
	"rassylka/app/model"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/web"
	"rassylka/app/web/form"
)

const usage = `usage:
  web [serve]
  web migrate up|down [--all]|status
  web user create --email EMAIL --password PASSWORD [--role user|manager] [--name NAME]
  web user role --email EMAIL --role user|manager`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// What was asked for (help, a status) goes to stdout; a mistake, with
	// the usage that helps mend it, to stderr.
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

// run carries out one command; serve stops when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	// The configuration is read once a command's arguments are found
	// right: asking for help, or mistyping, needs none (an operator is most
	// likely to on a machine not configured yet).
	load := func() (config.Config, *slog.Logger, error) {
		cfg, err := config.Load(getenv)
		if err != nil {
			return cfg, nil, fmt.Errorf("configuration: %w", err)
		}
		log := cfg.Logger(os.Stderr)
		config.Adopt(log, cfg)
		return cfg, log, nil
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if isHelp(cmd) {
		fmt.Fprintln(out, usage)
		return nil
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q: serve takes none", args[0])
		}
		cfg, log, err := load()
		if err != nil {
			return err
		}
		return serve(ctx, cfg, log)
	case "migrate":
		return migrateCmd(ctx, load, args, out)
	case "user":
		return userCmd(ctx, load, args, out)
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

// isHelp reports whether a command's argument asks for its usage.
func isHelp(arg string) bool { return arg == "help" || arg == "-h" || arg == "--help" }

// settings reads the configuration (run's load).
type settings func() (config.Config, *slog.Logger, error)

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	db := store.Open(cfg.DatabaseURL)
	defer db.Close()
	if err := store.NewSchema(db).Check(ctx); err != nil {
		return err
	}
	redisOpts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(redisOpts)
	defer rdb.Close()
	if err := config.CheckRedis(ctx, rdb); err != nil {
		return err
	}
	queue := asynq.NewClientFromRedisClient(rdb)

	app := web.New(web.Deps{Config: cfg, Store: store.New(db), Redis: rdb, Queue: queue, Log: log})

	// Bound first, so that "listening" is said only when it is.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	log.Info("web listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL)
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	case <-ctx.Done():
	}
	log.Info("web shutting down")
	if err := app.ShutdownWithTimeout(20 * time.Second); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func migrateCmd(ctx context.Context, load settings, args []string, out io.Writer) error {
	const usage = "usage: web migrate up|down [--all]|status"
	all := len(args) == 2 && args[0] == "down" && args[1] == "--all"
	if all {
		args = args[:1]
	}
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(out, usage)
		return nil
	}
	if len(args) != 1 {
		return errors.New(usage)
	}
	if args[0] != "up" && args[0] != "down" && args[0] != "status" {
		return fmt.Errorf("unknown migrate command %q: want up, down or status", args[0])
	}
	cfg, _, err := load()
	if err != nil {
		return err
	}
	db := store.Open(cfg.DatabaseURL)
	defer db.Close()
	schema := store.NewSchema(db)
	switch args[0] {
	case "up":
		names, err := schema.Up(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(out, "schema is up to date")
		}
		for _, n := range names {
			fmt.Fprintln(out, "applied", n)
		}
	case "down":
		down := schema.Down
		if all {
			down = schema.DownAll
		}
		names, err := down(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(out, "nothing to roll back")
		}
		for _, n := range names {
			fmt.Fprintln(out, "rolled back", n)
		}
	case "status":
		applied, pending, err := schema.Status(ctx)
		if err != nil {
			return err
		}
		for _, n := range applied {
			fmt.Fprintln(out, "applied ", n)
		}
		for _, n := range pending {
			fmt.Fprintln(out, "pending ", n)
		}
	}
	return nil
}

func userCmd(ctx context.Context, load settings, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: web user create|role --email EMAIL")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(out, "usage: web user create|role --email EMAIL ... (web user create -h lists the flags)")
		return nil
	}
	if args[0] != "create" && args[0] != "role" {
		return fmt.Errorf("unknown user command %q: want create or role", args[0])
	}
	fs := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
	var told strings.Builder // the flag package's words, and the flags' list
	fs.SetOutput(&told)
	email := fs.String("email", "", "email address")
	password := fs.String("password", "", "password (create)")
	name := fs.String("name", "", "full name (create)")
	role := fs.String("role", "", "user or manager")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, told.String()) // asked for
			return nil
		}
		return errors.New(strings.TrimSpace(told.String()))
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (quote values with spaces)", fs.Arg(0))
	}
	if strings.TrimSpace(*email) == "" {
		return errors.New("--email is required")
	}
	// The same rules as the registration form: an address the sign-in form
	// refuses would make an account no one can sign in to, and one mail
	// cannot reach, an account no one can reset.
	addr, problem := form.RecipientEmail(*email)
	if problem != "" {
		return fmt.Errorf("--email %q: %s", *email, problem)
	}
	*email = addr
	cfg, log, err := load()
	if err != nil {
		return err
	}
	db := store.Open(cfg.DatabaseURL)
	defer db.Close()
	if err := store.NewSchema(db).Check(ctx); err != nil {
		return err
	}
	st := store.New(db)

	switch args[0] {
	case "create":
		r := model.Role(*role)
		if *role == "" {
			r = model.RoleUser
		}
		if !r.Valid() {
			return fmt.Errorf("--role must be user or manager, got %q", *role)
		}
		if *password == "" {
			return errors.New("--password is required")
		}
		if problem := auth.PasswordProblem(*password, *email); problem != "" {
			return fmt.Errorf("--password: %s", problem)
		}
		if *name, problem = form.Line(*name, false, 200, "the name"); problem != "" {
			return fmt.Errorf("--name: %s", problem)
		}
		hash, err := auth.HashPassword(*password)
		if err != nil {
			return err
		}
		now := time.Now()
		u := &model.User{Email: *email, FullName: *name, PasswordHash: &hash, Role: r, EmailConfirmedAt: &now}
		if err := st.CreateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("a user with email %s already exists", *email)
			}
			return err
		}
		fmt.Fprintf(out, "created %s, a %s (id %d)\n", u.Email, u.Role, u.ID)
	case "role":
		r := model.Role(*role)
		if *role == "" {
			return errors.New("--role is required: user or manager")
		}
		if !r.Valid() {
			return fmt.Errorf("--role must be user or manager, got %q", *role)
		}
		if u, err := st.UserByEmail(ctx, *email); err == nil && u.Role == r {
			fmt.Fprintf(out, "%s is already a %s\n", u.Email, u.Role)
			return nil
		}
		u, err := st.SetUserRole(ctx, *email, r)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user with email %s", *email)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s is now a %s\n", u.Email, u.Role)
	}
	siteChanged(ctx, cfg, log)
	return nil
}

// siteChanged renews the managers' cached statistics, whose table of users
// lists every user and their role. Without Redis there is nothing to renew.
func siteChanged(ctx context.Context, cfg config.Config, log *slog.Logger) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	(&stats.Service{Redis: rdb, Log: log}).SiteChanged(ctx)
}
