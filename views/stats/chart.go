package stats

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Day is one day's attempts.
type Day struct {
	Date      time.Time
	Succeeded int64
	Failed    int64
}

// Chart geometry, in the SVG's own units (it scales to its box).
const (
	chartW     = 720.0
	chartH     = 220.0
	padLeft    = 44.0
	padRight   = 8.0
	padTop     = 10.0
	padBottom  = 26.0
	barGapFrac = 0.2
)

// bar is one day's stacked bar: failures on top of successes.
type bar struct {
	X, W       float64
	OkY, OkH   float64
	BadY, BadH float64
	Label      string // "Mon 3 Nov: 120 sent, 3 failed"
}

// tick is a horizontal grid line with its value.
type tick struct {
	Y     float64
	Label string
}

// xLabel is a day's name under the axis.
type xLabel struct {
	X     float64
	Label string
}

// chart is the drawn form of a run of days.
type chart struct {
	Bars    []bar
	Ticks   []tick
	XLabels []xLabel
	Summary string
	Empty   bool // nothing sent or failed on any of the days
}

// newChart lays out days as stacked bars scaled to the busiest day, with
// three grid lines and about six day labels.
func newChart(days []Day) chart {
	var c chart
	var most, ok, bad int64
	for _, d := range days {
		most = max(most, d.Succeeded+d.Failed)
		ok += d.Succeeded
		bad += d.Failed
	}
	c.Empty = most == 0
	top := niceCeil(most)
	plotH := chartH - padTop - padBottom
	plotW := chartW - padLeft - padRight
	y := func(v int64) float64 { return padTop + plotH - float64(v)/float64(top)*plotH }
	for i := 0; i <= 2; i++ {
		if top*int64(i)%2 != 0 {
			continue // an odd top (1, 5) has no whole middle: 2 of 5 drew a line out of step
		}
		v := top * int64(i) / 2
		c.Ticks = append(c.Ticks, tick{Y: y(v), Label: short(v)})
	}
	if len(days) == 0 {
		return c
	}
	slot := plotW / float64(len(days))
	w := slot * (1 - barGapFrac)
	every := max(1, (len(days)+5)/6)
	for i, d := range days {
		x := padLeft + float64(i)*slot + (slot-w)/2
		okTop := y(d.Succeeded)
		badTop := y(d.Succeeded + d.Failed)
		c.Bars = append(c.Bars, bar{
			X: x, W: w,
			OkY: okTop, OkH: padTop + plotH - okTop,
			BadY: badTop, BadH: okTop - badTop,
			Label: fmt.Sprintf("%s: %d sent, %d failed", d.Date.Format("Mon 2 Jan"), d.Succeeded, d.Failed),
		})
		if (len(days)-1-i)%every == 0 {
			c.XLabels = append(c.XLabels, xLabel{X: x + w/2, Label: d.Date.Format("2 Jan")})
		}
	}
	first, last := days[0].Date.Format("2 Jan 2006"), days[len(days)-1].Date.Format("2 Jan 2006")
	c.Summary = fmt.Sprintf("Attempts per day from %s to %s: %d sent, %d failed; the busiest day had %d.", first, last, ok, bad, most)
	return c
}

// niceCeil rounds a maximum up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	p := int64(1)
	for p*10 < v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// short writes a count compactly: 950, 1.2k, 3M.
func short(v int64) string {
	switch {
	case v >= 1_000_000:
		return trim(float64(v)/1e6) + "M"
	case v >= 1_000:
		return trim(float64(v)/1e3) + "k"
	}
	return strconv.FormatInt(v, 10)
}

// trim keeps one decimal at most: 1.25 → 1.3, 2.0 → 2.
func trim(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

func coord(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// Rate is a success rate as a percentage with one decimal, "—" with no attempts.
func Rate(ok, bad int64) string {
	if ok+bad == 0 {
		return "—"
	}
	// Rounded to tenths, but never to "100.0 %" with failures (99.96 %
	// reads 99.9 %), nor to "0.0 %" with sends that went.
	n := ok + bad
	tenths := (ok*2000 + n) / (2 * n)
	switch {
	case bad > 0 && tenths == 1000:
		tenths = 999
	case ok > 0 && tenths == 0:
		tenths = 1
	}
	return strconv.FormatInt(tenths/10, 10) + "." + strconv.FormatInt(tenths%10, 10) + " %"
}
