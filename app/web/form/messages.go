package form

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"rassylka/app/mail"
	"rassylka/app/model"
)

// Message is the message form.
type Message struct {
	Subject string `form:"subject"`
	Body    string `form:"body"`
}

// Validate normalizes and checks: the subject is one line (a line break
// would let a user write mail headers), both are required and bounded.
func (f *Message) Validate() Errors {
	errs := Errors{}
	switch {
	case strings.ContainsAny(f.Subject, "\r\n"):
		errs["subject"] = "The subject must be a single line."
	default:
		var msg string
		if f.Subject, msg = Text(f.Subject, true, 255, "a subject"); msg != "" {
			errs["subject"] = msg
		}
	}
	if errs["subject"] == "" {
		if msg := placeholderProblem(f.Subject); msg != "" {
			errs["subject"] = msg
		}
	}
	f.Body = strings.ReplaceAll(f.Body, "\r\n", "\n")
	switch {
	case strings.TrimSpace(f.Body) == "":
		errs["body"] = "Enter the text of the message."
	case utf8.RuneCountInString(f.Body) > 100000:
		errs["body"] = "Use at most 100000 characters."
	case !utf8.ValidString(f.Body):
		errs["body"] = "Use valid UTF-8 text."
	case strings.ContainsFunc(f.Body, control):
		errs["body"] = controlProblem
	default:
		if msg := placeholderProblem(f.Body); msg != "" {
			errs["body"] = msg
		}
	}
	return errs
}

// Model is the message the form describes, for owner.
func (f *Message) Model(ownerID int64) *model.Message {
	return &model.Message{OwnerID: ownerID, Subject: f.Subject, Body: f.Body}
}

// braces finds what looks like a placeholder: a pair of double braces
// around text without braces.
var braces = regexp.MustCompile(`\{\{[^{}]*\}\}`)

// placeholderProblem names the first placeholder of s that is not one the
// mail fills in ({{name}}, {{email}}, spaces inside allowed), or a "{{"
// left unclosed: either would go out as typed to every recipient.
func placeholderProblem(s string) string {
	const known = "Only {{name}} and {{email}} are filled in."
	for _, m := range braces.FindAllString(s, -1) {
		if !mail.IsPlaceholder(m) { // the mail's own rule: a no-break space inside leaves it as typed
			return "Unknown placeholder " + m + ". " + known
		}
	}
	rest := braces.ReplaceAllString(s, "")
	if i := strings.Index(rest, "{{"); i >= 0 {
		frag := rest[i:]
		if j := strings.IndexAny(frag, " \t\n"); j >= 0 {
			frag = frag[:j]
		}
		if utf8.RuneCountInString(frag) > 20 {
			frag = string([]rune(frag)[:20]) + "…"
		}
		return "Unclosed placeholder " + frag + ". " + known
	}
	return ""
}
