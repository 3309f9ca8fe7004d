package mail

import "regexp"

var placeholder = regexp.MustCompile(`\{\{\s*(name|email)\s*\}\}`)

// Personalize fills {{name}} and {{email}} (spaces inside the braces
// allowed) with the recipient's name and address.
func Personalize(text, name, email string) string {
	if name == "" {
		name = email
	}
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		if placeholder.FindStringSubmatch(m)[1] == "name" {
			return name
		}
		return email
	})
}

// IsPlaceholder reports whether s is, whole, a placeholder Personalize
// fills in.
func IsPlaceholder(s string) bool { return placeholder.FindString(s) == s }

// WithFooter ends a mailing's body with the unsubscribe link, visible to
// every mail program (the List-Unsubscribe header is not shown by all),
// after the signature separator "-- ", which mail programs set apart.
func WithFooter(body, unsubscribeLink string) string {
	return body + "\n\n-- \nTo stop receiving these mails: " + unsubscribeLink + "\n"
}
