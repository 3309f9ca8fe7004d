package config

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsServeALocalRun(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.Production() || c.Addr != DefaultAddr || c.BaseURL != DefaultBaseURL || c.SMTPURL != DefaultSMTPURL ||
		c.DatabaseURL != DefaultDatabaseURL || c.RedisURL != DefaultRedisURL || c.LogFormat != "text" ||
		c.MailConcurrency < 1 || c.WorkerConcurrency < 1 || c.MailRate != 0 || c.SessionSecret == "" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestProductionRequiresSettings(t *testing.T) {
	_, err := Load(env(map[string]string{"APP_ENV": "production"}))
	if err == nil {
		t.Fatal("production without settings loaded")
	}
	for _, key := range []string{"SESSION_SECRET", "BASE_URL", "SMTP_URL"} {
		if !strings.Contains(err.Error(), key+" is required in production") {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}

	c, err := Load(env(map[string]string{
		"APP_ENV":        "production",
		"SESSION_SECRET": strings.Repeat("s", 40),
		"BASE_URL":       "https://mail.example.com/",
		"SMTP_URL":       "smtps://user:pass@smtp.example.com:465",
		"METRICS_TOKEN":  "m",
		"MAIL_FROM":      "News <news@example.com>",
	}))
	if err != nil {
		t.Fatalf("complete production config: %v", err)
	}
	if c.BaseURL != "https://mail.example.com" || c.LogFormat != "json" {
		t.Fatalf("production config = %+v, want trimmed BASE_URL and JSON logs", c)
	}
	// An internationalized host is kept in its ASCII form: it goes into
	// mail headers and is what browsers send as Origin.
	for raw, want := range map[string]string{
		"https://Рассылка.рф/":        "https://xn--80aa3adxha4f.xn--p1ai",
		"http://почта.пример.рф:8080": "http://xn--80a1acny.xn--e1afmkfd.xn--p1ai:8080",
	} {
		idn, err := Load(env(map[string]string{"BASE_URL": raw}))
		if err != nil || idn.BaseURL != want {
			t.Errorf("BASE_URL %q = %q, %v; want %q", raw, idn.BaseURL, err, want)
		}
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings of a production config on https: %q", w)
	}
	// Plain http works, and is warned about in production only.
	c.BaseURL = "http://mail.example.com"
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "BASE_URL is not https") {
		t.Errorf("warnings of a production config on http: %q", w)
	}
	// So is /metrics open to anyone.
	c.BaseURL, c.MetricsToken = "https://mail.example.com", ""
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "METRICS_TOKEN is not set") {
		t.Errorf("warnings of a production config without METRICS_TOKEN: %q", w)
	}
	c.Env, c.BaseURL = "development", "http://mail.example.com"
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings of a development config on http without METRICS_TOKEN: %q", w)
	}
}

// Without MAIL_FROM mail goes from the site's own domain, never from
// localhost on a site that has one; production warns that it was not set.
func TestMailFromDefaultsToTheSitesDomain(t *testing.T) {
	for baseURL, want := range map[string]string{
		"":                           "Rassylka <no-reply@localhost>",
		"http://localhost:8080":      "Rassylka <no-reply@localhost>",
		"http://127.0.0.1:8080":      "Rassylka <no-reply@localhost>",
		"http://[::1]:8080":          "Rassylka <no-reply@localhost>",
		"https://mail.example.com":   "Rassylka <no-reply@mail.example.com>",
		"https://mail.example.com./": "Rassylka <no-reply@mail.example.com>",
		"https://Рассылка.рф/":       "Rassylka <no-reply@xn--80aa3adxha4f.xn--p1ai>",
	} {
		c, err := Load(env(map[string]string{"BASE_URL": baseURL}))
		if err != nil || c.MailFrom != want {
			t.Errorf("BASE_URL %q: MailFrom = %q, %v; want %q", baseURL, c.MailFrom, err, want)
		}
		if _, err := netmail.ParseAddress(c.MailFrom); err != nil {
			t.Errorf("BASE_URL %q: MailFrom %q is no address: %v", baseURL, c.MailFrom, err)
		}
		if w := c.Warnings(); len(w) != 0 {
			t.Errorf("BASE_URL %q: warnings in development: %q", baseURL, w)
		}
	}
	prod := map[string]string{
		"APP_ENV":        "production",
		"SESSION_SECRET": strings.Repeat("s", 40),
		"BASE_URL":       "https://mail.example.com",
		"SMTP_URL":       "smtp://smtp.example.com:587",
		"METRICS_TOKEN":  "m",
	}
	c, err := Load(env(prod))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "MAIL_FROM is not set: mail goes from Rassylka <no-reply@mail.example.com>") {
		t.Errorf("warnings of a production config without MAIL_FROM: %q", w)
	}
	prod["MAIL_FROM"] = "News <news@example.com>"
	if c, err = Load(env(prod)); err != nil || c.MailFrom != prod["MAIL_FROM"] || len(c.Warnings()) != 0 {
		t.Errorf("MAIL_FROM set: %q, %v, warnings %q", c.MailFrom, err, c.Warnings())
	}
}

func TestInvalidValues(t *testing.T) {
	cases := map[string]map[string]string{
		"short secret in production":    {"APP_ENV": "production", "SESSION_SECRET": "short", "BASE_URL": "https://x.example", "SMTP_URL": "smtp://x.example:25"},
		"unknown env":                   {"APP_ENV": "staging"},
		"bad SMTP scheme":               {"SMTP_URL": "http://localhost:25"},
		"bad database URL":              {"DATABASE_URL": "mysql://localhost/x"},
		"bad redis URL":                 {"REDIS_URL": "localhost:6379"},
		"SMTP port out of range":        {"SMTP_URL": "smtp://127.0.0.1:99999"},
		"database port zero":            {"DATABASE_URL": "postgres://127.0.0.1:0/x"},
		"database option unknown":       {"DATABASE_URL": "postgres://u:p@localhost/x?sslmode=bogus"},
		"database timeout not a number": {"DATABASE_URL": "postgres://u:p@localhost/x?connect_timeout=abc"},
		"BASE_URL without host":         {"BASE_URL": "http://"},
		"BASE_URL with a path":          {"BASE_URL": "http://example.com/app"},
		"BASE_URL with a query":         {"BASE_URL": "http://example.com/?x=1"},
		"BASE_URL with a fragment":      {"BASE_URL": "http://example.com#frag"},
		"BASE_URL host with no ASCII":   {"BASE_URL": "http://ex--ample.рф"},
		"SMTP_URL with a port alone":    {"SMTP_URL": "smtp://:25"},
		"SMTP_URL with a path":          {"SMTP_URL": "smtp://mail.example.com:25/path"},
		"SMTP_URL with a query":         {"SMTP_URL": "smtp://mail.example.com:25?x=1"},
		"metrics address no address":    {"WORKER_METRICS_ADDR": "nonsense"},
		"metrics port out of range":     {"WORKER_METRICS_ADDR": "127.0.0.1:99999"},
		"negative rate":                 {"MAIL_RATE": "-1"},
		"rate not a number":             {"MAIL_RATE": "fast"},
		"rate NaN":                      {"MAIL_RATE": "NaN"},
		"rate infinite":                 {"MAIL_RATE": "Inf"},
		"rate overflowing":              {"MAIL_RATE": "1e30"},
		"proxy not an IP":               {"PROXY_HEADER": "X-Forwarded-For", "TRUSTED_PROXIES": "localhost"},
		"proxy CIDR invalid":            {"PROXY_HEADER": "X-Forwarded-For", "TRUSTED_PROXIES": "10.0.0.0/33"},
		"zero concurrency":              {"MAIL_CONCURRENCY": "0"},
		"worker concurrency text":       {"WORKER_CONCURRENCY": "many"},
		"log format":                    {"LOG_FORMAT": "xml"},
		"log level":                     {"LOG_LEVEL": "loud"},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(env(vars)); err == nil {
				t.Fatalf("accepted %v", vars)
			}
		})
	}
}

// A URL setting that is refused is never quoted with its password: the
// message goes to the log.
func TestURLErrorsKeepPasswordsOut(t *testing.T) {
	for key, raw := range map[string]string{
		"DATABASE_URL": "postgres://rassylka:sec%ret@127.0.0.1:5432/rassylka",
		"SMTP_URL":     "smtp://mailer:sec%ret@mail.example.com:587",
		"REDIS_URL":    "redis://:sec%ret@",
	} {
		_, err := Load(env(map[string]string{key: raw}))
		if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "sec") {
			t.Errorf("%s=%s: %v", key, raw, err)
		}
	}
	_, err := Load(env(map[string]string{"SMTP_URL": "smtp://mailer:secret@"}))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("no host: %v", err)
	}
	// A / in a password ends it there: the rest reads as a path, and
	// would be quoted as one.
	for _, raw := range []string{"smtp://mailer:secret@mail.example.com:587/x", "smtp://mailer:/secret@mail.example.com:587", "smtp://mailer:42#secret@mail.example.com"} {
		_, err = Load(env(map[string]string{"SMTP_URL": raw}))
		if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "no path") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// A site's root with its slash, and the metrics served on every interface
// or not at all, are taken.
func TestServerURLsAndListenAddresses(t *testing.T) {
	c, err := Load(env(map[string]string{"BASE_URL": "https://mail.example.com/", "SMTP_URL": "smtps://u:p@mail.example.com", "WORKER_METRICS_ADDR": ":9464"}))
	if err != nil || c.BaseURL != "https://mail.example.com" {
		t.Fatalf("%q: %v", c.BaseURL, err)
	}
	if _, err := Load(env(map[string]string{"WORKER_METRICS_ADDR": "off"})); err != nil {
		t.Fatal(err)
	}
	// A scheme in capitals is the same scheme: https cookies are Secure.
	if c, err := Load(env(map[string]string{"BASE_URL": "HTTPS://mail.example.com"})); err != nil || !c.SecureCookies() || c.BaseURL != "https://mail.example.com" {
		t.Errorf("%q, Secure %v: %v", c.BaseURL, c.SecureCookies(), err)
	}
}

func TestNumbersParsed(t *testing.T) {
	c, err := Load(env(map[string]string{"MAIL_RATE": "12.5", "MAIL_CONCURRENCY": "8", "WORKER_CONCURRENCY": "3", "LOG_FORMAT": "json"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MailRate != 12.5 || c.MailConcurrency != 8 || c.WorkerConcurrency != 3 || c.LogFormat != "json" {
		t.Fatalf("parsed %+v", c)
	}
}

func TestOAuthProviders(t *testing.T) {
	c, err := Load(env(map[string]string{
		"GITHUB_KEY": "gk", "GITHUB_SECRET": "gs",
		"OIDC_KEY": "ok", "OIDC_SECRET": "os", "OIDC_ISSUER": "https://id.example.com/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OAuth) != 2 || c.OAuth[0].Name != "github" || c.OAuth[1].Name != "oidc" || c.OAuth[1].Issuer != "https://id.example.com" {
		t.Fatalf("OAuth = %+v", c.OAuth)
	}
	for name, vars := range map[string]map[string]string{
		"key without secret":    {"GOOGLE_KEY": "k"},
		"secret without key":    {"GITLAB_SECRET": "s"},
		"oidc without issuer":   {"OIDC_KEY": "k", "OIDC_SECRET": "s"},
		"oidc issuer not a URL": {"OIDC_KEY": "k", "OIDC_SECRET": "s", "OIDC_ISSUER": "id.example.com"},
	} {
		if _, err := Load(env(vars)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestProxyHeaderNeedsTrustedProxies(t *testing.T) {
	if _, err := Load(env(map[string]string{"PROXY_HEADER": "X-Forwarded-For"})); err == nil {
		t.Fatal("PROXY_HEADER without TRUSTED_PROXIES accepted")
	}
	c, err := Load(env(map[string]string{"PROXY_HEADER": "X-Forwarded-For", "TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16"}))
	if err != nil || len(c.TrustedProxies) != 2 || c.TrustedProxies[1] != "192.168.0.0/16" {
		t.Fatalf("TrustedProxies = %v, %v", c.TrustedProxies, err)
	}
}

// The rate's bounds are said as they can be typed, and the lowest said is
// taken.
func TestMailRateBounds(t *testing.T) {
	if c, err := Load(env(map[string]string{"MAIL_RATE": "0.0000116"})); err != nil || c.MailRate != 0.0000116 {
		t.Errorf("the lowest rate the message gives: %v, %v", c.MailRate, err)
	}
	if c, err := Load(env(map[string]string{"MAIL_RATE": "1000000"})); err != nil || c.MailRate != 1e6 {
		t.Errorf("the highest rate the message gives: %v, %v", c.MailRate, err)
	}
	for _, v := range []string{"0.00001", "1000001"} {
		_, err := Load(env(map[string]string{"MAIL_RATE": v}))
		if err == nil || !strings.Contains(err.Error(), "from 0.0000116 (one a day) to 1000000") || strings.Contains(err.Error(), "e-05") {
			t.Errorf("MAIL_RATE=%s, beyond the rates the message gives: %v", v, err)
		}
	}
	// What the message says is what the bounds are: "one a day" is within
	// a percent of the lowest.
	if 0.0000116 < minMailRate || 0.0000116*86400 > 1.01 || maxMailRate != 1000000 {
		t.Errorf("the message's bounds are not the bounds (%g, %g)", minMailRate, maxMailRate)
	}
}

// The drivers' own messages (a connection to PostgreSQL or Redis lost)
// go to the process's log, as JSON when it logs JSON, not to stderr as
// lines of their own.
func TestAdoptTakesTheDriversLogs(t *testing.T) {
	var out bytes.Buffer
	prev := slog.Default()
	Adopt(slog.New(slog.NewJSONHandler(&out, nil)), Config{Env: "development"})
	t.Cleanup(func() { Adopt(prev, Config{Env: "development"}) })
	pgdriver.Logger.Printf(context.Background(), "Conn.Write failed: %s", "broken pipe")
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line["component"] != "postgres" || line["msg"] != "Conn.Write failed: broken pipe" {
		t.Errorf("the driver's message logged as %q (%v)", out.String(), err)
	}
}

// fakeRedis answers every command with reply (a RESP error line).
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					// A command: *N, then N bulk strings of two lines.
					head, err := r.ReadString('\n')
					if err != nil {
						return
					}
					n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "*")))
					for range 2 * n {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
					}
					if _, err := conn.Write([]byte(reply + "\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A Redis that refuses REDIS_URL stops the processes at start; one not
// ready yet, or out of reach, is waited for.
func TestCheckRedis(t *testing.T) {
	for reply, refused := range map[string]bool{
		"-ERR DB index is out of range":                                  true,
		"-WRONGPASS invalid username-password pair or user is disabled.": true,
		"-NOAUTH Authentication required.":                               true,
		"-LOADING Redis is loading the dataset in memory":                false,
		"-BUSY Redis is busy running a script.":                          false,
		"-MASTERDOWN Link with MASTER is down":                           false,
	} {
		rdb := redis.NewClient(&redis.Options{Addr: fakeRedis(t, reply), MaxRetries: -1})
		err := CheckRedis(context.Background(), rdb)
		rdb.Close()
		if got := err != nil; got != refused || (refused && !strings.Contains(err.Error(), "REDIS_URL")) {
			t.Errorf("Redis answering %q: %v, want refused %v", reply, err, refused)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	if err := CheckRedis(context.Background(), rdb); err != nil {
		t.Errorf("Redis out of reach: %v, want it waited for", err)
	}
}
