// Package email holds the texts of the transactional mails (plain UTF-8
// text). Each function returns the subject and the body.
package email

import (
	"bytes"
	"text/template"
)

var tmpl = template.Must(template.New("").Parse(`
{{define "confirm"}}Hello{{with .Name}} {{.}}{{end}},

please confirm your email address for Rassylka by opening this link:

{{.Link}}

The link works for 48 hours. If you did not create an account, ignore this mail.
{{end}}

{{define "exists"}}Hello{{with .Name}} {{.}}{{end}},

someone — maybe you — tried to create a Rassylka account with this address,
but it already has one.
{{if .Link}}
The address is not confirmed yet. If it was you, choose your password with
this link; it confirms the address too (one hour, once):

{{.Link}}

Until then nobody can sign in to the account. If it was not you, ignore
this mail.
{{else if .Blocked}}
{{template "blocked"}}
If it was not you, ignore this mail: nothing has changed.
{{else}}
If it was you, sign in at {{.Login}}
or, if you forgot your password, set a new one at {{.Forgot}}

If it was not you, ignore this mail: nothing has changed.
{{end}}{{end}}

{{define "blocked"}}A manager of this Rassylka has blocked the account: nobody can sign in to
it until a manager unblocks it.
{{end}}

{{define "confirmed"}}Hello{{with .Name}} {{.}}{{end}},

someone — maybe you — asked for a link to confirm this address for
Rassylka, but it is confirmed already: there is nothing left to do.
{{if .Blocked}}
{{template "blocked"}}{{else}}
Sign in at {{.Login}}
or, if you forgot your password, set a new one at {{.Forgot}}
{{end}}
If it was not you, ignore this mail: nothing has changed.
{{end}}

{{define "choose"}}Hello{{with .Name}} {{.}}{{end}},

to confirm your email address for Rassylka, choose your password with this
link (it works for one hour and only once):

{{.Link}}

If you did not ask for it, ignore this mail.
{{end}}

{{define "linked"}}Hello{{with .Name}} {{.}}{{end}},

you can now sign in to your Rassylka account with {{.Provider}}
({{.Identity}}).

If that was you, there is nothing to do. If it was not, remove it on your
account page, {{.Account}}
and reset your password at {{.Forgot}}
{{end}}

{{define "reply-to"}}Hello,

the Rassylka account {{.Name}} asks that its clients' replies to its
mailings come to this address. If this is your address and you agree, open
this link (it works for 48 hours and only once):

{{.Link}}

If you do not know about it, ignore this mail: no replies will come here.
{{end}}

{{define "reset"}}Hello{{with .Name}} {{.}}{{end}},

to set a new password for Rassylka, open this link:

{{.Link}}

The link works for one hour and only once. If you did not ask for it, ignore
this mail: your password has not changed.
{{if .Blocked}}
{{template "blocked"}}A new password will not let you in until then.
{{end}}{{end}}

{{define "change-email"}}Hello,

the Rassylka account {{.Account}} asks to sign in with this address
from now on. If this is your address and you asked for it, open this link
(it works for 48 hours and only once):

{{.Link}}

If you did not ask for it, ignore this mail: nothing changes.
{{end}}

{{define "email-taken"}}Hello,

someone — maybe you — asked to move another Rassylka account to this
address, but this address has an account of its own already, so nothing
changes. Sign in to it at {{.Login}}
or, if you forgot its password, set a new one at {{.Forgot}}

If it was not you, ignore this mail.
{{end}}

{{define "move-asked"}}Hello{{with .Name}} {{.}}{{end}},

your Rassylka account asked to sign in with {{.Identity}} from now on,
instead of this address. It moves once that address opens the link we
mailed it; until then nothing changes.

If that was you, there is nothing to do. If it was not, set a new password
at {{.Forgot}}
which stops the move and signs every session out.
{{end}}

{{define "email-changed"}}Hello{{with .Name}} {{.}}{{end}},

your Rassylka account now signs in with {{.Identity}}, not with this
address: its inbox confirmed the change.

If that was you, there is nothing to do. If it was not, move the account
back to this address and set a new password with this link (it works for
7 days and only once; it signs every session out):

{{.Link}}
{{end}}

{{define "address-kept"}}Hello,

someone — maybe you — asked for a Rassylka account with this address, but
an account moved away from it within the last week, and the link mailed
here after that move can still move it back: until the week is over, no
other account takes this address.

If that account is yours, use that link. Otherwise, try again in a week.
{{end}}

{{define "moved-back"}}Hello,

the Rassylka account that signed in with this address signs in with
{{.Identity}} again: the link mailed there after the move was used.

If you moved the account here yourself, ask a manager of this Rassylka.
{{end}}

{{define "password-changed"}}Hello{{with .Name}} {{.}}{{end}},

the password of your Rassylka account was {{.How}}.
Other sessions were signed out.

If that was you, there is nothing to do. If it was not, set a new password
at {{.Forgot}}
and check the ways to sign in on your account page, {{.Account}}
{{end}}
`))

type data struct {
	Name, Link, Login, Forgot   string
	Provider, Identity, Account string
	How                         string // a password was changed
	Blocked                     bool   // the account: sign-in is refused
}

func render(name string, d data) string {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, d); err != nil {
		panic("email: " + err.Error()) // static templates over strings cannot fail
	}
	return string(bytes.TrimLeft(b.Bytes(), "\n"))
}

// ConfirmReplyTo asks the inbox the account of address account wants its
// clients' replies to go to for its consent, with the link that gives it.
func ConfirmReplyTo(account, link string) (subject, text string) {
	return "Confirm where replies go", render("reply-to", data{Name: account, Link: link})
}

// Confirm is the mail with the email-confirmation link.
func Confirm(name, link string) (subject, text string) {
	return "Confirm your email address", render("confirm", data{Name: name, Link: link})
}

// AlreadyRegistered tells the owner of an address that someone tried to
// register it again; passwordLink (a password-reset link, which confirms
// the address) is set when the address is unconfirmed. A blocked account's
// owner is told why signing in will not do.
func AlreadyRegistered(name, passwordLink, baseURL string, blocked bool) (subject, text string) {
	return "Your Rassylka account", render("exists", data{
		Name: name, Link: passwordLink, Login: baseURL + "/login", Forgot: baseURL + "/password/forgot", Blocked: blocked,
	})
}

// AlreadyConfirmed answers a request for a confirmation link of an
// address confirmed already: where to sign in instead (or that a manager
// blocked the account).
func AlreadyConfirmed(name, baseURL string, blocked bool) (subject, text string) {
	return "Your Rassylka account", render("confirmed", data{
		Name: name, Login: baseURL + "/login", Forgot: baseURL + "/password/forgot", Blocked: blocked,
	})
}

// ChoosePassword is the confirmation of an address registered more than
// once: its link (a password-reset one) lets the inbox choose the password.
func ChoosePassword(name, link string) (subject, text string) {
	return "Confirm your email address", render("choose", data{Name: name, Link: link})
}

// Reset is the mail with the password-reset link; the owner of a blocked
// account is told that a new password will not let them in.
func Reset(name, link string, blocked bool) (subject, text string) {
	return "Reset your password", render("reset", data{Name: name, Link: link, Blocked: blocked})
}

// ChangeEmail asks the inbox of an address the account of address
// account wants to move to for its consent, with the link that gives it.
// It names the account by its address alone: a name is the account's own
// words, which would go from us to any address.
func ChangeEmail(account, link string) (subject, text string) {
	return "Confirm your new sign-in address", render("change-email", data{Account: account, Link: link})
}

// EmailTaken answers a request to move an account to an address that has
// an account of its own: nothing changes (the account that asked is not
// told, nor named: it would learn which addresses have accounts).
func EmailTaken(baseURL string) (subject, text string) {
	return "Your Rassylka account", render("email-taken", data{Login: baseURL + "/login", Forgot: baseURL + "/password/forgot"})
}

// MoveAsked tells an account's address that a move of the account to
// newAddr was asked for, and how to stop it.
func MoveAsked(name, newAddr, baseURL string) (subject, text string) {
	return "Your Rassylka account asked to change its address", render("move-asked", data{
		Name: name, Identity: newAddr, Forgot: baseURL + "/password/forgot",
	})
}

// EmailChanged tells the account's old address that it signs in with
// another now, with the link that moves it back.
func EmailChanged(name, newAddr, link string) (subject, text string) {
	return "Your Rassylka sign-in address was changed", render("email-changed", data{Name: name, Identity: newAddr, Link: link})
}

// AddressKept answers a request for an account with an address that an
// account moved away from within the week.
func AddressKept() (subject, text string) {
	return "Your Rassylka account", render("address-kept", data{})
}

// MovedBack tells the address an account moved away from, by the link
// mailed to its old address, that it is back at addr.
func MovedBack(addr string) (subject, text string) {
	return "Your Rassylka account moved back", render("moved-back", data{Identity: addr})
}

// PasswordChanged tells the owner of an account that its password was
// changed (how: "changed on the account page", "set with a reset link"),
// and what to do if they did not.
func PasswordChanged(name, how, baseURL string) (subject, text string) {
	return "Your Rassylka password was changed", render("password-changed", data{
		Name: name, How: how, Account: baseURL + "/account", Forgot: baseURL + "/password/forgot",
	})
}

// Linked tells the owner of an account that a provider's account was
// linked to it (identity: the address the provider gave): a way into the
// account they should know of.
func Linked(name, provider, identity, baseURL string) (subject, text string) {
	return "A new way to sign in to Rassylka", render("linked", data{
		Name: name, Provider: provider, Identity: identity, Account: baseURL + "/account", Forgot: baseURL + "/password/forgot",
	})
}
