// Package testkit gives tests real parts: a fresh PostgreSQL database per
// test cloned from a migrated template, an isolated Redis database, an
// in-process SMTP server that records what it receives, and a headless
// Chromium. It never mocks them.
//
// The servers come from the environment, set by scripts/test, which starts
// a throwaway PostgreSQL and Redis on free ports when none are configured:
//
//	TEST_DATABASE_URL  a PostgreSQL URL of a role that may CREATE DATABASE
//	TEST_REDIS_URL     a Redis URL (the server needs "databases" ≥ 1024)
//	TEST_CHROMIUM      the browser binary (default /usr/bin/chromium)
package testkit

import (
	"fmt"
	"os"
	"testing"
)

// Main runs a package's tests and then drops what testkit created for the
// package. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	dropTemplate()
	return code
}

func mustEnv(t testing.TB, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("%s is not set: run the tests with scripts/test (it starts PostgreSQL and Redis), "+
			"or set %s yourself", key, key)
	}
	return v
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "testkit: "+format+"\n", args...) }
