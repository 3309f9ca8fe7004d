package stats

import "testing"

// A rate says 100.0 % only when nothing failed, and 0.0 % only when
// nothing succeeded.
func TestRate(t *testing.T) {
	for _, c := range []struct {
		ok, bad int64
		want    string
	}{
		{0, 0, "—"},
		{5, 0, "100.0 %"},
		{0, 5, "0.0 %"},
		{6012, 3, "99.9 %"},
		{1, 1999, "0.1 %"},
		{1, 2, "33.3 %"},
		{2, 1, "66.6 %"},
		{999, 1, "99.9 %"},
	} {
		if got := Rate(c.ok, c.bad); got != c.want {
			t.Errorf("Rate(%d, %d) = %q, want %q", c.ok, c.bad, got, c.want)
		}
	}
}
