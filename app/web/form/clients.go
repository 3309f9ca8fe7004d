package form

import (
	"strings"

	"rassylka/app/model"
)

// Client is the client form.
type Client struct {
	Email    string `form:"email"` // as typed (trimmed): a rejected form shows it so
	FullName string `form:"full_name"`
	Comment  string `form:"comment"`
	Version  string `form:"version"` // the client's version the form was opened on (see Version)

	email string // Email normalized by Validate, for Model
}

// Validate normalizes the fields and returns what is wrong. The address
// is kept as typed for the form, and normalized for the client (Model).
func (f *Client) Validate() Errors {
	errs := Errors{}
	var msg string
	f.Email = strings.TrimSpace(f.Email)
	if f.email, msg = RecipientEmail(f.Email); msg != "" {
		errs["email"] = msg
	}
	if f.FullName, msg = Line(f.FullName, false, 200, "a name"); msg != "" {
		errs["full_name"] = msg
	}
	// A textarea sends its line breaks as CRLF; the import's are LF.
	if f.Comment, msg = Text(Lines(f.Comment), false, 2000, "a comment"); msg != "" {
		errs["comment"] = msg
	}
	return errs
}

// Model is the client the form describes, for owner.
func (f *Client) Model(ownerID int64) *model.Client {
	return &model.Client{OwnerID: ownerID, Email: f.email, FullName: f.FullName, Comment: f.Comment}
}
