package stats

import "testing"

// A rate is rounded to tenths, and says 100.0 % only when nothing failed,
// and 0.0 % only when nothing succeeded.
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
		{2, 1, "66.7 %"},
		{5, 4, "55.6 %"},
		{2372, 128, "94.9 %"},
		{999, 1, "99.9 %"},
		{99999, 1, "99.9 %"},
		{1, 99999, "0.1 %"},
	} {
		if got := Rate(c.ok, c.bad); got != c.want {
			t.Errorf("Rate(%d, %d) = %q, want %q", c.ok, c.bad, got, c.want)
		}
	}
}

// The y axis labels each value once, at even steps: with one attempt at
// most 0 and 1, with four 0 and 5 (not 0, 2, 5).
func TestChartTicksOncePerValue(t *testing.T) {
	for most, want := range map[int64][]string{1: {"0", "1"}, 2: {"0", "1", "2"}, 4: {"0", "5"}, 7: {"0", "5", "10"}} {
		c := newChart([]Day{{Succeeded: most}})
		var got []string
		for _, tk := range c.Ticks {
			got = append(got, tk.Label)
		}
		if len(got) != len(want) {
			t.Errorf("busiest day %d: ticks %v, want %v", most, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("busiest day %d: ticks %v, want %v", most, got, want)
			}
		}
	}
}
