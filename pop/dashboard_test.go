package pop

import (
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// dashboardMetrics returns the metric names the Grafana dashboard queries
// that start with one of the prefixes (histogram series reduced to their
// family name).
func dashboardMetrics(t *testing.T, prefixes ...string) []string {
	t.Helper()
	data, err := os.ReadFile("../deploy/grafana/outpost.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/outpost.json: %v", err)
	}
	seen := map[string]bool{}
	var names []string
	name := regexp.MustCompile(`outpost_[a-z0-9_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				for _, pre := range prefixes {
					if strings.HasPrefix(m, pre) && !seen[m] {
						seen[m] = true
						names = append(names, m)
					}
				}
			}
		}
	}
	return names
}

// TestDashboardMetricsExist checks that every PoP metric the dashboard
// queries is exported by a running PoP (one with a disk tier, whose
// metrics come on top of the others), so a rename breaks CI, not a graph.
func TestDashboardMetricsExist(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	tp := startDiskPoP(t, o.URL, t.TempDir())
	tp.get(t, "/a")
	tp.statsAfter(t, 1) // series by request appear once a request is counted
	resp := mustGet(t, tp.client, tp.admin+"/metrics")
	body, _ := io.ReadAll(resp.Body)
	names := dashboardMetrics(t, "outpost_pop_", "outpost_cache_", "outpost_origin_", "outpost_disk_")
	if len(names) < 8 {
		t.Fatalf("only %d PoP metrics found in the dashboard: %v", len(names), names)
	}
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^# TYPE ` + n + ` `).Match(body) {
			t.Errorf("the dashboard queries %s, which the PoP does not export", n)
		}
	}
}
