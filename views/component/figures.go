package component

import "strconv"

// Count writes a count with thin separators of thousands: 1 234 567.
func Count(v int64) string {
	s := strconv.FormatInt(v, 10)
	if v < 0 {
		return s
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, "\u202f"...)
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Noun is one or many as n asks: "1 client", "2 clients".
func Noun(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Counted is n with the word for one or for many: "1 client", "20 000
// clients".
func Counted(n int64, one, many string) string { return Count(n) + " " + Noun(n, one, many) }
