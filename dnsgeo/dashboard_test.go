package dnsgeo

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"testing"

	"github.com/miekg/dns"
)

// TestDashboardMetricsExist checks that every DNS metric the Grafana
// dashboard queries is exported by a running server.
func TestDashboardMetricsExist(t *testing.T) {
	data, err := os.ReadFile("../deploy/grafana/outpost.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("deploy/grafana/outpost.json is not JSON")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`outpost_dns_[a-z0-9_]+`).FindAllString(string(data), -1) {
		names[m] = true
	}
	if len(names) < 3 {
		t.Fatalf("only %d DNS metrics in the dashboard", len(names))
	}
	ts, _ := startLab(t, steady)
	defer http.DefaultClient.CloseIdleConnections()
	ts.exchange(t, "udp", query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0))
	_, metrics := get(t, ts.admin+"/metrics")
	for n := range names {
		if !regexp.MustCompile(`(?m)^# TYPE ` + n + ` `).MatchString(metrics) {
			t.Errorf("the dashboard queries %s, which the DNS server does not export", n)
		}
	}
}
