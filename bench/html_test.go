package bench

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestHTMLReport checks the report is one self-contained file: inline
// SVG, no scripts, nothing loaded from anywhere (URLs only in text), and
// the key numbers.
func TestHTMLReport(t *testing.T) {
	url := serveHTTP(t, listen(t, "127.0.0.1:0"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/obj/1" {
			w.Header().Set("Cache-Status", "outpost/fra; hit")
		} else {
			w.Header().Set("Cache-Status", `outpost/<nyc>; fwd=uri-miss; fwd-status=200`)
		}
		w.Write([]byte("body"))
	}))
	tr, err := ParseTrace(strings.NewReader("/obj/1\n/obj/2\n/obj/1\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Config{URL: url + "/", Workload: tr.Loop(), Connections: 3, Requests: 300})
	var buf bytes.Buffer
	if err := res.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || strings.Count(page, "</html>") != 1 || !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
		t.Error("not one HTML document")
	}
	if n := strings.Count(page, "<svg"); n < 4 {
		t.Errorf("%d inline SVG charts, want at least 4", n)
	}
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", " src=", " href=", "xlink:"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the report has %q: it must load nothing", bad)
		}
	}
	// http:// and https:// may appear only in text, never inside a tag.
	tags := regexp.MustCompile(`<[^>]*>`)
	for _, tag := range tags.FindAllString(page, -1) {
		if strings.Contains(tag, "http://") || strings.Contains(tag, "https://") {
			t.Errorf("a reference in a tag: %s", tag)
		}
	}
	if !strings.Contains(page, url) {
		t.Error("the target is not named")
	}
	if strings.Contains(page, "<nyc>") || !strings.Contains(page, "outpost/&lt;nyc&gt;") {
		t.Error("a PoP name is not escaped")
	}
	for _, want := range []string{
		num(res.RPS), pct(res.HitRatio), pct(res.ByteHitRatio), ms(res.Latency.P50), ms(res.Latency.P99),
		"Latency over time", "Latency histogram", "Throughput over time", "Hit ratio per PoP", "outpost/fra", "300",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if pct(res.HitRatio) != "66.67%" {
		t.Errorf("hit ratio %s, want 66.67%% (two of three URLs hit)", pct(res.HitRatio))
	}
}
