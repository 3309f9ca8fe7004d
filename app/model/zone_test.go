package model

import "testing"

// The web and the worker read a stored zone the same way: a name the
// account page refuses is UTC, whatever the host's zone files make of it.
func TestLocation(t *testing.T) {
	for tz, want := range map[string]string{
		"Europe/Berlin":                  "Europe/Berlin",
		"America/Argentina/Buenos_Aires": "America/Argentina/Buenos_Aires",
		"Etc/GMT+5":                      "Etc/GMT+5",
		"UTC":                            "UTC",
		"":                               "UTC",
		"Europe//Berlin":                 "UTC", // time.LoadLocation opens it as Berlin
		"./Europe/Berlin":                "UTC",
		"Local":                          "UTC",
		"posix/Europe/Berlin":            "UTC",
		"Mars/Olympus_Mons":              "UTC", // shaped as a zone, but none
	} {
		if got := Location(tz).String(); got != want {
			t.Errorf("Location(%q) = %s, want %s", tz, got, want)
		}
		if got := Location(tz).String(); got != want { // the cached answer
			t.Errorf("Location(%q) the second time = %s, want %s", tz, got, want)
		}
	}
}
