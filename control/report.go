package control

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outpost-cdn/outpost/popapi"
)

// Status is the fleet's configuration as `outpost config status` shows
// it: the latest revision, what each host runs, and which PoPs are alive.
type Status struct {
	Latest Revision
	Hosts  []HostReport
	// States are the PoPs' latest states (a PoP without one is offline).
	States []popapi.State
}

// Behind returns the hosts that do not run the latest revision.
func (s *Status) Behind() []string {
	var out []string
	for _, h := range s.Hosts {
		if h.Revision != s.Latest.Number {
			out = append(out, h.Role+" "+h.Host)
		}
	}
	return out
}

// WriteTable prints the status: one line per host with the revision it
// runs, whether it is online (PoPs: a state within the last few seconds),
// what waits for a restart, and a revision it refused with the reason.
func (s *Status) WriteTable(w io.Writer, now time.Time) error {
	if s.Latest.Number == 0 {
		fmt.Fprintln(w, "no configuration pushed yet (outpost config push FILE)")
	} else {
		fmt.Fprintf(w, "latest revision %d, pushed %s ago\n", s.Latest.Number, now.Sub(s.Latest.Created).Round(time.Second))
	}
	alive := make(map[string]popapi.State, len(s.States))
	for _, st := range s.States {
		alive[st.PoP] = st
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "role\thost\trevision\tversion\tonline\tstatus\tpending restart\t")
	for _, h := range s.Hosts {
		online := "-"
		if h.Role == "pop" {
			online = "no"
			if st, ok := alive[h.Host]; ok {
				online = "yes"
				if !st.Healthy {
					online = "unhealthy"
				}
			}
		}
		status := "current"
		switch {
		case h.Refused != 0:
			status = fmt.Sprintf("REFUSED %d: %s", h.Refused, h.Reason)
		case h.Revision != s.Latest.Number:
			status = "behind"
		}
		pending := strings.Join(h.PendingRestart, ",")
		if pending == "" {
			pending = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", h.Role, h.Host, h.Revision, h.Version, online, status, pending)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b := s.Behind(); len(b) > 0 {
		fmt.Fprintf(w, "%d host(s) behind revision %d: %s\n", len(b), s.Latest.Number, strings.Join(b, ", "))
	}
	return nil
}

// WriteTable prints a purge's acknowledgements in the format of
// `outpost purge` over the admin listeners, and the PoPs that did not
// answer.
func (r *PurgeReport) WriteTable(w io.Writer) {
	for _, a := range r.Acks {
		if a.Error != "" {
			fmt.Fprintf(w, "  %-12s FAILED  %s (%s)\n", a.PoP, a.Error, a.Latency.Round(10*time.Microsecond))
			continue
		}
		note := ""
		if a.Duplicate {
			note = " (already applied)"
		}
		fmt.Fprintf(w, "  %-12s ok      %6d objects  %8s%s\n", a.PoP, a.Purged, a.Latency.Round(10*time.Microsecond), note)
	}
	for _, p := range r.Missing {
		fmt.Fprintf(w, "  %-12s NO ACK  (it applies the purge from the stream when it is back)\n", p)
	}
}

// Failed reports whether a PoP did not answer or could not apply it.
func (r *PurgeReport) Failed() bool {
	for _, a := range r.Acks {
		if a.Error != "" {
			return true
		}
	}
	return len(r.Missing) > 0
}

// WriteStates prints the PoPs' control-plane figures under `outpost
// stats`: health, config revision, purges applied and lag.
func WriteStates(w io.Writer, states []popapi.State) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PoP\thealthy\tconfig rev\tpurge applied\tpurge lag\treq/s\t")
	for _, s := range states {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%.0f\t\n", s.PoP, s.Healthy, s.ConfigRevision, s.PurgeApplied, s.PurgeLag, s.RequestsPerSec)
	}
	return tw.Flush()
}

// FleetStatus reads the latest revision, the hosts' reports and, for
// listen, the PoPs' states.
func (c *Conn) FleetStatus(ctx context.Context, listen time.Duration) (*Status, error) {
	latest, err := c.CurrentConfig(ctx)
	if err != nil {
		return nil, err
	}
	hosts, err := c.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	states, err := c.States(ctx, listen)
	if err != nil {
		return nil, err
	}
	return &Status{Latest: latest, Hosts: hosts, States: states}, nil
}
