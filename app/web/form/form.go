// Package form holds the web forms: their fields as posted, and Validate
// methods returning a message per field. Values are kept as typed so that a
// rejected form shows them again.
package form

import (
	"net/mail"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones on any host, even without /usr/share/zoneinfo
	"unicode"
	"unicode/utf8"

	"rassylka/app/model"
)

// Errors maps a field name to its message.
type Errors map[string]string

// Any reports whether there is an error.
func (e Errors) Any() bool { return len(e) > 0 }

// FieldErr is a single-field error set.
func FieldErr(field, msg string) Errors { return Errors{field: msg} }

// MaxEmailLength is the longest address accepted (RFC 5321 path limit).
const MaxEmailLength = 254

// Email checks and normalizes an address: a bare addr-spec (no display
// name), at most 254 characters, with a dot in the domain; it is returned
// trimmed, lower-cased and with an internationalized domain in its
// Unicode form (model.CanonicalEmail). A rejected address comes back as typed (trimmed)
// with the message.
func Email(raw string) (string, string) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return "", "Enter an email address."
	case len(s) > MaxEmailLength:
		return s, "An email address has at most 254 characters."
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return s, "Enter a valid email address, like name@example.com."
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return s, "Enter a valid email address, like name@example.com."
	}
	return model.CanonicalEmail(s), ""
}

// MaxLocalPartLength is the longest part before the @ a mail server must
// take (RFC 5321, in octets).
const MaxLocalPartLength = 64

// RecipientEmail is Email for an address the app is to mail (a client's,
// a new account's): a part before the @ longer than mail servers take, or
// a domain that cannot receive mail, is refused too. (Signing in and
// asking for links check by Email alone, so that no existing account is
// locked out.)
func RecipientEmail(raw string) (string, string) {
	s, msg := Email(raw)
	if msg != "" {
		return s, msg
	}
	at := strings.LastIndexByte(s, '@')
	if at > MaxLocalPartLength {
		return strings.TrimSpace(raw), "The part before the @ has at most 64 characters."
	}
	if msg := domainProblem(s[at+1:]); msg != "" {
		return strings.TrimSpace(raw), msg
	}
	return s, ""
}

// domainProblem says why mail cannot be delivered to a domain at all ("":
// it may be): an address literal ([127.0.0.1]), a label longer than DNS
// takes (63 octets in its ASCII form) or empty, one that starts or ends
// with a hyphen, or a top-level name of digits only (123.456).
func domainProblem(domain string) string {
	const bad = "This domain cannot receive mail: "
	if strings.HasPrefix(domain, "[") {
		return bad + "use a name, like example.com, not an address."
	}
	// Mail goes to the ASCII form of a domain (mail.Sender.Build): one
	// with none (a label like ex--ample beside a Unicode one) would go out
	// in UTF-8, which a server without SMTPUTF8 refuses. The labels' limits
	// hold for that form.
	ascii, ok := model.ASCIIDomain(domain)
	if !ok {
		return bad + "check its spelling."
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		switch {
		case l == "" || len(l) > 63:
			return bad + "each part between dots has 1 to 63 characters."
		case strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-"):
			return bad + "a part between dots cannot start or end with a hyphen."
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad + "its last part (like .com) cannot be only digits."
	}
	return ""
}

// Text trims s and checks it against a length limit; required fields must
// not be empty.
func Text(s string, required bool, max int, what string) (string, string) {
	s = strings.TrimSpace(s)
	switch {
	case required && blank(s):
		return s, "Enter " + what + "."
	case utf8.RuneCountInString(s) > max:
		return s, "Use at most " + itoa(max) + " characters."
	case !utf8.ValidString(s):
		return s, "Use valid UTF-8 text."
	case strings.ContainsFunc(s, control):
		return s, controlProblem
	}
	return s, ""
}

// Lines writes every line break of a text as "\n": a browser sends a
// text area's as CRLF, and a CR alone (a script's, an old Mac's) would
// break the line in a mail but not on the page.
func Lines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// blank reports whether s shows nothing: only spaces and invisible
// formatting characters (zero-width space and joiners, direction marks).
func blank(s string) bool {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) }) == ""
}

// Line is Text for a single line (a name, a subject): line breaks are
// refused too, Unicode's own (NEL, line and paragraph separators) as well.
func Line(s string, required bool, max int, what string) (string, string) {
	if s = strings.TrimSpace(s); strings.ContainsAny(s, "\r\n\u0085\u2028\u2029") {
		return s, "Keep it on one line."
	}
	return Text(s, required, max, what)
}

// control reports the characters a text may not hold: the C0 controls but
// tab and line ends (a NUL cannot even be stored), DEL and the C1 controls.
func control(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || 0x7f <= r && r <= 0x9f
}

const controlProblem = "Remove the control characters (such as NUL) from the text."

// TimeZone checks an IANA zone name; "" becomes UTC. A name typed in
// other letter case is taken in the database's ("utc", "europe/berlin").
func TimeZone(tz string) (string, string) {
	tz = strings.TrimSpace(tz)
	if tz == "" {
		return model.DefaultTimeZone, ""
	}
	if !model.ZoneName(tz) {
		return tz, "Choose a time zone such as Europe/Berlin."
	}
	for _, name := range []string{tz, strings.ToUpper(tz), zoneCase(tz)} {
		if _, err := time.LoadLocation(name); err == nil && model.ZoneName(name) { // "local" is no "Local"
			return name, ""
		}
	}
	return tz, "Unknown time zone; use a name such as Europe/Berlin."
}

// zoneCase writes a zone name as most are: each word capitalized
// ("america/new_york" → "America/New_York").
func zoneCase(tz string) string {
	b := []byte(strings.ToLower(tz))
	for i := range b {
		if i == 0 || b[i-1] == '/' || b[i-1] == '_' {
			b[i] = byte(unicode.ToUpper(rune(b[i])))
		}
	}
	return string(b)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// VersionOf is the version of an object a form is opened on: the time it
// was last changed, to the microsecond PostgreSQL keeps.
func VersionOf(updated time.Time) string { return updated.UTC().Format(time.RFC3339Nano) }

// Version reads a form's version (VersionOf); the zero time when it has
// none (a form without the field saves whatever changed since).
func Version(v string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Key reads the key of a form that creates an object, made when the form
// was opened, so that the same form sent twice creates the object once
// (see store.ErrDone): "" when it has none, or one that no form of ours
// sends (too long, or of other characters).
func Key(k string) string {
	if len(k) == 0 || len(k) > 64 {
		return ""
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return ""
		}
	}
	return k
}
