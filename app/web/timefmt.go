package web

import (
	"time"

	"rassylka/app/model"
)

// formatTime shows t in the user's time zone.
func formatTime(t time.Time, zone string) string {
	return t.In(model.Location(zone)).Format("2006-01-02 15:04 MST")
}

// formatDate is t's day in the viewer's time zone, for a list that needs
// no more (when a user joined).
func formatDate(t time.Time, zone string) string {
	return t.In(model.Location(zone)).Format("2006-01-02")
}

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
