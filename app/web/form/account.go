package form

import (
	"strings"

	"rassylka/app/auth"
	"rassylka/app/model"
)

// Register is the sign-up form.
type Register struct {
	Email    string `form:"email"`
	FullName string `form:"full_name"`
	Password string `form:"password"`
	TimeZone string `form:"time_zone"`
}

// Validate normalizes the fields and returns what is wrong.
func (f *Register) Validate() Errors {
	errs := Errors{}
	var msg string
	if f.Email, msg = RecipientEmail(f.Email); msg != "" { // the confirmation must reach it
		errs["email"] = msg
	}
	if f.FullName, msg = Line(f.FullName, true, 200, "your name"); msg != "" {
		errs["full_name"] = msg
	}
	if msg = auth.PasswordProblem(f.Password, f.Email); msg != "" {
		errs["password"] = msg
	}
	if f.TimeZone, msg = TimeZone(f.TimeZone); msg != "" {
		f.TimeZone = model.DefaultTimeZone // the zone comes from the browser; never block sign-up on it
	}
	return errs
}

// Login is the sign-in form.
type Login struct {
	Email    string `form:"email"`
	Password string `form:"password"`
	Next     string `form:"next"`
}

// Validate checks that both fields are there.
func (f *Login) Validate() Errors {
	errs := Errors{}
	var msg string
	if f.Email, msg = Email(f.Email); msg != "" {
		errs["email"] = msg
	}
	if f.Password == "" {
		errs["password"] = "Enter your password."
	}
	f.Next = auth.SafeNext(f.Next)
	return errs
}

// EmailOnly is a form with one email field (forgot password, resend).
type EmailOnly struct {
	Email string `form:"email"`
}

// Validate checks the address.
func (f *EmailOnly) Validate() Errors {
	errs := Errors{}
	var msg string
	if f.Email, msg = Email(f.Email); msg != "" {
		errs["email"] = msg
	}
	return errs
}

// NewPassword is the reset form.
type NewPassword struct {
	Password string `form:"password"`
}

// Validate checks the password rules.
func (f *NewPassword) Validate(email string) Errors {
	errs := Errors{}
	if msg := auth.PasswordProblem(f.Password, email); msg != "" {
		errs["password"] = msg
	}
	return errs
}

// Profile is the account page's profile form: name, time zone, and how
// mailings present their sender.
type Profile struct {
	FullName   string `form:"full_name"`
	TimeZone   string `form:"time_zone"`
	SenderName string `form:"sender_name"` // optional
	ReplyTo    string `form:"reply_to"`    // optional
}

// Validate normalizes and checks.
func (f *Profile) Validate() Errors {
	errs := Errors{}
	var msg string
	if f.FullName, msg = Line(f.FullName, true, 200, "your name"); msg != "" {
		errs["full_name"] = msg
	}
	if strings.TrimSpace(f.TimeZone) == "" {
		errs["time_zone"] = "Choose a time zone such as Europe/Berlin."
	} else if f.TimeZone, msg = TimeZone(f.TimeZone); msg != "" {
		errs["time_zone"] = msg
	}
	if blank(f.SenderName) {
		f.SenderName = ""
	} else if f.SenderName, msg = SenderName(f.SenderName); msg != "" {
		errs["sender_name"] = msg
	}
	if blank(f.ReplyTo) {
		f.ReplyTo = ""
	} else if f.ReplyTo, msg = ReplyTo(f.ReplyTo); msg != "" {
		errs["reply_to"] = msg
	}
	return errs
}

// SenderName checks the name a user's mailings go from, which every
// recipient reads beside the address: one line of at most 100 characters,
// with no address in it (a name "PayPal <service@paypal.com>" would pass
// for another sender where mail programs show the name alone) and no
// direction controls (U+202E before the address would show it reversed).
func SenderName(raw string) (string, string) {
	s, msg := Line(raw, false, 100, "the sender name")
	switch {
	case msg != "":
		return s, msg
	case strings.Contains(s, "@"):
		return s, "Leave the address out: a name with an @ could pass for another sender's address."
	case strings.ContainsFunc(s, directionControl):
		return s, "Remove the invisible characters that change the writing direction."
	}
	return s, ""
}

// directionControl is a character that changes the direction of the text
// after it (embeddings, overrides, isolates, their ends, and the marks).
func directionControl(r rune) bool {
	return r == '\u200e' || r == '\u200f' || r == '\u061c' || '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}

// ReplyTo is RecipientEmail for the address a user's clients reply to. It
// goes in a header of every mail sent for them, so more than ASCII before
// the @ is refused: a mail server without SMTPUTF8 could carry none of
// those mails.
func ReplyTo(raw string) (string, string) {
	s, msg := RecipientEmail(raw)
	if msg != "" {
		return s, msg
	}
	if !model.IsASCII(model.ASCIIEmail(s)) {
		return strings.TrimSpace(raw), "Use an address with only plain letters, digits and signs (ASCII) before the @: it goes in a header of your mailings' mail, which not every mail server could carry otherwise."
	}
	return s, ""
}

// ChangePassword is the account page's password form.
type ChangePassword struct {
	Current  string `form:"current_password"`
	Password string `form:"password"`
}

// Validate checks the new password (the current one is checked by auth).
func (f *ChangePassword) Validate(email string, hasPassword bool) Errors {
	errs := Errors{}
	if hasPassword && f.Current == "" {
		errs["current_password"] = "Enter your current password."
	}
	if msg := auth.PasswordProblem(f.Password, email); msg != "" {
		errs["password"] = msg
	} else if hasPassword && f.Password == f.Current {
		// Compared with what was typed as the current one only: whether
		// that is right is checked after, under the sign-in throttle.
		errs["password"] = "Choose a password different from your current one."
	}
	return errs
}

// ChangeEmail is the account page's form that moves the account to
// another address.
type ChangeEmail struct {
	Email    string `form:"new_email"`
	Password string `form:"email_password"` // the account's, when it has one
}

// Validate normalizes the address and returns what is wrong; current is
// the account's address.
func (f *ChangeEmail) Validate(current string, hasPassword bool) Errors {
	errs := Errors{}
	var msg string
	if f.Email, msg = RecipientEmail(f.Email); msg != "" { // the link must reach it
		errs["new_email"] = msg
	} else if model.CanonicalEmail(f.Email) == current {
		errs["new_email"] = "This is your sign-in address already."
	}
	if hasPassword && f.Password == "" {
		errs["email_password"] = "Enter your password."
	}
	return errs
}
