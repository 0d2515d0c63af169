package stats

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the report: a row per PoP with a total row, then a row
// per service summed over the PoPs. Latency percentiles are not in the
// PoPs' /stats yet and show as "-".
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
	return fmt.Sprintf("%d\t%.1f%%\t%.1f%%\t%.1f%%\t%d\t%d\t-\t-\t%s\t",
		f.Requests, 100*f.HitRatio, 100*f.ByteHitRatio, 100*f.OriginOffload, f.StaleOnError, f.Errors, version)
}
