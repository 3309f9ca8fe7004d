package form

import (
	"strings"
	"unicode/utf8"

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
	}
	return errs
}

// Model is the message the form describes, for owner.
func (f *Message) Model(ownerID int64) *model.Message {
	return &model.Message{OwnerID: ownerID, Subject: f.Subject, Body: f.Body}
}
