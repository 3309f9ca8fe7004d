package model

import (
	"slices"
	"testing"
)

func TestCanonicalEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ann@Example.COM ":           "ann@example.com",
		"a@xn--bcher-kva.de":          "a@bücher.de",
		"A@Bücher.DE":                 "a@bücher.de",
		"a@xn--e1afmkfd.xn--p1ai":     "a@пример.рф",
		"a@under_score.example":       "a@under_score.example", // not an IDNA name: as typed
		"a@xn--invalid-label.example": "a@xn--invalid-label.example",
		"no-at-sign":                  "no-at-sign",
	} {
		if got := CanonicalEmail(in); got != want {
			t.Errorf("CanonicalEmail(%q) = %q, want %q", in, got, want)
		}
	}
	if got := EmailForms("A@Bücher.de"); !slices.Equal(got, []string{"a@bücher.de", "a@xn--bcher-kva.de"}) {
		t.Errorf("EmailForms = %q", got)
	}
	if got := EmailForms("a@example.com"); !slices.Equal(got, []string{"a@example.com"}) {
		t.Errorf("EmailForms of an ASCII domain = %q", got)
	}
}
