package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the result as a table for a terminal.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	target := r.Target
	switch {
	case r.Connect != "":
		target += " via " + r.Connect
	case r.DNS != "":
		target += " resolved at " + r.DNS
	}
	p("target\t%s\n", target)
	load := fmt.Sprintf("%s loop, %d connections", r.Mode, r.Connections)
	if r.Rate > 0 {
		load += fmt.Sprintf(", %s req/s offered", num(r.Rate))
	}
	p("workload\t%s (seed %d)\n", r.Workload, r.Seed)
	p("load\t%s\n", load)
	window := fmt.Sprintf("%.2fs", r.Seconds)
	if r.WarmupSeconds > 0 {
		window += fmt.Sprintf(" after %gs of warm-up", r.WarmupSeconds)
	}
	if r.Interrupted {
		window += " (interrupted)"
	}
	p("window\t%s\n", window)
	p("requests\t%s   %s/s   %s\n", num(float64(r.Requests)), num(r.RPS), MiBps(r.BytesPerSec))
	p("bytes\t%s\n", bytesString(float64(r.Bytes)))
	p("errors\t%s\n", errorsString(r))
	p("status\t%s\n", statusString(r.StatusCodes))
	if r.Protocol != "" {
		p("protocol\t%s asked; %s\n", r.Protocol, statusString(r.Protocols))
	}
	p("\n")
	p("latency (ms)\tmean\tp50\tp90\tp99\tp99.9\tmax\n")
	l := r.Latency
	p("\t%s\t%s\t%s\t%s\t%s\t%s\n", ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	p("\n")
	offload := "unknown (no -origin-stats)"
	if r.OriginOffload != nil {
		offload = pct(*r.OriginOffload)
	}
	p("hit ratio\t%s\n", pct(r.HitRatio))
	p("byte hit ratio\t%s\n", pct(r.ByteHitRatio))
	p("origin offload\t%s\n", offload)
	p("results\t%s\n", resultsString(r.Results))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.PerPoP) > 0 {
		fmt.Fprintln(w)
		if err := writeGroups(w, "per PoP", r.PerPoP); err != nil {
			return err
		}
	}
	if len(r.PerRegion) > 0 {
		fmt.Fprintln(w)
		if err := writeGroups(w, "per region", r.PerRegion); err != nil {
			return err
		}
	}
	if d := r.DNSFigures; d != nil {
		fmt.Fprintf(w, "\ndns  %d queries, %d failed, %d retried over TCP\n", d.Queries, d.Failures, d.TCPRetries)
	}
	return nil
}

func writeGroups(w io.Writer, title string, groups []Group) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\trequests\terrors\thit ratio\tbyte hit\tp50 ms\tp99 ms\taddresses\n", title)
	for _, g := range groups {
		a := slices.Sorted(maps.Keys(g.Addresses))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.Requests, g.Errors,
			pct(g.HitRatio), pct(g.ByteHitRatio), ms(g.Latency.P50), ms(g.Latency.P99), strings.Join(a, " "))
	}
	return tw.Flush()
}

func errorsString(r *Result) string {
	if r.Errors == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
	}
	return fmt.Sprintf("%d (%s)", r.Errors, strings.Join(parts, ", "))
}

func statusString(codes map[string]int64) string {
	if len(codes) == 0 {
		return "-"
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		parts = append(parts, fmt.Sprintf("%s: %d", c, codes[c]))
	}
	return strings.Join(parts, "  ")
}

func resultsString(x Results) string {
	return fmt.Sprintf("hit %d  collapsed %d  revalidated %d  stale_on_error %d  miss %d  pass %d  error %d  unknown %d",
		x.Hit, x.Collapsed, x.Revalidated, x.StaleOnError, x.Miss, x.Pass, x.Error, x.Unknown)
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) + "%" }

func ms(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// num formats a count or rate with thousands separators.
func num(f float64) string {
	s := strconv.FormatFloat(f, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// bytesString formats a byte count in binary units.
func bytesString(f float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(f, 'f', 0, 64) + " B"
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i]
}
