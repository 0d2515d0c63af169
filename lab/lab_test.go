package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outpost-cdn/outpost/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBuiltinMatchesExamples keeps the built-in CDN equal to the example
// files the README shows.
func TestBuiltinMatchesExamples(t *testing.T) {
	for _, name := range []string{"lab.yaml", "networks.csv"} {
		builtinData, err := builtin.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		example, err := os.ReadFile("../deploy/examples/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(builtinData, example) {
			t.Errorf("lab/%s differs from deploy/examples/%s: copy it over (cp deploy/examples/%s lab/)", name, name, name)
		}
	}
}

// TestRun runs the whole lab briefly and checks the report: each region
// routed to its nearest PoP, and the figures named as the README says.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the lab runs every role for a few seconds")
	}
	var out bytes.Buffer
	start := time.Now()
	reportPath := filepath.Join(t.TempDir(), "lab.html")
	err := Run(context.Background(), Options{Duration: 1500 * time.Millisecond, Warmup: 500 * time.Millisecond, Connections: 8,
		ShieldRequests: 1500, Report: reportPath}, &out)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("a lab address is taken on this machine: %v", err)
	}
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Logf("lab took %v:\n%s", time.Since(start), out.String())
	report := out.String()
	for _, want := range []string{"hit ratio", "byte hit ratio", "origin offload", "p99 ms", "total", "errors 0",
		"Control plane", "acknowledged by 3/3 PoPs", "Edge features", "Accept-Encoding: zstd", "purge propagation over 20 purges", "applied by 4 hosts (3 PoPs and the DNS server)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for region, popName := range map[string]string{"fra": "prg", "nyc": "iad", "osa": "nrt"} {
		if !regexp.MustCompile(`(?m)^\s+` + region + `\s+` + popName + ` 100\.0%`).MatchString(report) {
			t.Errorf("region %s not routed to %s alone", region, popName)
		}
	}
	// The HTML report and its JSON: the same figures; warming curves for
	// every PoP; the shield spared the origin.
	page, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(strings.TrimSuffix(reportPath, ".html") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, string(page), data, 3+3+1+15+1+6+5+35)
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Warming.PoPs) != 3 || len(rep.Warming.Seconds) < 4 {
		t.Errorf("warming curves: %d PoPs, %d samples", len(rep.Warming.PoPs), len(rep.Warming.Seconds))
	}
	if s := rep.Shield; s == nil || s.With == 0 || s.With >= s.Without || s.Objects == 0 {
		t.Errorf("shield comparison: %+v: want fewer origin requests with the shield", s)
	} else {
		t.Logf("shield: %d objects; origin requests %d without, %d with", s.Objects, s.Without, s.With)
	}
	checkEdge(t, rep.Edge)
}

// TestAddressTaken checks that a taken address is named, with the way out.
func TestAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.11:9080") // PoP prg's admin address
	if err != nil {
		t.Skipf("cannot hold 127.0.0.11:9080 for the test: %v", err)
	}
	defer ln.Close()
	var out bytes.Buffer
	err = Run(context.Background(), Options{Duration: time.Second}, &out)
	if err == nil {
		t.Fatal("Run succeeded with an address taken")
	}
	for _, want := range []string{"127.0.0.11:9080", "PoP prg", "-config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestRunWithPlaceholderToken checks that the lab, unlike a PoP on its
// own, runs a CDN file whose purge token is a placeholder (a copy of an
// example, say).
func TestRunWithPlaceholderToken(t *testing.T) {
	if testing.Short() {
		t.Skip("the lab runs every role for a few seconds")
	}
	t.Setenv(config.TokenEnv, "")
	dir := t.TempDir()
	for _, name := range []string{"lab.yaml", "networks.csv"} {
		data, err := builtin.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "lab.yaml" {
			data = append(data, "\npurge: {token: change-me}\n"...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err := Run(context.Background(), Options{Config: filepath.Join(dir, "lab.yaml"), Duration: 500 * time.Millisecond, Warmup: 200 * time.Millisecond, Connections: 4, NoShield: true}, &out)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("a lab address is taken on this machine: %v", err)
	}
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "errors 0") {
		t.Errorf("report:\n%s", out.String())
	}
}

// checkEdge checks what the lab saw of the edge features of the built-in
// file: each encoding computed once and then a hit, smaller than the
// original; signed URLs refused without a valid signature, the reasons
// counted; the PROXY header's client address reaching the origin and the
// access log.
func checkEdge(t *testing.T, e *EdgeFeatures) {
	t.Helper()
	if e == nil || e.Compression == nil || e.Signed == nil || e.Proxy == nil {
		t.Fatalf("edge features: %+v, want all three", e)
	}
	c := e.Compression
	if len(c.Encodings) != 4 || c.IdentityBytes == 0 {
		t.Fatalf("compression: %+v", c)
	}
	for _, f := range c.Encodings {
		if !f.SecondHit {
			t.Errorf("compression: the second fetch with Accept-Encoding %s was not a hit", f.AcceptEncoding)
		}
		if f.AcceptEncoding == "identity" {
			if f.ContentEncoding != "" || f.Bytes != c.IdentityBytes {
				t.Errorf("compression: identity got %q, %d bytes", f.ContentEncoding, f.Bytes)
			}
			continue
		}
		if f.ContentEncoding != f.AcceptEncoding || f.Bytes >= c.IdentityBytes/2 || f.Compressed != 1 {
			t.Errorf("compression: Accept-Encoding %s got %q, %d of %d bytes, compressed %g times; want it, smaller, once",
				f.AcceptEncoding, f.ContentEncoding, f.Bytes, c.IdentityBytes, f.Compressed)
		}
	}
	if s := e.Signed; s.Unsigned != 403 || s.Signed != 200 || s.Expired != 403 || s.DeniedMissing < 1 || s.DeniedExpired < 1 {
		t.Errorf("signed URLs: %+v, want 403, 200, 403 and the refusals counted", s)
	}
	if p := e.Proxy; p.Status != 200 || p.OriginSaw != p.Client || p.Accepted < 1 || !strings.HasPrefix(p.LogLine, p.Client+" ") {
		t.Errorf("PROXY protocol: %+v, want 200 and the header's client at the origin and in the log", p)
	}
}
