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
	chartW, chartH         = 720, 260
	padL, padR, padT, padB = 64, 16, 28, 40
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	// colorA is the first series; colorB is kept for errors (red) and
	// nothing else; colorC (green) is the byte hit ratio beside colorA's
	// hit ratio.
	colorA, colorB, colorC, colorMuted = "#1f77b4", "#d62728", "#2ca02c", "#888"
)

// Palette are the colours of series that are not errors (one per PoP,
// say), in order: never the red of errors.
var Palette = []string{colorA, "#ff7f0e", colorC, "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

// line is one series of a line chart.
type line struct {
	name  string
	color string
	ys    []float64 // NaN: no value at that x (a gap in the line)
}

// Line is one series of LineChart: a value per x (NaN for none: the line
// breaks there).
type Line struct {
	Name, Color string
	Ys          []float64
}

// LineChart draws series over shared x values in seconds, on an x axis
// from 0 to at least hiX and a y axis from 0 to top (0: from the data),
// its ticks written by format (nil: plain numbers), with a dashed
// vertical line at each mark. It returns inline SVG.
func LineChart(title, yLabel string, xs []float64, hiX, top float64, lines []Line, format func(float64) string, marks ...Mark) string {
	ls := make([]line, len(lines))
	for i, l := range lines {
		ls[i] = line{l.Name, l.Color, l.Ys}
	}
	return lineChartTop(title, yLabel, xs, hiX, top, ls, format, marks...)
}

// Mark is a moment of a LineChart: a dashed line at X seconds with a label
// ("end of warm-up").
type Mark struct {
	X     float64
	Label string
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
	return lineChartTop(title, yLabel, xs, hiX, 0, lines, nil)
}

func lineChartTop(title, yLabel string, xs []float64, hiX, top float64, lines []line, format func(float64) string, marks ...Mark) string {
	if format == nil {
		format = fmtTick
	}
	var b strings.Builder
	svgOpen(&b, title, "seconds", yLabel)
	if len(xs) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, padL+10, padT+plotH/2)
		return b.String()
	}
	var ticks []float64
	if top > 0 {
		ticks = niceTicks(top, 4)
	} else {
		hiY := 0.0
		for _, l := range lines {
			for _, y := range l.ys {
				if !math.IsNaN(y) {
					hiY = max(hiY, y)
				}
			}
		}
		ticks = niceTicks(hiY*1.05, 5)
	}
	top = ticks[len(ticks)-1]
	yAxis(&b, ticks, top, format)
	hiX = max(hiX, xs[len(xs)-1], 1)
	for _, t := range niceTicks(hiX, 8) {
		if t > hiX {
			break
		}
		x := padL + t/hiX*plotW
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle" font-size="11">%s</text>`, coord(x), padT+plotH+16, fmtTick(t))
	}
	for _, m := range marks {
		if m.X < 0 || m.X > hiX {
			continue
		}
		x := padL + m.X/hiX*plotW
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`, coord(x), padT, coord(x), padT+plotH, colorMuted)
		fmt.Fprintf(&b, `<text x="%s" y="%d" fill="%s" font-size="11">%s</text>`, coord(x+4), padT+plotH-6, colorMuted, html.EscapeString(m.Label))
	}
	for i, l := range lines {
		var pts strings.Builder
		flush := func() {
			if pts.Len() > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
				pts.Reset()
			}
		}
		for j, y := range l.ys {
			if j >= len(xs) {
				break
			}
			if math.IsNaN(y) {
				flush()
				continue
			}
			x := padL + xs[j]/hiX*plotW
			fmt.Fprintf(&pts, "%s,%s ", coord(x), coord(padT+plotH-y/top*plotH))
		}
		flush()
		fmt.Fprintf(&b, `<text x="%d" y="18" fill="%s" font-size="12">%s</text>`, padL+plotW-70*len(lines)+i*70, l.color, html.EscapeString(l.name))
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
	names := make([]string, len(groups))
	hit := make([]float64, len(groups))
	byteHit := make([]float64, len(groups))
	for i, g := range groups {
		names[i], hit[i], byteHit[i] = g.Name, g.HitRatio, g.ByteHitRatio
	}
	return BarChart(title, "share of responses (hit ratio) and of body bytes (byte hit ratio)", names,
		[]Bars{{"hit ratio", colorA, hit}, {"byte hit ratio", colorC, byteHit}}, 1, PercentTick, pct)
}

// Bars is one series of BarChart: a value per category, in one colour.
type Bars struct {
	Name, Color string
	Values      []float64
}

// PercentTick writes a ratio as a whole percentage, for axes.
func PercentTick(f float64) string { return fmtTick(100*f) + "%" }

// BarChart draws horizontal bars, a group per category with a bar per
// series, on a value axis from 0 to top (0: from the data) labelled axis,
// its ticks written by tick and each bar's value by label (nil: plain
// numbers). It returns inline SVG.
func BarChart(title, axis string, categories []string, series []Bars, top float64, tick, label func(float64) string) string {
	if tick == nil {
		tick = fmtTick
	}
	if label == nil {
		label = fmtTick
	}
	const labelW, rightW, barH, gap = 140, 90, 12, 10
	groupH := barH*max(len(series), 1) + gap
	h := padT + 24 + groupH*max(len(categories), 1) + padB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, chartW, h, chartW, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="8" y="18" font-weight="bold">%s</text>`, html.EscapeString(title))
	for i, s := range series {
		x := labelW + 120*i
		fmt.Fprintf(&b, `<rect x="%d" y="29" width="10" height="10" fill="%s"/><text x="%d" y="38" font-size="12">%s</text>`, x, s.Color, x+14, html.EscapeString(s.Name))
	}
	if len(categories) == 0 {
		fmt.Fprintf(&b, `<text x="8" y="%d">no data</text></svg>`, padT+24)
		return b.String()
	}
	if top <= 0 {
		for _, s := range series {
			for _, v := range s.Values {
				top = max(top, v)
			}
		}
		top *= 1.05
	}
	ticks := niceTicks(top, 5)
	top = ticks[len(ticks)-1]
	plotTop, plotBottom := padT+24, h-padB
	barMax := float64(chartW - labelW - rightW)
	// The value axis: grid lines, tick labels and the axis title.
	for _, t := range ticks {
		x := labelW + t/top*barMax
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#ddd"/>`, coord(x), plotTop, coord(x), plotBottom)
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle" font-size="11">%s</text>`, coord(x), plotBottom+14, html.EscapeString(tick(t)))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, labelW, plotTop, labelW, plotBottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%s" y2="%d" stroke="#444"/>`, labelW, plotBottom, coord(labelW+barMax), plotBottom)
	fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle" fill="%s">%s</text>`, coord(labelW+barMax/2), h-8, colorMuted, html.EscapeString(axis))
	for i, c := range categories {
		y := plotTop + 4 + i*groupH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>`, labelW-8, y+groupH/2, html.EscapeString(c))
		for j, s := range series {
			v := 0.0
			if i < len(s.Values) {
				v = s.Values[i]
			}
			w := max(v, 0) / top * barMax
			by := y + j*barH
			if w == 0 {
				continue
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="%d" fill="%s"><title>%s %s: %s</title></rect>`,
				labelW, by, coord(w), barH-2, s.Color, html.EscapeString(c), html.EscapeString(s.Name), html.EscapeString(label(v)))
			fmt.Fprintf(&b, `<text x="%s" y="%d" font-size="11">%s</text>`, coord(labelW+w+4), by+barH-3, html.EscapeString(label(v)))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
