package model

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// CanonicalEmail writes an address one way, so that one mailbox is one
// account or one client however it was typed: lower-cased, with an
// internationalized domain in its Unicode form (xn--bcher-kva.de and
// Bücher.de both become bücher.de; the mail goes to the ASCII form). A
// domain that is not a valid internationalized name (an underscore, a bad
// xn-- label) is left as it is.
func CanonicalEmail(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	domain := addr[at+1:]
	if !strings.Contains(domain, "xn--") && isASCII(domain) {
		return addr
	}
	if u, err := idna.Lookup.ToUnicode(domain); err == nil {
		return addr[:at+1] + u
	}
	return addr
}

// EmailForms are the ways a canonical address may have been stored: as it
// is, and with its domain in ASCII form (rows saved before addresses were
// made canonical).
func EmailForms(addr string) []string {
	forms := []string{CanonicalEmail(addr)}
	at := strings.LastIndexByte(forms[0], '@')
	if at < 0 || isASCII(forms[0][at+1:]) {
		return forms
	}
	if a, err := idna.Lookup.ToASCII(forms[0][at+1:]); err == nil {
		forms = append(forms, forms[0][:at+1]+a)
	}
	return forms
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
