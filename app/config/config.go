// Package config loads and validates the one Config of both processes from
// the environment. Defaults serve a local run; production mode
// (APP_ENV=production) insists on the settings that must not be guessed.
//
// It imports nothing of the application.
package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"
	"golang.org/x/net/idna"
)

// Config is everything the web and worker processes read from the environment.
type Config struct {
	Env               string // "development" (default) or "production"
	DatabaseURL       string
	RedisURL          string
	SMTPURL           string
	MailFrom          string
	mailFromGuessed   bool // MAIL_FROM was not set: MailFrom is defaultMailFrom's
	BaseURL           string
	Addr              string
	SessionSecret     string  // signs CSRF tokens and unsubscribe links (not sessions: random ids in Redis)
	MailConcurrency   int     // SMTP connections per worker for mailings
	MailRate          float64 // mailing messages per second across workers, 0 = no limit
	WorkerConcurrency int
	LogFormat         string // "text" or "json"
	LogLevel          string // "debug", "info", "warn", "error"
	OAuth             []OAuthProvider
	// ProxyHeader names the header carrying the client's IP when the web
	// process runs behind a reverse proxy (e.g. X-Forwarded-For); empty
	// trusts the peer address.
	ProxyHeader string
	// TrustedProxies are the addresses (IPs or CIDRs) of the proxies whose
	// ProxyHeader is believed; required with ProxyHeader.
	TrustedProxies []string
	// MetricsToken, when set, is required (as a bearer token) to read
	// /metrics of either process.
	MetricsToken string
	// WorkerMetricsAddr is where the worker serves /metrics ("off": not).
	WorkerMetricsAddr string
	// QueuesWritable lets managers act on tasks (retry, delete, pause) in
	// the queue dashboard; read-only by default.
	QueuesWritable bool
}

// OAuthProvider is one sign-in provider enabled by its key and secret.
type OAuthProvider struct {
	Name   string // github, google, gitlab or oidc
	Key    string
	Secret string
	Issuer string // OpenID Connect issuer URL (oidc only)
}

// defaultMailFrom is the From of a site that names none: no-reply at
// BASE_URL's host (its own domain, rather than one no receiver could
// check), or at localhost when that host is an address.
func defaultMailFrom(baseURL string) string {
	// A name written absolute ("example.com.") has no dot at its end in
	// an address.
	host := ""
	if u, err := url.Parse(baseURL); err == nil && net.ParseIP(u.Hostname()) == nil {
		host = strings.TrimSuffix(u.Hostname(), ".")
	}
	if host == "" {
		host = "localhost"
	}
	return "Rassylka <no-reply@" + host + ">"
}

// SecureCookies reports whether cookies must be marked Secure.
func (c Config) SecureCookies() bool { return strings.HasPrefix(c.BaseURL, "https://") }

// Defaults for a local run (see the README's configuration table).
const (
	DefaultDatabaseURL = "postgres://rassylka:rassylka@127.0.0.1:5432/rassylka?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultSMTPURL     = "smtp://127.0.0.1:1025"
	DefaultBaseURL     = "http://localhost:8080"
	DefaultAddr        = ":8080"
	// DefaultWorkerMetricsAddr is local only: expose it deliberately.
	DefaultWorkerMetricsAddr = "127.0.0.1:9464"
	devSessionSecret         = "development-only-session-secret-change-me"
	minSessionSecretSize     = 32
	// MAIL_RATE bounds when set: one message a day to a million a second.
	minMailRate = 1.0 / 86400
	maxMailRate = 1e6
)

// Production reports whether the process runs in production mode.
func (c Config) Production() bool { return c.Env == "production" }

// Load reads the configuration through getenv (os.Getenv in the binaries, a
// map in tests) and validates it. Every problem is reported, not just the
// first, so one start-up error lists all that is wrong.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	getInt := func(key string, def int) int {
		v := get(key, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", key, v))
			return def
		}
		return n
	}

	c := Config{
		Env:               get("APP_ENV", "development"),
		MailFrom:          get("MAIL_FROM", ""),
		Addr:              get("ADDR", DefaultAddr),
		MailConcurrency:   getInt("MAIL_CONCURRENCY", 4),
		WorkerConcurrency: getInt("WORKER_CONCURRENCY", 10),
		LogLevel:          get("LOG_LEVEL", "info"),
		ProxyHeader:       get("PROXY_HEADER", ""),
		MetricsToken:      get("METRICS_TOKEN", ""),
		WorkerMetricsAddr: get("WORKER_METRICS_ADDR", DefaultWorkerMetricsAddr),
	}
	switch c.Env {
	case "development", "production":
	default:
		errs = append(errs, fmt.Errorf("APP_ENV must be development or production, got %q", c.Env))
	}
	prod := c.Production()

	// Settings that production must name explicitly.
	required := func(key, def string) string {
		v := get(key, "")
		if v != "" {
			return v
		}
		if prod {
			errs = append(errs, fmt.Errorf("%s is required in production", key))
		}
		return def
	}
	c.DatabaseURL = get("DATABASE_URL", DefaultDatabaseURL)
	c.RedisURL = get("REDIS_URL", DefaultRedisURL)
	c.SMTPURL = required("SMTP_URL", DefaultSMTPURL)
	c.BaseURL = lowerScheme(strings.TrimRight(required("BASE_URL", DefaultBaseURL), "/"))
	c.SessionSecret = required("SESSION_SECRET", devSessionSecret)
	if prod && c.SessionSecret != "" && len(c.SessionSecret) < minSessionSecretSize {
		errs = append(errs, fmt.Errorf("SESSION_SECRET must be at least %d characters", minSessionSecretSize))
	}

	c.LogFormat = get("LOG_FORMAT", map[bool]string{true: "json", false: "text"}[prod])
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT must be text or json, got %q", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", c.LogLevel))
	}

	if v := get("MAIL_RATE", "0"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		// NaN and infinities parse, and rates beyond these bounds overflow
		// the limiter's window arithmetic (1e30 became 1 message a second).
		if err != nil || math.IsNaN(r) || r < 0 || (r > 0 && r < minMailRate) || r > maxMailRate {
			errs = append(errs, fmt.Errorf("MAIL_RATE must be 0 (no limit) or messages per second from 0.0000116 (one a day) to 1000000 (0.5: one every 2 seconds), got %q", v))
		} else {
			c.MailRate = r
		}
	}

	switch v := get("OPS_QUEUES_WRITABLE", "false"); v {
	case "true", "1", "yes":
		c.QueuesWritable = true
	case "false", "0", "no":
	default:
		errs = append(errs, fmt.Errorf("OPS_QUEUES_WRITABLE must be true or false, got %q", v))
	}

	for _, p := range strings.Split(get("TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p != "" {
			// Fiber drops a bad CIDR with a warning and keeps a bad IP as a
			// string that never matches: the header would be ignored and
			// every client would share the proxy's address.
			if _, err := netip.ParsePrefix(p); err != nil {
				if _, err := netip.ParseAddr(p); err != nil {
					errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is not an IP address or CIDR", p))
					continue
				}
			}
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	if c.ProxyHeader != "" && len(c.TrustedProxies) == 0 {
		errs = append(errs, errors.New("TRUSTED_PROXIES is required with PROXY_HEADER (else any client could pick its own address)"))
	}

	for _, p := range []struct{ name, prefix string }{
		{"github", "GITHUB"}, {"google", "GOOGLE"}, {"gitlab", "GITLAB"}, {"oidc", "OIDC"},
	} {
		key, secret := get(p.prefix+"_KEY", ""), get(p.prefix+"_SECRET", "")
		issuer := get("OIDC_ISSUER", "")
		switch {
		case key == "" && secret == "":
			continue
		case key == "" || secret == "":
			errs = append(errs, fmt.Errorf("%s_KEY and %s_SECRET must be set together", p.prefix, p.prefix))
			continue
		case p.name == "oidc" && issuer == "":
			errs = append(errs, errors.New("OIDC_ISSUER is required with OIDC_KEY"))
			continue
		case p.name == "oidc":
			errs = append(errs, checkURL("OIDC_ISSUER", issuer, "http", "https"))
		default:
			issuer = ""
		}
		c.OAuth = append(c.OAuth, OAuthProvider{Name: p.name, Key: key, Secret: secret, Issuer: strings.TrimRight(issuer, "/")})
	}

	if err := checkURL("DATABASE_URL", c.DatabaseURL, "postgres", "postgresql"); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, checkPostgresOptions(c.DatabaseURL))
	}
	errs = append(errs, checkURL("REDIS_URL", c.RedisURL, "redis", "rediss"))
	errs = append(errs, checkServerURL("SMTP_URL", c.SMTPURL, "smtp", "smtps"))
	if err := checkServerURL("BASE_URL", c.BaseURL, "http", "https"); err != nil {
		errs = append(errs, err)
	} else if c.BaseURL, err = asciiHost("BASE_URL", c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.MailFrom == "" {
		c.MailFrom, c.mailFromGuessed = defaultMailFrom(c.BaseURL), true
	}
	errs = append(errs, checkListenAddr("WORKER_METRICS_ADDR", c.WorkerMetricsAddr))
	return c, errors.Join(errs...)
}

// checkServerURL is checkURL for a URL that names a server alone: SMTP_URL
// has nothing else to say, and BASE_URL is the site's root, which mailed
// links and sign-in callbacks add their paths to (the app serves at /).
func checkServerURL(key, raw string, schemes ...string) error {
	if err := checkURL(key, raw, schemes...); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		// Not quoted: a / ? or # in a password ends the password there,
		// and the rest would be shown as a path.
		return fmt.Errorf("%s must name the server alone, with no path, query or fragment (a / ? or # in a password is written %%2F %%3F %%23)", key)
	}
	return nil
}

// asciiHost writes the host of a server's URL in its ASCII form
// (https://рассылка.рф → https://xn--80aa3adxha4f.xn--p1ai): the site's host
// goes into mail headers (Message-ID, List-Unsubscribe) and is what a
// browser sends as Origin, and either takes only ASCII.
func asciiHost(key, raw string) (string, error) {
	u, _ := url.Parse(raw)
	host := u.Hostname()
	if !needsASCII(host) {
		return raw, nil
	}
	a, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return "", fmt.Errorf("%s's host %q has no ASCII form (IDNA): %v", key, host, err)
	}
	if p := u.Port(); p != "" {
		a = net.JoinHostPort(a, p)
	}
	u.Host = a
	return u.String(), nil
}

func needsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// checkListenAddr checks an address to listen on, host:port ("off": none).
func checkListenAddr(key, addr string) error {
	if addr == "off" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s must be host:port (such as 127.0.0.1:9464, or :9464 for every interface), or off: %q", key, addr)
	}
	return nil
}

// checkURL checks a setting's URL. Its messages never quote the URL as
// given: it may hold a password, and they go to the log.
func checkURL(key, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var esc url.EscapeError
		if errors.As(err, &esc) {
			return fmt.Errorf("%s is not a URL: a %% must be followed by two hex digits (write a %% in a password as %%25)", key)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("%s is not a URL: %w", key, err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Hostname() == "" {
				return fmt.Errorf("%s has no host", key)
			}
			if p := u.Port(); p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					return fmt.Errorf("%s: port %s is not one from 1 to 65535", key, p)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("%s must start with %s://", key, strings.Join(schemes, ":// or "))
}

// checkPostgresOptions reads DATABASE_URL's options as the driver will:
// it panics on one it does not take (sslmode=bogus, a connect_timeout
// that is no number).
func checkPostgresOptions(raw string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("DATABASE_URL: %v", r)
		}
	}()
	pgdriver.NewConnector(pgdriver.WithDSN(raw))
	return nil
}

// Logger builds the process logger: text for people, JSON for collectors.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel)) // validated in Load
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Warnings are settings that work but that production should not keep:
// each process logs them as it starts.
func (c Config) Warnings() []string {
	var w []string
	if c.Production() && !c.SecureCookies() {
		w = append(w, "BASE_URL is not https: session cookies are not marked Secure, and the unsubscribe links mailed (List-Unsubscribe, which RFC 8058 wants on https) go over plain http")
	}
	if c.Production() && c.mailFromGuessed {
		w = append(w, "MAIL_FROM is not set: mail goes from "+c.MailFrom+"; set it to an address your mail server may send from (its SPF and DKIM), or receivers may refuse it")
	}
	if c.Production() && c.MetricsToken == "" {
		w = append(w, "METRICS_TOKEN is not set: /metrics answers anyone who reaches it, on the web's public address too (queue sizes, request counts and times)")
	}
	return w
}

// Adopt makes log the logger of the libraries that log on their own: the
// standard library's log (Asynq's metrics collector), go-redis's pool and
// bun's PostgreSQL driver.
// Without it their plain-text lines break a JSON log stream exactly when
// Redis is down. It then logs the configuration's Warnings.
func Adopt(log *slog.Logger, c Config) {
	slog.SetDefault(log)
	for _, w := range c.Warnings() {
		log.Warn(w)
	}
	redis.SetLogger(printfLogger{log.With("component", "redis")})
	pgdriver.Logger = printfLogger{log.With("component", "postgres")}
}

// printfLogger logs go-redis's and bun's driver's Printf-style messages
// as warnings.
type printfLogger struct{ log *slog.Logger }

func (p printfLogger) Printf(ctx context.Context, format string, v ...any) {
	p.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// lowerScheme writes a URL's scheme in lower case, as the URL parser reads
// it ("HTTPS://…" is https: its cookies are Secure).
func lowerScheme(u string) string {
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		return strings.ToLower(scheme) + "://" + rest
	}
	return u
}

// CheckRedis asks the Redis of REDIS_URL to answer, at start: one that
// refuses it (a database number it does not have, a wrong password or
// user) is a mistake in the configuration, and the process would run
// without doing anything. One out of reach, or not ready yet (loading its
// data), is not: both processes wait for it, as they do for an outage
// later.
func CheckRedis(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	if rerr := redis.Error(nil); errors.As(err, &rerr) && refusesURL(rerr.Error()) {
		return fmt.Errorf("REDIS_URL: Redis refuses it: %w", err)
	}
	return nil
}

// refusesURL reports whether a Redis error reply refuses what REDIS_URL
// says (its password, user or database number).
func refusesURL(reply string) bool {
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH", "ERR DB index", "ERR invalid DB index"} {
		if strings.HasPrefix(reply, p) {
			return true
		}
	}
	return false
}
