package bench

import (
	"fmt"
	htmltemplate "html/template"
	"io"
	"maps"
	"slices"
	"strconv"
)

// WriteHTML writes the result as one self-contained HTML page: the key
// figures, latency over time (p50 and p99 per step), the latency
// histogram, throughput over time and the hit ratio per PoP and per
// region, as inline SVG. It loads nothing: no scripts, styles or fonts
// from elsewhere.
func (r *Result) WriteHTML(w io.Writer) error {
	return r.WriteHTMLPage(w, fmt.Sprintf("outpost bench: %s", r.Target), nil)
}

// Section is a part of a report page written before the load run's own
// figures: a heading and its HTML (tables, inline SVG), trusted as is.
type Section struct {
	Heading string
	Body    htmltemplate.HTML
}

// WriteHTMLPage is WriteHTML with a title of the caller's and sections of
// its own first (the lab's routing, offload and warming curves, say).
func (r *Result) WriteHTMLPage(w io.Writer, title string, sections []Section) error {
	xs := make([]float64, len(r.Series))
	p50 := make([]float64, len(r.Series))
	p99 := make([]float64, len(r.Series))
	rps := make([]float64, len(r.Series))
	errs := make([]float64, len(r.Series))
	step := 1.0
	if len(r.Series) > 1 {
		step = r.Series[1].T - r.Series[0].T
	}
	for i, p := range r.Series {
		// Each point stands for its step: draw it in the step's middle.
		xs[i], p50[i], p99[i], rps[i], errs[i] = p.T+step/2, p.P50, p.P99, p.RPS, float64(p.Errors)
	}
	offload := "unknown"
	if r.OriginOffload != nil {
		offload = pct(*r.OriginOffload)
	}
	data := map[string]any{
		"R":            r,
		"Title":        title,
		"Sections":     sections,
		"RPS":          num(r.RPS),
		"Requests":     num(float64(r.Requests)),
		"Throughput":   MiBps(r.BytesPerSec),
		"Bytes":        bytesString(float64(r.Bytes)),
		"Errors":       errorsString(r),
		"Status":       statusString(r.StatusCodes),
		"HitRatio":     pct(r.HitRatio),
		"ByteHitRatio": pct(r.ByteHitRatio),
		"Offload":      offload,
		"Results":      resultsString(r.Results),
		"Lat":          []string{ms(r.Latency.Mean), ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max)},
		"Started":      r.Started.Format("2006-01-02 15:04:05 MST"),
		"Groups":       []groupTable{{"PoP", rows(r.PerPoP)}, {"region", rows(r.PerRegion)}},
		"LatencyChart": htmltemplate.HTML(lineChart("Latency over time", "ms", xs, r.Seconds, []line{{"p50", colorA, p50}, {"p99", Palette[1], p99}})),
		"HistChart":    htmltemplate.HTML(histogramChart(r.LatencyHistogram)),
		"RPSChart":     htmltemplate.HTML(lineChart("Throughput over time", "requests/s", xs, r.Seconds, []line{{"requests/s", colorA, rps}, {"errors", colorB, errs}})),
		"PoPChart":     htmltemplate.HTML(ratioChart("Hit ratio per PoP", r.PerPoP)),
		"RegionChart":  htmltemplate.HTML(""),
	}
	if len(r.PerRegion) > 0 {
		data["RegionChart"] = htmltemplate.HTML(ratioChart("Hit ratio per region", r.PerRegion))
	}
	if err := reportTemplate.Execute(w, data); err != nil {
		return fmt.Errorf("bench: writing the HTML report: %w", err)
	}
	return nil
}

// MiBps writes bytes per second in MiB/s, the one unit of throughput in
// the terminal and the reports.
func MiBps(bytesPerSec float64) string {
	return strconv.FormatFloat(bytesPerSec/(1<<20), 'f', 1, 64) + " MiB/s"
}

type groupTable struct {
	Kind string
	Rows []groupRow
}

type groupRow struct {
	Name, Requests, Errors, HitRatio, ByteHitRatio, P50, P99, Addresses string
}

func rows(groups []Group) []groupRow {
	var out []groupRow
	for _, g := range groups {
		addrs := ""
		for i, a := range slices.Sorted(maps.Keys(g.Addresses)) {
			if i > 0 {
				addrs += " "
			}
			addrs += a
		}
		out = append(out, groupRow{g.Name, num(float64(g.Requests)), num(float64(g.Errors)), pct(g.HitRatio),
			pct(g.ByteHitRatio), ms(g.Latency.P50), ms(g.Latency.P99), addrs})
	}
	return out
}

var reportTemplate = htmltemplate.Must(htmltemplate.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 760px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: normal; }
.num td { text-align: right; } .num td:first-child { text-align: left; }
svg { display: block; margin: 12px 0; font-family: system-ui, sans-serif; font-size: 13px; max-width: 100%; height: auto; }
.muted { color: #777; }
</style></head>
<body>
<h1>{{.Title}}</h1>
{{range .Sections}}<h2>{{.Heading}}</h2>
{{.Body}}
{{end}}{{if .Sections}}<h2>The load run</h2>{{end}}
<p class="muted">{{.Started}} · {{.R.Workload}} · {{.R.Mode}} loop, {{.R.Connections}} connections{{if .R.Rate}}, {{.R.Rate}} req/s offered{{end}}{{if .R.Connect}} · via {{.R.Connect}}{{end}}{{if .R.DNS}} · DNS {{.R.DNS}}{{end}} · seed {{.R.Seed}}{{if .R.Interrupted}} · <b>interrupted</b>{{end}}</p>
<table>
<tr><th>requests</th><td>{{.Requests}} in {{printf "%.2f" .R.Seconds}} s{{if .R.WarmupSeconds}} (after {{.R.WarmupSeconds}} s of warm-up){{end}}</td></tr>
<tr><th>throughput</th><td>{{.RPS}} requests/s, {{.Throughput}}</td></tr>
<tr><th>bytes</th><td>{{.Bytes}}</td></tr>
<tr><th>errors</th><td>{{.Errors}}</td></tr>
<tr><th>status codes</th><td>{{.Status}}</td></tr>
<tr><th>hit ratio</th><td>{{.HitRatio}}</td></tr>
<tr><th>byte hit ratio</th><td>{{.ByteHitRatio}}</td></tr>
<tr><th>origin offload</th><td>{{.Offload}}</td></tr>
<tr><th>results</th><td>{{.Results}}</td></tr>
</table>
<h2>Latency (ms)</h2>
<table class="num"><tr><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
<tr>{{range .Lat}}<td>{{.}}</td>{{end}}</tr></table>
<p class="muted">From each request's due time (open loop) or sending (closed loop) to its last byte.</p>
{{.LatencyChart}}
{{.HistChart}}
{{.RPSChart}}
{{.PoPChart}}
{{.RegionChart}}
{{range .Groups}}{{if .Rows}}
<h2>Per {{.Kind}}</h2>
<table class="num"><tr><th>{{.Kind}}</th><th>requests</th><th>errors</th><th>hit ratio</th><th>byte hit ratio</th><th>p50 ms</th><th>p99 ms</th><th>addresses</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Requests}}</td><td>{{.Errors}}</td><td>{{.HitRatio}}</td><td>{{.ByteHitRatio}}</td><td>{{.P50}}</td><td>{{.P99}}</td><td>{{.Addresses}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>
`))
