package model

import (
	"strings"
	"sync"
	"time"
)

// DefaultTimeZone is an account's zone until its user chooses one.
const DefaultTimeZone = "UTC"

// ZoneName reports whether tz is shaped as an IANA zone name: segments of
// letters, digits, '_', '-' and '+', each starting with a letter, joined by
// single slashes. time.LoadLocation also opens whatever file of the host's
// zoneinfo a name reaches ("./UTC", "Europe//Berlin"), which PostgreSQL
// refuses, so these are turned away, with the host's own files that are no
// IANA zone: "Local", its local zone, its default rules and its posix/ and
// right/ copies (another host reads them differently, or not at all).
func ZoneName(tz string) bool {
	if tz == "Local" || len(tz) > 64 {
		return false
	}
	switch first, _, _ := strings.Cut(tz, "/"); first {
	case "localtime", "posixrules", "posix", "right":
		return false
	}
	for _, seg := range strings.Split(tz, "/") {
		if seg == "" || !('A' <= seg[0] && seg[0] <= 'Z' || 'a' <= seg[0] && seg[0] <= 'z') {
			return false
		}
		for _, r := range seg {
			if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '+') {
				return false
			}
		}
	}
	return true
}

// Location is a user's time zone, the same in the web and the worker: UTC
// for a name the account page would now refuse (one stored before it
// checked as closely), as PostgreSQL must understand the zone it is given.
// Zones are loaded once (each load reads the zone's file).
func Location(tz string) *time.Location {
	if loc, ok := locations.Load(tz); ok {
		return loc.(*time.Location)
	}
	loc := time.UTC
	if ZoneName(tz) {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	locations.Store(tz, loc)
	return loc
}

var locations sync.Map // zone name → *time.Location
