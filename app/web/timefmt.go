package web

import (
	"sync"
	"time"

	"rassylka/app/web/form"
)

// formatTime shows t in the user's time zone.
func formatTime(t time.Time, zone string) string {
	return t.In(location(zone)).Format("2006-01-02 15:04 MST")
}

// location is the user's time zone, UTC for a name the account page would
// now refuse (one stored before it checked as closely): PostgreSQL must
// understand the zone the pages pass it. Zones are loaded once (each load
// reads the zone's file, and a list formats a time per row).
func location(zone string) *time.Location {
	if loc, ok := locations.Load(zone); ok {
		return loc.(*time.Location)
	}
	loc := time.UTC
	if _, msg := form.TimeZone(zone); msg == "" {
		if l, err := time.LoadLocation(zone); err == nil {
			loc = l
		}
	}
	locations.Store(zone, loc)
	return loc
}

var locations sync.Map // zone name → *time.Location

// commonZones are offered on the account page; any IANA name is accepted.
var commonZones = []string{
	"UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
	"Europe/Rome", "Europe/Amsterdam", "Europe/Warsaw", "Europe/Prague", "Europe/Vienna", "Europe/Stockholm",
	"Europe/Helsinki", "Europe/Athens", "Europe/Kyiv", "Europe/Istanbul", "Europe/Moscow", "Asia/Tbilisi",
	"Asia/Yerevan", "Asia/Dubai", "Asia/Tashkent", "Asia/Almaty", "Asia/Yekaterinburg", "Asia/Novosibirsk",
	"Asia/Kolkata", "Asia/Bangkok", "Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo", "Asia/Seoul",
	"Asia/Vladivostok", "Australia/Perth", "Australia/Sydney", "Pacific/Auckland", "Africa/Cairo",
	"Africa/Lagos", "Africa/Johannesburg", "America/Sao_Paulo", "America/Buenos_Aires", "America/New_York",
	"America/Chicago", "America/Denver", "America/Los_Angeles", "America/Mexico_City", "America/Toronto",
	"America/Vancouver", "America/Anchorage", "Pacific/Honolulu",
}
