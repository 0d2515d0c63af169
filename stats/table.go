package stats

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report: a row per PoP with a total row, then a row
// per service summed over the PoPs. Latency percentiles are each PoP's own
// (estimated from its histograms); they do not add up, so sums show "-".
// When a PoP has a disk tier, two columns split the hit ratio into the
// memory and disk tiers' shares (PoP-wide figures: "-" for services and
// PoPs without one), and a last section shows each cache directory.
func (r *Report) WriteTable(w io.Writer) error {
	tiers := r.tiered()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	head := "requests\thit ratio\t"
	if tiers {
		head += "memory hits\tdisk hits\t"
	}
	head += "byte hit ratio\torigin offload\tstale served\terrors\tp50 ms\tp99 ms\tconfig\t"
	cols := strings.Count(head, "\t")
	fmt.Fprintf(tw, "PoP\thealth\t%s\n", head)
	for _, p := range r.PoPs {
		if p.Err != nil {
			fmt.Fprintf(tw, "%s\tdown\t%s\n", p.Name, strings.Repeat("-\t", cols))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Health(), row(p.Figures, p.ConfigVersion, tiers))
	}
	fmt.Fprintf(tw, "total\t%d/%d up\t%s\n", len(r.PoPs)-len(r.Down()), len(r.PoPs), row(r.Total, "", tiers))
	fmt.Fprintf(tw, "\t\t%s\n", strings.Repeat("\t", cols))
	fmt.Fprintf(tw, "service\t\t%s\n", head)
	for _, name := range r.serviceNames() {
		fmt.Fprintf(tw, "%s\t\t%s\n", name, row(r.Services[name], "", tiers))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeDisks(w); err != nil {
		return err
	}
	for _, p := range r.PoPs {
		if p.Err != nil {
			fmt.Fprintf(w, "%s (%s) is unreachable: %v\n", p.Name, p.Admin, p.Err)
		}
	}
	return nil
}

// writeDisks prints a row per cache directory of the PoPs with a disk
// tier: its state, fill level, writes and how far its loader has come.
func (r *Report) writeDisks(w io.Writer) error {
	var has bool
	for _, p := range r.PoPs {
		has = has || len(p.Disks) > 0
	}
	if !has {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PoP\tdisk\tstate\titems\tused\tof\tfill\twritten\terrors\tload\t")
	for _, p := range r.PoPs {
		for _, d := range p.Disks {
			state := "ok"
			if !d.Healthy {
				state = "OUT"
			}
			fill := "-"
			if d.MaxBytes > 0 {
				fill = fmt.Sprintf("%.1f%%", 100*float64(d.Bytes)/float64(d.MaxBytes))
			}
			load := fmt.Sprintf("done %.1fs", d.Load.Seconds)
			if !d.Load.Done {
				load = fmt.Sprintf("%d files, %.0fs", d.Load.Scanned, d.Load.Seconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t\n", p.Name, d.Path, state, d.Items,
				size(d.Bytes), size(d.MaxBytes), fill, size(int64(d.BytesWritten)), d.Errors+d.Corrupt, load)
		}
	}
	return tw.Flush()
}

// size prints n bytes in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f%s", v, [...]string{"B", "KiB", "MiB", "GiB", "TiB"}[u])
}

func row(f Figures, version string, tiers bool) string {
	if version == "" {
		version = "-"
	}
	p50, p99 := "-", "-"
	if f.Latency.P50 > 0 || f.Latency.P99 > 0 {
		p50, p99 = fmt.Sprintf("%.2f", f.Latency.P50), fmt.Sprintf("%.2f", f.Latency.P99)
	}
	tier := ""
	if tiers {
		tier = "-\t-\t"
		if f.MemoryHits+f.DiskHits > 0 {
			tier = fmt.Sprintf("%.1f%%\t%.1f%%\t", 100*f.MemoryHitRatio, 100*f.DiskHitRatio)
		}
	}
	return fmt.Sprintf("%d\t%.1f%%\t%s%.1f%%\t%.1f%%\t%d\t%d\t%s\t%s\t%s\t",
		f.Requests, 100*f.HitRatio, tier, 100*f.ByteHitRatio, 100*f.OriginOffload, f.StaleOnError, f.Errors, p50, p99, version)
}
