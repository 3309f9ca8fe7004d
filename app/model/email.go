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
	if !strings.Contains(domain, "xn--") && IsASCII(domain) {
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
	c := CanonicalEmail(addr)
	if a := ASCIIEmail(c); a != c {
		return []string{c, a}
	}
	return []string{c}
}

// ASCIIEmail writes an address's internationalized domain (пример.рф) in
// its ASCII form (xn--e1afmkfd.xn--p1ai), which every mail server takes.
// The part before the @ is left as it is, and so is a domain with no ASCII
// form (see ASCIIDomain).
func ASCIIEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	if a, ok := ASCIIDomain(addr[at+1:]); ok {
		return addr[:at+1] + a
	}
	return addr
}

// ASCIIDomain is domain's ASCII form; ok is false for a domain that has
// none (a label like ex--ample beside a Unicode one), which mail could
// only name in UTF-8.
func ASCIIDomain(domain string) (ascii string, ok bool) {
	if IsASCII(domain) {
		return domain, true
	}
	a, err := idna.Lookup.ToASCII(domain)
	return a, err == nil
}

// IsASCII reports whether s holds nothing beyond ASCII.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
