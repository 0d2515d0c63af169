package bench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The charts of the HTML report are SVG drawn here: no scripts, no
// external files, so the report is one file that opens anywhere.

const (
	chartW, chartH             = 720, 260
	padL, padR, padT, padB     = 64, 16, 28, 40
	plotW, plotH               = chartW - padL - padR, chartH - padT - padB
	colorA, colorB, colorMuted = "#1f77b4", "#d62728", "#888"
)

// line is one series of a line chart.
type line struct {
	name  string
	color string
	ys    []float64
}

// niceTicks returns about n round tick values from 0 to at least hi.
func niceTicks(hi float64, n int) []float64 {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []float64
	for v := 0.0; ; v += step {
		ticks = append(ticks, v)
		if v >= hi {
			break
		}
	}
	return ticks
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func coord(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// svgOpen starts a chart with its title and axis labels.
func svgOpen(b *strings.Builder, title, xLabel, yLabel string) {
	fmt.Fprintf(b, `<svg viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="18" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, padL+plotW/2, chartH-6, colorMuted, html.EscapeString(xLabel))
	fmt.Fprintf(b, `<text x="14" y="%d" text-anchor="middle" fill="%s" transform="rotate(-90 14 %d)">%s</text>`, padT+plotH/2, colorMuted, padT+plotH/2, html.EscapeString(yLabel))
}

// yAxis draws horizontal grid lines and labels for ticks up to top.
func yAxis(b *strings.Builder, ticks []float64, top float64, format func(float64) string) {
	for _, t := range ticks {
		y := padT + plotH - t/top*plotH
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ddd"/>`, padL, coord(y), padL+plotW, coord(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end" font-size="11">%s</text>`, padL-6, coord(y+4), html.EscapeString(format(t)))
	}
}

// lineChart draws series over x values (seconds) on an axis from 0 to
// at least hiX.
func lineChart(title, yLabel string, xs []float64, hiX float64, lines []line) string {
	var b strings.Builder
	svgOpen(&b, title, "seconds", yLabel)
	if len(xs) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, padL+10, padT+plotH/2)
		return b.String()
	}
	hiY := 0.0
	for _, l := range lines {
		for _, y := range l.ys {
			hiY = max(hiY, y)
		}
	}
	ticks := niceTicks(hiY*1.05, 5)
	top := ticks[len(ticks)-1]
	yAxis(&b, ticks, top, fmtTick)
	hiX = max(hiX, xs[len(xs)-1], 1)
	for _, t := range niceTicks(hiX, 8) {
		if t > hiX {
			break
		}
		x := padL + t/hiX*plotW
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle" font-size="11">%s</text>`, coord(x), padT+plotH+16, fmtTick(t))
	}
	for i, l := range lines {
		var pts strings.Builder
		for j, y := range l.ys {
			if j >= len(xs) {
				break
			}
			x := padL + xs[j]/hiX*plotW
			fmt.Fprintf(&pts, "%s,%s ", coord(x), coord(padT+plotH-y/top*plotH))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<text x="%d" y="18" fill="%s" font-size="12">%s</text>`, padL+plotW-150+i*70, l.color, html.EscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// histogramChart draws the latency distribution as bars on a log scale.
func histogramChart(bins []Bin) string {
	var b strings.Builder
	svgOpen(&b, "Latency histogram", "latency (ms, log scale; bar = requests up to its right edge)", "requests")
	if len(bins) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, padL+10, padT+plotH/2)
		return b.String()
	}
	var hiY int64
	for _, bin := range bins {
		hiY = max(hiY, bin.Count)
	}
	ticks := niceTicks(float64(hiY)*1.05, 5)
	top := ticks[len(ticks)-1]
	yAxis(&b, ticks, top, fmtTick)
	w := float64(plotW) / float64(len(bins))
	for i, bin := range bins {
		h := float64(bin.Count) / top * plotH
		x := padL + float64(i)*w
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>≤ %s ms: %d</title></rect>`,
			coord(x+1), coord(padT+plotH-h), coord(max(w-2, 1)), coord(h), colorA, ms(bin.LeMs), bin.Count)
		if every := max(len(bins)/8, 1); i%every == 0 || (i == len(bins)-1 && i%every >= every/2) {
			fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle" font-size="11">%s</text>`, coord(x+w), padT+plotH+16, ms(bin.LeMs))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// ratioChart draws the hit and byte hit ratio of each group as bars.
func ratioChart(title string, groups []Group) string {
	var b strings.Builder
	h := padT + padB + 28*max(len(groups), 1)
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, chartW, h, chartW, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="8" y="18" font-weight="bold">%s</text>`, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" fill="%s" font-size="12">hit ratio</text><text x="%d" y="18" fill="%s" font-size="12">byte hit ratio</text>`,
		chartW-200, colorA, chartW-120, colorB)
	const labelW, barMax = 160, chartW - 160 - 80
	for i, g := range groups {
		y := padT + i*28
		fmt.Fprintf(&b, `<text x="8" y="%d" font-size="12">%s</text>`, y+16, html.EscapeString(g.Name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="11" fill="%s"/>`, labelW, y+2, coord(g.HitRatio*barMax), colorA)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="11" fill="%s"/>`, labelW, y+14, coord(g.ByteHitRatio*barMax), colorB)
		fmt.Fprintf(&b, `<text x="%s" y="%d" font-size="11">%s / %s</text>`, coord(labelW+max(g.HitRatio, g.ByteHitRatio)*barMax+6), y+16, pct(g.HitRatio), pct(g.ByteHitRatio))
	}
	if len(groups) == 0 {
		fmt.Fprintf(&b, `<text x="8" y="%d">no responses</text>`, padT+16)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
