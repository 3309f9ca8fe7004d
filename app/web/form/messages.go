package form

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/views/component"
)

// Message is the message form.
type Message struct {
	Subject string `form:"subject"`
	Body    string `form:"body"`
	Version string `form:"version"`  // the message's version the form was opened on (see Version)
	FormKey string `form:"form_key"` // a new message's form's key (see Key)
}

// Validate normalizes and checks: the subject is one line (a line break
// would let a user write mail headers), both are required and bounded.
func (f *Message) Validate() Errors {
	errs := Errors{}
	f.FormKey = Key(f.FormKey)
	switch {
	case strings.ContainsAny(f.Subject, "\r\n\u0085\u2028\u2029"):
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
	f.Body = Lines(f.Body)
	switch {
	case strings.TrimSpace(f.Body) == "":
		errs["body"] = "Enter the text of the message."
	case utf8.RuneCountInString(f.Body) > 100000:
		errs["body"] = "Use at most " + component.Count(100000) + " characters."
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
	return &model.Message{OwnerID: ownerID, Subject: f.Subject, Body: f.Body, FormKey: f.FormKey}
}

// Braces in text (code, JSON) pass; what is checked is what looks like a
// placeholder: a name (letters first) in double braces, in single ones, or
// after a "{{" left open.
var (
	// braces finds a name in double braces ({{name}}, {{ first_name }}).
	braces = regexp.MustCompile(`\{\{[\s\p{Z}]*[\p{L}_][\p{L}\p{N}_.\-\s\p{Z}]*\}\}`)
	// singleBraces finds a placeholder's name in single braces ({name}).
	singleBraces = regexp.MustCompile(`\{\s*(?:name|email)\s*\}`)
	// closedOnly finds a name closed with "}}" but opened with one brace.
	closedOnly = regexp.MustCompile(`\{\s*[\p{L}_][\p{L}\p{N}_]*\s*\}\}`)
	// openOnly finds "{{" before a name, left unclosed.
	openOnly = regexp.MustCompile(`\{\{\s*[\p{L}_]`)
)

// placeholderProblem names the first placeholder of s that is not one the
// mail fills in ({{name}}, {{email}}, spaces inside allowed), one with a
// brace too many or too few, or a "{{" left unclosed: each would go out
// as typed (or with a stray brace) to every recipient.
func placeholderProblem(s string) string {
	const known = "Only {{name}} and {{email}} are filled in."
	for _, at := range braces.FindAllStringIndex(s, -1) {
		m := s[at[0]:at[1]]
		if !mail.IsPlaceholder(m) { // the mail's own rule: a no-break space inside leaves it as typed
			return "Unknown placeholder " + m + ". " + known
		}
		if at[0] > 0 && s[at[0]-1] == '{' || at[1] < len(s) && s[at[1]] == '}' {
			return "A brace too many around " + m + ": write it with two on each side."
		}
	}
	rest := braces.ReplaceAllString(s, "")
	if m := singleBraces.FindString(rest); m != "" {
		return "Write " + m + " with two braces on each side, like {{name}}: with one it goes out as typed."
	}
	if closedOnly.MatchString(rest) {
		return "A placeholder is closed with }} but not opened with {{. " + known
	}
	if at := openOnly.FindStringIndex(rest); at != nil {
		frag := rest[at[0]:]
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
