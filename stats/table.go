package stats

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the report: a row per PoP with a total row, then a row
// per service summed over the PoPs. Latency percentiles are each PoP's own
// (estimated from its histograms); they do not add up, so sums show "-".
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PoP\thealth\trequests\thit ratio\tbyte hit ratio\torigin offload\tstale served\terrors\tp50 ms\tp99 ms\tconfig\t")
	for _, p := range r.PoPs {
		if p.Err != nil {
			fmt.Fprintf(tw, "%s\tdown\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", p.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Health(), row(p.Figures, p.ConfigVersion))
	}
	fmt.Fprintf(tw, "total\t%d/%d up\t%s\n", len(r.PoPs)-len(r.Down()), len(r.PoPs), row(r.Total, ""))
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "service\t\trequests\thit ratio\tbyte hit ratio\torigin offload\tstale served\terrors\tp50 ms\tp99 ms\tconfig\t")
	for _, name := range r.serviceNames() {
		fmt.Fprintf(tw, "%s\t\t%s\n", name, row(r.Services[name], ""))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range r.PoPs {
		if p.Err != nil {
			fmt.Fprintf(w, "%s (%s) is unreachable: %v\n", p.Name, p.Admin, p.Err)
		}
	}
	return nil
}

func row(f Figures, version string) string {
	if version == "" {
		version = "-"
	}
	p50, p99 := "-", "-"
	if f.Latency.P50 > 0 || f.Latency.P99 > 0 {
		p50, p99 = fmt.Sprintf("%.2f", f.Latency.P50), fmt.Sprintf("%.2f", f.Latency.P99)
	}
	return fmt.Sprintf("%d\t%.1f%%\t%.1f%%\t%.1f%%\t%d\t%d\t%s\t%s\t%s\t",
		f.Requests, 100*f.HitRatio, 100*f.ByteHitRatio, 100*f.OriginOffload, f.StaleOnError, f.Errors, p50, p99, version)
}
