package lab

import (
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/outpost-cdn/outpost/bench"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

// Report is the CDN's story of one lab run: where each region went, what
// each PoP spared the origin, how each warmed up, and what a shield
// changes. -report writes it as an HTML page and as JSON beside it; the
// page's figures are the JSON's (a test checks).
type Report struct {
	Config  string       `json:"config"`
	Routing []Route      `json:"routing"`
	PoPs    []PoPFigures `json:"pops"`
	// ThroughputMiBps is body bytes received per second, in MiB/s (as the
	// terminal prints it).
	ThroughputMiBps float64           `json:"throughput_mib_per_sec"`
	Warming         Warming           `json:"warming"`
	Shield          *ShieldComparison `json:"shield,omitempty"`
	Edge            *EdgeFeatures     `json:"edge,omitempty"`
	// Load is the load run's own result (what `outpost bench` reports).
	Load *bench.Result `json:"load"`
}

// Route is where DNS sent one region's clients.
type Route struct {
	Region   string  `json:"region"`
	Requests int64   `json:"requests"`
	PoPs     []Share `json:"pops"` // most first
}

// Share is one PoP's part of a region's responses.
type Share struct {
	PoP       string  `json:"pop"`
	Responses int64   `json:"responses"`
	Share     float64 `json:"share"`
}

// PoPFigures are one PoP's figures: the load run's view (requests, hit
// ratios over the window) and the PoP's own (origin offload and origin
// fetches since it started, warm-up included).
type PoPFigures struct {
	PoP           string  `json:"pop"`
	Requests      int64   `json:"requests"`
	HitRatio      float64 `json:"hit_ratio"`
	ByteHitRatio  float64 `json:"byte_hit_ratio"`
	OriginOffload float64 `json:"origin_offload"`
	OriginFetches uint64  `json:"origin_fetches"`
}

func newReport(cfg *config.Config, res *bench.Result, pops []*pop.PoP, w Warming) *Report {
	r := &Report{Config: cfg.Path, Load: res, Warming: w, ThroughputMiBps: round(res.BytesPerSec/(1<<20), 1)}
	byAddr := map[string]string{}
	for _, p := range cfg.POPs {
		host, _, _ := net.SplitHostPort(p.Listen)
		byAddr[host] = p.Name
		byAddr[p.Listen] = p.Name
	}
	for _, g := range res.PerRegion {
		r.Routing = append(r.Routing, Route{Region: g.Name, Requests: g.Requests, PoPs: shares(g.Addresses, byAddr)})
	}
	stats := map[string]PoPFigures{}
	for _, p := range pops {
		st := p.Stats()
		stats[p.Name()] = PoPFigures{OriginOffload: round(st.OriginOffload, 4), OriginFetches: st.OriginFetches}
	}
	for _, g := range res.PerPoP {
		name := strings.TrimPrefix(g.Name, "outpost/")
		f := stats[name]
		f.PoP, f.Requests, f.HitRatio, f.ByteHitRatio = name, g.Requests, round(g.HitRatio, 4), round(g.ByteHitRatio, 4)
		r.PoPs = append(r.PoPs, f)
	}
	sort.Slice(r.PoPs, func(i, j int) bool { return r.PoPs[i].PoP < r.PoPs[j].PoP })
	return r
}

func round(f float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(f*p) / p
}

// shares names the PoP(s) a region's responses came from, most first.
func shares(addrs map[string]int64, byAddr map[string]string) []Share {
	var total int64
	var out []Share
	for addr, n := range addrs {
		name := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			name = h
		}
		if p, ok := byAddr[addr]; ok {
			name = p
		} else if p, ok := byAddr[name]; ok {
			name = p
		}
		out = append(out, Share{PoP: name, Responses: n})
		total += n
	}
	for i := range out {
		out[i].Share = round(float64(out[i].Responses)/float64(max(total, 1)), 4)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Responses > out[j].Responses })
	return out
}

func sharesText(s []Share) string {
	var parts []string
	for _, sh := range s {
		parts = append(parts, sh.PoP+" "+pct(sh.Share))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// writeText prints the routing and the figures.
func (r *Report) writeText(out io.Writer) {
	res := r.Load
	fmt.Fprintf(out, "\nRouting (which PoP DNS sent each region to):\n")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  region\tPoP\trequests")
	for _, g := range r.Routing {
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", g.Region, sharesText(g.PoPs), g.Requests)
	}
	tw.Flush()

	fmt.Fprintf(out, "\nPer PoP and in total (%d connections, %.1fs measured after %.1fs warm-up, %s):\n",
		res.Connections, res.Seconds, res.WarmupSeconds, res.Workload)
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PoP\trequests\treq/s\thit ratio\tbyte hit ratio\torigin offload\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	groups := slices.Clone(res.PerPoP)
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	for _, g := range groups {
		name := strings.TrimPrefix(g.Name, "outpost/")
		offload := "-"
		for _, f := range r.PoPs {
			if f.PoP == name && f.OriginFetches+uint64(f.Requests) > 0 {
				offload = pct(f.OriginOffload)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name, g.Requests,
			float64(g.Requests)/max(res.Seconds, 1e-9), pct(g.HitRatio), pct(g.ByteHitRatio), offload,
			g.Latency.P50, g.Latency.P90, g.Latency.P99, g.Latency.Max)
	}
	offload := "-"
	if res.OriginOffload != nil {
		offload = pct(*res.OriginOffload)
	}
	fmt.Fprintf(tw, "total\t%d\t%.0f\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", res.Requests, res.RPS,
		pct(res.HitRatio), pct(res.ByteHitRatio), offload,
		res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max)
	tw.Flush()
	fmt.Fprintf(out, "(per-PoP origin offload is each PoP's own figure since it started, warm-up included;\n"+
		" the total is measured at the origin over the window)\n")
	if line := r.warmingText(); line != "" {
		fmt.Fprintf(out, "\nWarming (hit ratio per PoP over the first and the last second, warm-up included):\n%s", line)
	}
	fmt.Fprintf(out, "\nthroughput %.0f req/s, %.1f MiB/s; errors %d", res.RPS, r.ThroughputMiBps, res.Errors)
	if len(res.ErrorsByKind) > 0 {
		fmt.Fprintf(out, " %v", res.ErrorsByKind)
	}
	fmt.Fprintf(out, "; results %+v\n", res.Results)
}

func (r *Report) warmingText() string {
	var b strings.Builder
	for _, c := range r.Warming.PoPs {
		fmt.Fprintf(&b, "  %s  %s → %s\n", c.PoP, pct(c.FirstSecond), pct(c.LastSecond))
	}
	return b.String()
}

// write prints the shield comparison.
func (s *ShieldComparison) write(out io.Writer) {
	fmt.Fprintf(out, "\nOrigin shield (one workload run twice: %d requests across the regions, %d distinct objects no PoP held yet):\n", s.Requests, s.Objects)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  without a shield\tthe origin got %d requests\t(%.2f per object)\n", s.Without, perObject(s.Without, s.Objects))
	fmt.Fprintf(tw, "  with %s as the shield\tthe origin got %d requests\t(%.2f per object)\n", s.Shield, s.With, perObject(s.With, s.Objects))
	tw.Flush()
}

func perObject(n int64, objects int) float64 { return float64(n) / float64(max(objects, 1)) }

// write writes the HTML page at path and the JSON beside it, and
// returns the JSON's path.
func (r *Report) write(path string) (string, error) {
	jsonPath := strings.TrimSuffix(path, filepath.Ext(path)) + ".json"
	if jsonPath == path {
		jsonPath = path + ".json"
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("lab: report: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("lab: report: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("lab: report: %w", err)
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return "", err
	}
	return jsonPath, f.Close()
}

// WriteHTML writes the report as one self-contained page: the lab's
// sections (routing, offload, warming curves, the shield), then the load
// run's own figures and charts. Every figure of the lab's sections is in
// a cell marked data-k with its place in the JSON.
func (r *Report) WriteHTML(w io.Writer) error {
	var secs []bench.Section
	add := func(heading string, t *htmltemplate.Template, data any, charts ...string) error {
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("lab: report: %w", err)
		}
		for _, c := range charts {
			b.WriteString(c)
		}
		secs = append(secs, bench.Section{Heading: heading, Body: htmltemplate.HTML(b.String())}) // #nosec: built from escaped parts
		return nil
	}
	// Routing: a table and a bar per region of its share at each PoP.
	// A PoP has one colour in every chart.
	var popNames []string
	color := map[string]string{}
	for i, f := range r.PoPs {
		popNames = append(popNames, f.PoP)
		color[f.PoP] = bench.Palette[i%len(bench.Palette)]
	}
	for _, c := range r.Warming.PoPs {
		if _, ok := color[c.PoP]; !ok {
			color[c.PoP] = bench.Palette[len(color)%len(bench.Palette)]
		}
	}
	var regions []string
	for _, rt := range r.Routing {
		regions = append(regions, rt.Region)
	}
	var routeBars []bench.Bars
	for _, name := range popNames {
		vals := make([]float64, len(r.Routing))
		for j, rt := range r.Routing {
			for _, s := range rt.PoPs {
				if s.PoP == name {
					vals[j] = s.Share
				}
			}
		}
		routeBars = append(routeBars, bench.Bars{Name: name, Color: color[name], Values: vals})
	}
	if err := add("Where each region went", routingTmpl, r,
		bench.BarChart("Share of each region's responses by PoP", "share of the region's responses", regions, routeBars, 1, bench.PercentTick, pctHTML)); err != nil {
		return err
	}
	// Per PoP: hit ratios and origin offload.
	hit, byteHit, offload := make([]float64, len(r.PoPs)), make([]float64, len(r.PoPs)), make([]float64, len(r.PoPs))
	for i, f := range r.PoPs {
		hit[i], byteHit[i], offload[i] = f.HitRatio, f.ByteHitRatio, f.OriginOffload
	}
	if err := add("Per PoP: hits and origin offload", popTmpl, r,
		bench.BarChart("Hit ratio, byte hit ratio and origin offload per PoP", "percent", popNames,
			[]bench.Bars{{Name: "hit ratio", Color: bench.Palette[0], Values: hit}, {Name: "byte hit ratio", Color: bench.Palette[2], Values: byteHit}, {Name: "origin offload", Color: bench.Palette[3], Values: offload}},
			1, bench.PercentTick, pctHTML)); err != nil {
		return err
	}
	// The warming curves.
	var lines []bench.Line
	for _, c := range r.Warming.PoPs {
		ys := make([]float64, len(c.HitRatio))
		for j, v := range c.HitRatio {
			ys[j] = math.NaN()
			if v != nil {
				ys[j] = *v
			}
		}
		lines = append(lines, bench.Line{Name: c.PoP, Color: color[c.PoP], Ys: ys})
	}
	hiX := 0.0
	if n := len(r.Warming.Seconds); n > 0 {
		hiX = r.Warming.Seconds[n-1]
	}
	if err := add("Hit ratio over time: the warming curve", warmingTmpl, r,
		bench.LineChart("Hit ratio per PoP per interval (warm-up included)", "hit ratio", r.Warming.Seconds, hiX, 1, lines, bench.PercentTick,
			bench.Mark{X: r.Warming.WarmupSeconds, Label: "end of warm-up"})); err != nil {
		return err
	}
	if s := r.Shield; s != nil {
		if err := add("Origin shield: what the origin saw", shieldTmpl, s,
			bench.BarChart("Origin requests for the same workload", "requests at the origin", []string{"without a shield", "with " + s.Shield + " as the shield", "distinct objects"},
				[]bench.Bars{{Name: "requests", Color: bench.Palette[0], Values: []float64{float64(s.Without), float64(s.With), float64(s.Objects)}}}, 0, nil, nil)); err != nil {
			return err
		}
	}
	if e := r.Edge; e != nil && (e.Compression != nil || e.Signed != nil || e.Proxy != nil) {
		var charts []string
		if d := e.Compression; d != nil {
			var names []string
			var sizes []float64
			for _, f := range d.Encodings {
				names = append(names, f.AcceptEncoding)
				sizes = append(sizes, float64(f.Bytes))
			}
			charts = append(charts, bench.BarChart("Bytes sent for "+d.Path+" by Accept-Encoding", "bytes", names,
				[]bench.Bars{{Name: "bytes", Color: bench.Palette[0], Values: sizes}}, 0, nil, nil))
		}
		if err := add("Edge features: compression, signed URLs, PROXY protocol", edgeTmpl, e, charts...); err != nil {
			return err
		}
	}
	if err := r.Load.WriteHTMLPage(w, "Outpost lab: "+r.Config, secs); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// pctHTML writes a ratio as the page's tables do.
func pctHTML(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

var funcs = htmltemplate.FuncMap{
	"pct": pctHTML,
	"mib": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " MiB/s" },
	"per": func(n int64, objects int) string { return strconv.FormatFloat(perObject(n, objects), 'f', 2, 64) },
}

var routingTmpl = htmltemplate.Must(htmltemplate.New("routing").Funcs(funcs).Parse(`<table class="num"><tr><th>client region</th><th>PoP (share of responses)</th><th>requests</th></tr>
{{range $i, $r := .Routing}}<tr><td>{{$r.Region}}</td><td>{{range $j, $s := $r.PoPs}}{{if $j}}, {{end}}{{$s.PoP}} <span data-k="routing.{{$i}}.pops.{{$j}}.share">{{pct $s.Share}}</span>{{end}}</td><td data-k="routing.{{$i}}.requests">{{$r.Requests}}</td></tr>
{{end}}</table>
<p class="muted">Throughput of the run: <span data-k="throughput_mib_per_sec">{{mib .ThroughputMiBps}}</span>.</p>
`))

var popTmpl = htmltemplate.Must(htmltemplate.New("pops").Funcs(funcs).Parse(`<table class="num"><tr><th>PoP</th><th>requests</th><th>hit ratio</th><th>byte hit ratio</th><th>origin offload</th><th>origin fetches</th></tr>
{{range $i, $p := .PoPs}}<tr><td>{{$p.PoP}}</td><td data-k="pops.{{$i}}.requests">{{$p.Requests}}</td><td data-k="pops.{{$i}}.hit_ratio">{{pct $p.HitRatio}}</td><td data-k="pops.{{$i}}.byte_hit_ratio">{{pct $p.ByteHitRatio}}</td><td data-k="pops.{{$i}}.origin_offload">{{pct $p.OriginOffload}}</td><td data-k="pops.{{$i}}.origin_fetches">{{$p.OriginFetches}}</td></tr>
{{end}}</table>
<p class="muted">Requests and hit ratios are the load run's, over the measured window; origin offload (1 − origin bytes / bytes served) and origin fetches are each PoP's own, since it started.</p>
`))

var warmingTmpl = htmltemplate.Must(htmltemplate.New("warming").Funcs(funcs).Parse(`<table class="num"><tr><th>PoP</th><th>first second</th><th>last second</th></tr>
{{range $i, $c := .Warming.PoPs}}<tr><td>{{$c.PoP}}</td><td data-k="warming.pops.{{$i}}.first_second_hit_ratio">{{pct $c.FirstSecond}}</td><td data-k="warming.pops.{{$i}}.last_second_hit_ratio">{{pct $c.LastSecond}}</td></tr>
{{end}}</table>
<p class="muted">Each PoP's figures were sampled through the run (warm-up of <span data-k="warming.warmup_seconds">{{.Warming.WarmupSeconds}}</span> s included); each point is the hit ratio of the requests the PoP answered in one interval. A gap is an interval in which it answered none.</p>
`))

var shieldTmpl = htmltemplate.Must(htmltemplate.New("shield").Funcs(funcs).Parse(`<table class="num"><tr><th></th><th>origin requests</th><th>per object</th></tr>
<tr><td>without a shield</td><td data-k="shield.origin_requests_without_shield">{{.Without}}</td><td>{{per .Without .Objects}}</td></tr>
<tr><td>with {{.Shield}} as the shield</td><td data-k="shield.origin_requests_with_shield">{{.With}}</td><td>{{per .With .Objects}}</td></tr>
</table>
<p class="muted">One workload run twice: <span data-k="shield.requests">{{.Requests}}</span> requests across the regions, on <span data-k="shield.objects">{{.Objects}}</span> distinct objects no PoP held yet: first every PoP filled from the origin; then the PoPs reloaded a copy of the file whose service names <span data-k="shield.shield">{{.Shield}}</span> as its shield (docs/shield.md). With the shield the origin should see each object once.</p>
`))

var edgeTmpl = htmltemplate.Must(htmltemplate.New("edge").Funcs(funcs).Parse(`{{with .Compression}}<h3>Compression (docs/compression.md)</h3>
<p class="muted"><span data-k="edge.compression.path">{{.Path}}</span> of service <span data-k="edge.compression.service">{{.Service}}</span> from PoP <span data-k="edge.compression.pop">{{.PoP}}</span>, <span data-k="edge.compression.identity_bytes">{{.IdentityBytes}}</span> bytes as the origin sent it, fetched twice with each Accept-Encoding: each encoding is computed once, stored as its own variant, and the second fetch is a hit.</p>
<table class="num"><tr><th>Accept-Encoding</th><th>Content-Encoding</th><th>bytes</th><th>of the original</th><th>second fetch</th><th>times compressed</th></tr>
{{range $i, $f := .Encodings}}<tr><td data-k="edge.compression.encodings.{{$i}}.accept_encoding">{{$f.AcceptEncoding}}</td><td data-k="edge.compression.encodings.{{$i}}.content_encoding">{{$f.ContentEncoding}}</td><td data-k="edge.compression.encodings.{{$i}}.bytes">{{$f.Bytes}}</td><td data-k="edge.compression.encodings.{{$i}}.ratio">{{pct $f.Ratio}}</td><td>{{if $f.SecondHit}}hit{{else}}not a hit{{end}}</td><td data-k="edge.compression.encodings.{{$i}}.compressed_responses">{{$f.Compressed}}</td></tr>
{{end}}</table>{{end}}
{{with .Signed}}<h3>Signed URLs (docs/signed-urls.md)</h3>
<table class="num"><tr><th>request for {{.Path}} at {{.PoP}}</th><th>status</th></tr>
<tr><td>unsigned</td><td data-k="edge.signed_urls.unsigned_status">{{.Unsigned}}</td></tr>
<tr><td>signed as <code>outpost sign</code> makes it</td><td data-k="edge.signed_urls.signed_status">{{.Signed}}</td></tr>
<tr><td>signed, expired</td><td data-k="edge.signed_urls.expired_status">{{.Expired}}</td></tr>
</table>
<p class="muted">The PoP counted the refusals by reason (never in the body): outpost_pop_signed_url_denied_total missing <span data-k="edge.signed_urls.denied_missing">{{.DeniedMissing}}</span>, expired <span data-k="edge.signed_urls.denied_expired">{{.DeniedExpired}}</span>.</p>{{end}}
{{with .Proxy}}<h3>PROXY protocol (docs/proxy-protocol.md)</h3>
<p class="muted">A connection to PoP <span data-k="edge.proxy_protocol.pop">{{.PoP}}</span> from <span data-k="edge.proxy_protocol.balancer">{{.Balancer}}</span>, which its proxy_protocol trusts, with a v2 header for client <span data-k="edge.proxy_protocol.client">{{.Client}}</span>: status <span data-k="edge.proxy_protocol.status">{{.Status}}</span>; the origin saw X-Forwarded-For <span data-k="edge.proxy_protocol.origin_saw">{{.OriginSaw}}</span>; the PoP counted <span data-k="edge.proxy_protocol.accepted">{{.Accepted}}</span> accepted header(s).</p>
{{if .LogLine}}<p class="muted">Its access log line: <code data-k="edge.proxy_protocol.access_log_line">{{.LogLine}}</code></p>{{end}}{{end}}
`))
