package main

import "testing"

// The log shows a Procfile's command as the shell runs it.
func TestExpand(t *testing.T) {
	env := map[string]string{"PORT": "1610", "EMPTY": ""}
	getenv := func(k string) string { return env[k] }
	cases := map[string]string{
		"dev mail -smtp 127.0.0.1:${PORT:-1025}":  "dev mail -smtp 127.0.0.1:1610",
		"dev mail -smtp 127.0.0.1:${OTHER:-1025}": "dev mail -smtp 127.0.0.1:1025",
		"dev mail -smtp 127.0.0.1:${EMPTY:-1025}": "dev mail -smtp 127.0.0.1:1025",
		"web serve $PORT ${PORT} $OTHER.":         "web serve 1610 1610 .",
		"worker":                                  "worker",
	}
	for in, want := range cases {
		if got := expand(in, getenv); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
