package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/bench"
)

// sampleReport is a report as a lab run makes one, with figures chosen
// so that each is distinct.
func sampleReport() *Report {
	f := func(v float64) *float64 { return &v }
	off := 0.9712
	return &Report{
		Config: "built-in lab.yaml",
		Routing: []Route{
			{Region: "fra", Requests: 72369, PoPs: []Share{{PoP: "prg", Responses: 70000, Share: 0.9673}, {PoP: "iad", Responses: 2369, Share: 0.0327}}},
			{Region: "nyc", Requests: 56351, PoPs: []Share{{PoP: "iad", Responses: 56351, Share: 1}}},
			{Region: "osa", Requests: 64187, PoPs: []Share{{PoP: "nrt", Responses: 64187, Share: 1}}},
		},
		PoPs: []PoPFigures{
			{PoP: "iad", Requests: 58720, HitRatio: 0.989, ByteHitRatio: 0.9912, OriginOffload: 0.972, OriginFetches: 612},
			{PoP: "nrt", Requests: 64187, HitRatio: 0.991, ByteHitRatio: 0.993, OriginOffload: 0.975, OriginFetches: 588},
			{PoP: "prg", Requests: 70000, HitRatio: 0.993, ByteHitRatio: 0.994, OriginOffload: 0.978, OriginFetches: 540},
		},
		ThroughputMiBps: 311.9,
		Warming: Warming{WarmupSeconds: 0.5, Seconds: []float64{0.25, 0.5, 0.75, 1},
			PoPs: []Curve{
				{PoP: "iad", HitRatio: []*float64{f(0.4), f(0.7), nil, f(0.95)}, FirstSecond: 0.6123, LastSecond: 0.95},
				{PoP: "nrt", HitRatio: []*float64{f(0.41), f(0.72), f(0.9), f(0.96)}, FirstSecond: 0.7, LastSecond: 0.96},
				{PoP: "prg", HitRatio: []*float64{f(0.42), f(0.74), f(0.91), f(0.97)}, FirstSecond: 0.71, LastSecond: 0.97},
			}},
		Shield: &ShieldComparison{Shield: "prg", Requests: 6000, Objects: 1164, Without: 1863, With: 1164},
		Edge: &EdgeFeatures{
			Compression: &CompressionDemo{PoP: "prg", Service: "assets", Path: "/app.js", IdentityBytes: 324470, Encodings: []EncodingFetch{
				{AcceptEncoding: "identity", Bytes: 324470, Ratio: 1, SecondHit: true},
				{AcceptEncoding: "zstd", ContentEncoding: "zstd", Bytes: 15789, Ratio: 0.0487, SecondHit: true, Compressed: 1},
				{AcceptEncoding: "br", ContentEncoding: "br", Bytes: 9097, Ratio: 0.028, SecondHit: true, Compressed: 1},
				{AcceptEncoding: "gzip", ContentEncoding: "gzip", Bytes: 22024, Ratio: 0.0679, SecondHit: true, Compressed: 1},
			}},
			Signed: &SignedDemo{PoP: "prg", Service: "private", Path: "/obj/signed-lab", Unsigned: 403, Signed: 200, Expired: 403, DeniedMissing: 1, DeniedExpired: 2},
			Proxy: &ProxyDemo{PoP: "nrt", Balancer: "127.0.0.2", Client: "198.51.100.77", Status: 200, OriginSaw: "198.51.100.77", Accepted: 1,
				LogLine: `198.51.100.77 - - [06/Dec/2026:11:40:00 +0000] "GET /proxied.txt HTTP/1.1" 200 324470 "-" "-"`},
		},
		Load: &bench.Result{Target: "http://demo.cdn.example:8080/", OriginOffload: &off, Seconds: 8},
	}
}

// checkPage checks that every figure the page marks (data-k) is the
// JSON's, as the page writes it, and that the page marks at least want.
func checkPage(t *testing.T, page string, jsonData []byte, want int) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(jsonData, &doc); err != nil {
		t.Fatal(err)
	}
	cells := regexp.MustCompile(`data-k="([^"]+)">([^<]*)<`).FindAllStringSubmatch(page, -1)
	if len(cells) < want {
		t.Errorf("the page marks %d figures, want at least %d", len(cells), want)
	}
	for _, c := range cells {
		key, text := c[1], html.UnescapeString(c[2]) // the page's text, as a browser shows it
		v, ok := lookup(doc, key)
		if !ok {
			t.Errorf("%s: not in the JSON", key)
			continue
		}
		switch v := v.(type) {
		case string:
			if v != text {
				t.Errorf("%s: page %q, JSON %q", key, text, v)
			}
		case float64:
			var got float64
			var err error
			switch {
			case strings.HasSuffix(text, "%"):
				got, err = strconv.ParseFloat(strings.TrimSuffix(text, "%"), 64)
				got /= 100
				if err == nil && abs(got-v) > 0.0005+1e-9 { // the page rounds to a tenth of a percent
					t.Errorf("%s: page %s, JSON %v", key, text, v)
				}
				continue
			case strings.HasSuffix(text, " MiB/s"):
				got, err = strconv.ParseFloat(strings.TrimSuffix(text, " MiB/s"), 64)
			default:
				got, err = strconv.ParseFloat(text, 64)
			}
			if err != nil || got != v {
				t.Errorf("%s: page %q, JSON %v", key, text, v)
			}
		default:
			t.Errorf("%s: JSON %T, not a figure", key, v)
		}
	}
}

func abs(f float64) float64 { return max(f, -f) }

// lookup follows a dotted path (map keys, list indexes) through JSON.
func lookup(doc any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		switch d := doc.(type) {
		case map[string]any:
			v, ok := d[part]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(d) {
				return nil, false
			}
			doc = d[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

// TestReportMatchesJSON checks the page against its JSON, and that it
// tells the story: routing, offload, warming curves, the shield.
func TestReportMatchesJSON(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "lab.html")
	jsonPath, err := r.write(path)
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	// 4 routing shares + 3 requests + throughput + 3×5 PoP figures + warm-up + 3×2 warming + 5 shield
	// + the edge features: 4 + 4×5 compression, 5 signed URLs, 7 PROXY protocol.
	checkPage(t, string(page), data, 4+3+1+15+1+6+5+4+20+5+7)
	for _, want := range []string{"Where each region went", "origin offload", "warming curve", "Origin shield", "311.9 MiB/s",
		"without a shield", "with prg as the shield", "1.60", "1.00", "end of warm-up",
		"Edge features", "Bytes sent for /app.js", "4.9%", "PROXY protocol", "198.51.100.77"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The byte hit ratio is never drawn in the red of errors.
	if regexp.MustCompile(`fill="#d62728"[^>]*><title>[^<]*byte hit ratio`).Match(page) {
		t.Error("the byte hit ratio is drawn in the colour of errors")
	}
	// Bar charts have axes: tick labels and an axis title.
	if !strings.Contains(string(page), ">50%<") || !strings.Contains(string(page), "share of the region&#39;s responses") && !strings.Contains(string(page), "share of the region's responses") {
		t.Error("the bar charts lack their axes")
	}
	for _, bad := range []string{"<script", "<link", "<img", "@import", " src=", " href="} {
		if strings.Contains(string(page), bad) {
			t.Errorf("the page has %q: it must load nothing", bad)
		}
	}
}

// TestReportInChromium opens the page in headless Chromium and checks
// it rendered: the charts are in the DOM Chromium built, with the
// figures of the JSON.
func TestReportInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no chromium on PATH (apt-get install chromium): the page is not rendered in a browser")
	}
	r := sampleReport()
	dir := t.TempDir()
	path := filepath.Join(dir, "lab.html")
	jsonPath, err := r.write(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shot := filepath.Join(dir, "lab.png")
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--crash-dumps-dir=" + dir}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, "--dump-dom", "file://"+path)...)
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --dump-dom: %v\n%s", bin, err, stderr.String())
	}
	if n := strings.Count(string(dom), "<svg"); n < 7 {
		t.Errorf("the rendered DOM has %d charts, want at least 7", n)
	}
	if !strings.Contains(string(dom), "<h1>Outpost lab: built-in lab.yaml</h1>") {
		t.Error("the rendered DOM lacks the title")
	}
	checkPage(t, string(dom), data, 35+36)
	cmd = exec.CommandContext(ctx, bin, append(args, "--screenshot="+shot, "--window-size=900,3000", "file://"+path)...)
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --screenshot: %v\n%s", bin, err, stderr.String())
	}
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot: %v, %v bytes: the page did not paint", err, fmt.Sprint(st))
	}
}

// TestSamplerBounded checks the warming samples stay within their bound
// however long the run: every other sample goes, the interval doubles.
func TestSamplerBounded(t *testing.T) {
	s := newSampler(nil)
	s.max = 8
	for range 100 {
		s.sample()
	}
	if len(s.t) >= s.max || len(s.reqs) != len(s.t) || len(s.hits) != len(s.t) {
		t.Errorf("%d samples (%d, %d), want fewer than %d", len(s.t), len(s.reqs), len(s.hits), s.max)
	}
	if s.every <= sampleEvery {
		t.Errorf("interval %v, want it doubled from %v", s.every, sampleEvery)
	}
}
